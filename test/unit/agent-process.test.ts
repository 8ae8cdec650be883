/**
 * The built agent (dist/konductor-agent.js) as a real process against a scripted HTTPS manager: progress
 * lines, grant.json, exit codes, reconnects, and hold's release on SIGTERM.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WaitEvent } from '../../api/protocol.ts';
import { AGENT_BUNDLE, buildAgent } from '../../scripts/build.ts';
import {
  type AgentSandbox,
  agentEnv,
  createSandbox,
  createTestPki,
  type FakeManager,
  grantOf,
  jsonError,
  runAgent,
  SEMAPHORE,
  startFakeManager,
  streamEvents,
} from '../helpers/fakeManager.ts';

let manager: FakeManager;
let sandbox: AgentSandbox;

beforeAll(async () => {
  const [pki] = await Promise.all([createTestPki(), buildAgent()]);
  manager = await startFakeManager(pki);
}, 60_000);
afterAll(async () => {
  await manager?.close();
});
afterEach(() => {
  sandbox?.remove();
  manager.requests.length = 0;
});

function start(mode: 'wait' | 'hold', extra: Record<string, string> = {}) {
  sandbox = createSandbox();
  return runAgent(AGENT_BUNDLE, [mode], agentEnv(manager, sandbox, extra));
}

const queued = (position: number, inUse = 2): WaitEvent => ({
  type: 'queued',
  primitive: SEMAPHORE,
  position,
  queueLength: 4,
  message: '',
  inUse,
  capacity: 2,
});
const progress = (position: number): WaitEvent => ({ ...queued(position), type: 'progress' }) as WaitEvent;

describe('konductor-agent wait', () => {
  it('prints progress once per change, writes grant.json and exits 0', async () => {
    const grant = grantOf(SEMAPHORE, 7);
    manager.handle((_req, res) => {
      streamEvents(res, [queued(2), { type: 'heartbeat' }, progress(2), progress(1)]);
      streamEvents(
        res,
        [
          { type: 'granted', grant },
          { type: 'done', grants: [grant] },
        ],
        true,
      );
    });
    const run = start('wait');
    const { code } = await run.exited;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    const lines = run.stdout().trim().split('\n');
    expect(lines[0]).toBe('konductor-wait: pod default/job-a-x1 waiting for its konductor grants');
    expect(lines.slice(1, 3)).toEqual([
      'waiting for semaphore default/batch-slots: position 2 of 4 (2/2 permits in use)',
      'waiting for semaphore default/batch-slots: position 1 of 4 (2/2 permits in use)',
    ]);
    expect(lines[3]).toMatch(/^granted semaphore default\/batch-slots \(token 7\) after [0-9.]+m?s$/);
    expect(lines).toHaveLength(4);

    const file = JSON.parse(readFileSync(join(sandbox.dir, 'grant.json'), 'utf8'));
    expect(file).toMatchObject({
      primitive: 'Semaphore',
      name: 'batch-slots',
      namespace: 'default',
      token: 7,
      grantedAt: grant.grantedAt,
      pod: 'job-a-x1',
      uid: 'uid-1',
      grants: [grant],
    });
    const [req] = manager.requests;
    expect(req).toMatchObject({ method: 'POST', path: '/v1/wait', authorization: 'Bearer test-token-1' });
    expect(JSON.parse(req?.body ?? '')).toEqual({});
  });

  it('re-reads the token file for every request', async () => {
    let first = true;
    manager.handle((_req, res) => {
      if (first) {
        first = false;
        writeFileSync(sandbox.tokenFile, 'rotated-token\n');
        res.destroy();
        return;
      }
      streamEvents(res, [{ type: 'done', grants: [grantOf(SEMAPHORE, 1)] }], true);
    });
    const run = start('wait');
    expect((await run.exited).code).toBe(0);
    expect(manager.requests.map((r) => r.authorization)).toEqual([
      'Bearer test-token-1',
      'Bearer rotated-token',
    ]);
  });

  it('prints the failure and exits 1 when the manager reports one', async () => {
    manager.handle((_req, res) => {
      streamEvents(
        res,
        [
          {
            type: 'failed',
            reason: 'BarrierFailed',
            message: 'barrier default/start failed: timed out after 5m',
          },
        ],
        true,
      );
    });
    const run = start('wait');
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toContain('barrier default/start failed: timed out after 5m');
    expect(existsSync(join(sandbox.dir, 'grant.json'))).toBe(false);
  });

  it('gives up at KONDUCTOR_WAIT_TIMEOUT with exit 2', async () => {
    manager.handle((_req, res) => streamEvents(res, [queued(3)]));
    const run = start('wait', { KONDUCTOR_WAIT_TIMEOUT: '1500' });
    expect((await run.exited).code).toBe(2);
    expect(run.stderr()).toContain(
      'gave up waiting for semaphore default/batch-slots after 1.5s (konductor.io/wait-timeout)',
    );
    expect(run.stdout()).toContain('position 3 of 4');
  });

  it('retries 401 a few times, then prints the message and exits 3', async () => {
    manager.handle((_req, res) =>
      jsonError(res, 401, 'KDR_AGENT_UNAUTHORIZED', 'token rejected by TokenReview'),
    );
    const run = start('wait');
    expect((await run.exited).code).toBe(3);
    expect(manager.requests).toHaveLength(3);
    expect(run.stderr()).toContain('token rejected by TokenReview');
  });

  it('exits 3 at once on 403', async () => {
    manager.handle((_req, res) => jsonError(res, 403, 'KDR_AGENT_FORBIDDEN', 'token is not bound to a pod'));
    const run = start('wait');
    expect((await run.exited).code).toBe(3);
    expect(manager.requests).toHaveLength(1);
    expect(run.stderr()).toContain('token is not bound to a pod');
  });

  it('reconnects when the stream drops mid-way and logs the outage once', async () => {
    const grant = grantOf(SEMAPHORE, 9);
    manager.handle((req, res) => {
      if (req.index === 0) {
        streamEvents(res, [queued(2)]);
        // Cut the connection after the first event has been flushed.
        res.socket?.end();
        setImmediate(() => res.socket?.destroy());
        return;
      }
      if (req.index < 3) {
        jsonError(res, 503, 'KDR_NOT_LEADER', 'not ready');
        return;
      }
      streamEvents(res, [queued(1), { type: 'granted', grant }, { type: 'done', grants: [grant] }], true);
    });
    const run = start('wait');
    expect((await run.exited).code).toBe(0);
    expect(manager.requests).toHaveLength(4);
    const stderr = run.stderr();
    expect(stderr.match(/manager unreachable \(/g)).toHaveLength(1);
    expect(stderr).toMatch(/reconnected to the manager after/);
    expect(run.stdout()).toMatch(/granted semaphore default\/batch-slots \(token 9\)/);
    expect(JSON.parse(readFileSync(join(sandbox.dir, 'grant.json'), 'utf8')).token).toBe(9);
  });

  it('keeps retrying a manager that refuses connections until the wait-timeout, and says why', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    sandbox = createSandbox();
    const env = agentEnv(manager, sandbox, {
      KONDUCTOR_URL: `https://127.0.0.1:${port}`,
      KONDUCTOR_WAIT_TIMEOUT: '1000',
    });
    const run = runAgent(AGENT_BUNDLE, ['wait'], env);
    expect((await run.exited).code).toBe(2);
    const stderr = run.stderr();
    expect(stderr.match(/manager unreachable \(ECONNREFUSED\), retrying/g)).toHaveLength(1);
    expect(stderr).toContain(
      'gave up waiting for the konductor manager after 1s (konductor.io/wait-timeout); the manager was unreachable (ECONNREFUSED)',
    );
  });

  it('names the missing variable and exits 3 when misconfigured', async () => {
    sandbox = createSandbox();
    const env: Record<string, string> = agentEnv(manager, sandbox);
    delete env.KONDUCTOR_CA_BUNDLE;
    const run = runAgent(AGENT_BUNDLE, ['wait'], env);
    expect((await run.exited).code).toBe(3);
    expect(run.stderr()).toContain('KONDUCTOR_CA_BUNDLE');
    expect(manager.requests).toHaveLength(0);
  });
});

describe('konductor-agent hold', () => {
  it('idles, releases on SIGTERM and exits 0', async () => {
    manager.handle((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ released: [{ ...SEMAPHORE, token: 7 }] }));
    });
    sandbox = createSandbox();
    writeFileSync(join(sandbox.dir, 'grant.json'), JSON.stringify({ grants: [grantOf(SEMAPHORE, 7)] }));
    const run = runAgent(AGENT_BUNDLE, ['hold'], agentEnv(manager, sandbox));
    await run.output(/holding semaphore default\/batch-slots \(token 7\)/);
    expect(manager.requests).toHaveLength(0);
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stdout()).toContain('released semaphore default/batch-slots (token 7)');
    expect(manager.requests).toHaveLength(1);
    expect(manager.requests[0]).toMatchObject({ path: '/v1/release', authorization: 'Bearer test-token-1' });
    expect(existsSync(join(sandbox.dir, 'grant.json'))).toBe(true);
  });

  it('still exits 0 after three failed release attempts', async () => {
    manager.handle((_req, res) => jsonError(res, 503, 'KDR_UNAVAILABLE', 'restarting'));
    const run = start('hold');
    await run.output(/holding its konductor grants/);
    run.child.kill('SIGINT');
    expect((await run.exited).code).toBe(0);
    expect(manager.requests).toHaveLength(3);
    expect(run.stderr()).toContain('release failed (HTTP 503 KDR_UNAVAILABLE: restarting)');
  });
});

describe('konductor-agent CLI', () => {
  it('prints its version and usage', async () => {
    const version = runAgent(AGENT_BUNDLE, ['--version'], { PATH: process.env.PATH ?? '' });
    expect((await version.exited).code).toBe(0);
    expect(version.stdout()).toMatch(/^konductor-agent \d+\.\d+\.\d+/);
    const help = runAgent(AGENT_BUNDLE, ['--help'], { PATH: process.env.PATH ?? '' });
    expect((await help.exited).code).toBe(0);
    expect(help.stdout()).toContain('KONDUCTOR_URL');
    const bad = runAgent(AGENT_BUNDLE, ['sing'], { PATH: process.env.PATH ?? '' });
    expect((await bad.exited).code).toBe(3);
    expect(bad.stderr()).toContain('unknown mode "sing"');
  });
});
