/**
 * The manager's memory budget (cmd/memoryBudget.ts): V8's old space and the agent connection cap derived
 * from the container's memory limit, applied by re-executing node at start-up (same pid), so the chart's
 * default 128Mi degrades (collects harder, caps connections) instead of being OOM-killed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BYTES_PER_AGENT_CONNECTION,
  budgetNodeFlags,
  memoryBudget,
  nodeFlagGiven,
  watchHeapPressure,
} from '../../cmd/memoryBudget.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';

const MiB = 1024 * 1024;

describe('memoryBudget', () => {
  it('gives the chart default (128Mi) a 57 MiB old space and 512 agent connections', () => {
    expect(memoryBudget(128 * MiB)).toEqual({ limitBytes: 128 * MiB, heapMiB: 57, maxAgentConnections: 512 });
    expect(memoryBudget(512 * MiB)).toMatchObject({ heapMiB: 230, maxAgentConnections: 2048 });
  });

  it('no limit (absent, 0, cgroup v1’s 2^63, libuv’s 2^64-1) means no budget', () => {
    for (const l of [undefined, 0, -1, Number.NaN, 2 ** 63, 2 ** 64 - 1])
      expect(memoryBudget(l)).toBeUndefined();
  });

  it('heap + connections stay within 70% of any limit from 128 MiB, and never below the floors', () => {
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 1 << 20 }), (mib) => {
        const b = memoryBudget(mib * MiB);
        expect(b).toBeDefined();
        expect(b?.heapMiB).toBeGreaterThanOrEqual(32);
        expect(b?.maxAgentConnections).toBeGreaterThanOrEqual(64);
        if (mib >= 128) {
          const used = (b?.heapMiB ?? 0) * MiB + (b?.maxAgentConnections ?? 0) * BYTES_PER_AGENT_CONNECTION;
          expect(used * 10).toBeLessThanOrEqual(7 * mib * MiB); // integers: no rounding error
        }
      }),
    );
  });

  it('respects heap flags given on the command line or in NODE_OPTIONS', () => {
    expect(nodeFlagGiven('max-old-space-size', ['--max-old-space-size=100'], undefined)).toBe(true);
    expect(nodeFlagGiven('max-old-space-size', [], '--inspect --max-old-space-size=100')).toBe(true);
    expect(nodeFlagGiven('max-old-space-size', ['--max-old-space-size-x'], '')).toBe(false);
    const b = memoryBudget(128 * MiB);
    if (!b) throw new Error('no budget');
    expect(budgetNodeFlags(b, [])).toEqual(['--max-old-space-size=57', '--max-semi-space-size=2']);
    expect(budgetNodeFlags(b, ['--max-semi-space-size=8'])).toEqual(['--max-old-space-size=57']);
  });

  it('warns once per episode of heap pressure', async () => {
    const warnings: string[] = [];
    const used = [50, 90, 95, 40, 88];
    let i = 0;
    const stop = watchHeapPressure(
      (_f, msg) => warnings.push(msg),
      () => ({ used_heap_size: used[Math.min(i++, used.length - 1)] ?? 0, heap_size_limit: 100 }),
      1,
    );
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (i >= used.length) {
          clearInterval(t);
          resolve();
        }
      }, 1);
    });
    stop();
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/memory pressure/);
  });
});

/** Runs the manager until its first log line (it then fails: no kubeconfig). */
function firstLogLine(
  env: NodeJS.ProcessEnv,
  nodeArgs: string[] = [],
): Promise<{ pid: number; line: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...nodeArgs, join(REPO_ROOT, 'cmd/konductor.ts'), '--kubeconfig=/nonexistent'],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        resolve({ pid: child.pid ?? 0, line: JSON.parse(out.slice(0, nl)) as Record<string, unknown> });
        child.kill();
      }
    });
    child.on('error', reject);
    child.on('exit', () => reject(new Error(`no log line: ${out}`)));
  });
}

describe('the manager applies its budget at start-up', () => {
  it('re-executes node with the old space derived from a 128Mi limit', async () => {
    const { line } = await firstLogLine({ KONDUCTOR_MEMORY_LIMIT: String(128 * MiB) });
    expect(line.msg).toBe('memory budget');
    expect(line.memoryLimitMiB).toBe(128);
    // old space 57 MiB + a young generation of 3 x 2 MiB semi-spaces
    expect(line.heapLimitMiB).toBe(63);
    expect(line.maxAgentConnections).toBe(512);
  });

  it('leaves an explicit --max-old-space-size alone', async () => {
    const given = await firstLogLine({ KONDUCTOR_MEMORY_LIMIT: String(128 * MiB) }, [
      '--max-old-space-size=100',
      '--max-semi-space-size=2',
    ]);
    expect(given.line.heapLimitMiB).toBe(106);
    expect(given.line.maxAgentConnections).toBe(512);
  });

  it('the image does not fix the heap size (Dockerfile.webhook’s ENTRYPOINT leaves it to the budget)', () => {
    const entry = readFileSync(join(REPO_ROOT, 'Dockerfile.webhook'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('ENTRYPOINT'));
    expect(entry).toBeDefined();
    expect(entry).not.toContain('--max-old-space-size');
  });
});
