/**
 * devcluster lifecycle: a second control plane starts and stops leaving no process behind; a port
 * in use and a component that crashes at start-up fail with clear messages; processes of a crashed
 * run are reaped by PID.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KonductorError } from '../../api/errors.ts';
import { getFreePort, isProcessAlive, reapStaleClusters, startCluster } from '../../devcluster/index.ts';
import { waitFor } from '../helpers/waitFor.ts';

const scratch = mkdtempSync(join(tmpdir(), 'konductor-lifecycle-'));
const registryDir = join(scratch, 'registry');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const quiet = () => {};

/** PIDs of live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle) && isProcessAlive(Number(entry))) {
        pids.push(Number(entry));
      }
    } catch {
      /* gone */
    }
  }
  return pids;
}

describe('devcluster lifecycle', () => {
  it('starts a second cluster and stop() leaves none of its processes behind', async () => {
    const baseDir = join(scratch, 'second');
    const cluster = await startCluster({ baseDir, registryDir, log: quiet, controllerManager: false });
    let stopped = false;
    try {
      expect(cluster.pids).toHaveLength(2);
      for (const pid of cluster.pids) expect(isProcessAlive(pid)).toBe(true);
      const version = await cluster.client.get<{ gitVersion: string }>('/version');
      expect(version.gitVersion).toMatch(/^v1\./);
      expect(existsSync(join(registryDir, `${cluster.id}.json`))).toBe(true);
      await cluster.stop();
      stopped = true;
    } finally {
      if (!stopped) await cluster.stop();
    }
    for (const pid of cluster.pids) expect(isProcessAlive(pid)).toBe(false);
    expect(processesMentioning(cluster.dataDir)).toEqual([]);
    expect(existsSync(cluster.dataDir)).toBe(false);
    expect(existsSync(join(registryDir, `${cluster.id}.json`))).toBe(false);
    await cluster.stop(); // idempotent
  });

  it('fails with a clear error when the requested apiserver port is in use', async () => {
    const port = await getFreePort();
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const err = await startCluster({ apiserverPort: port, registryDir, log: quiet }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KonductorError);
      expect((err as KonductorError).code).toBe('KDR_DEVCLUSTER_PORT_IN_USE');
      expect((err as Error).message).toContain('kube-apiserver');
      expect((err as Error).message).toContain(`127.0.0.1:${port} is already in use`);
    } finally {
      server.close();
    }
  });

  it('names the component, its log and its last lines when it crashes at start-up, and cleans up', async () => {
    const baseDir = join(scratch, 'crash');
    const err = await startCluster({
      baseDir,
      registryDir,
      log: quiet,
      extraApiserverArgs: ['--no-such-flag=1'],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KonductorError);
    const message = (err as Error).message;
    expect((err as KonductorError).code).toBe('KDR_DEVCLUSTER_COMPONENT_FAILED');
    expect(message).toMatch(/^kube-apiserver exited during start-up/);
    expect(message).toContain('kube-apiserver.log');
    expect(message).toContain('no-such-flag');
    expect(processesMentioning(baseDir)).toEqual([]);
  });

  it('reaps the processes of a run whose owner was killed (SIGKILL)', async () => {
    const baseDir = join(scratch, 'orphaned');
    const script = `
      import { startCluster } from ${JSON.stringify(new URL('../../devcluster/index.ts', import.meta.url).href)};
      const c = await startCluster({ baseDir: ${JSON.stringify(baseDir)}, registryDir: ${JSON.stringify(registryDir)},
        controllerManager: false, log: () => {} });
      process.stdout.write(JSON.stringify({ pids: c.pids, dataDir: c.dataDir }) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    owner.stdout.on('data', (c) => {
      out += c;
    });
    const started = await waitFor(
      () => (out.includes('\n') ? (JSON.parse(out) as { pids: number[]; dataDir: string }) : undefined),
      {
        timeoutMs: 90_000,
        message: 'the owner process to start its cluster',
      },
    );
    const exited = new Promise((r) => owner.once('exit', r));
    owner.kill('SIGKILL');
    await exited;
    for (const pid of started.pids) expect(isProcessAlive(pid)).toBe(true); // orphaned, still running

    const reaped = await reapStaleClusters(registryDir);
    expect(reaped.sort()).toEqual([...started.pids].sort());
    for (const pid of started.pids) expect(isProcessAlive(pid)).toBe(false);
    expect(existsSync(started.dataDir)).toBe(false);
    expect(readdirSync(registryDir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });
});
