/**
 * Two pure decisions of `npm run cluster`: when the agent bundle the process kubelet runs must be rebuilt
 * (missing, or older than a source), and how long the supervisor waits before restarting a dead manager.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { restartDelayMs } from '../../devcluster/konductor.ts';
import { newestFile, staleReason } from '../../scripts/build.ts';

const dir = mkdtempSync(join(tmpdir(), 'konductor-stale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('staleReason', () => {
  it('builds when the output is missing or older than any input, not otherwise', async () => {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'deep'), { recursive: true });
    const a = join(src, 'a.ts');
    const b = join(src, 'deep', 'b.ts');
    const out = join(dir, 'out.js');
    writeFileSync(a, 'a');
    writeFileSync(b, 'b');
    const t = Date.now() / 1000;
    utimesSync(a, t - 100, t - 100);
    utimesSync(b, t - 50, t - 50);
    expect(await staleReason(out, [src])).toMatch(/out\.js is missing/);
    writeFileSync(out, 'x');
    utimesSync(out, t - 10, t - 10);
    expect(await staleReason(out, [src])).toBeUndefined();
    utimesSync(b, t, t); // a source changed after the build
    expect(await staleReason(out, [src])).toMatch(/deep\/b\.ts changed after .*out\.js was built/);
    expect((await newestFile([src, join(dir, 'absent')]))?.path).toBe(b);
  });
});

describe('restartDelayMs', () => {
  it('backs off 1 s, 2 s, 4 s ... up to 30 s between restarts', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20, 1000].map(restartDelayMs)).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000,
    ]);
  });
});
