/**
 * Smoke test of the benchmark suite (bench/): every benchmark runs in its `--tiny` mode (minimal counts,
 * its own devcluster where it needs one) and writes a well-formed result file: every figure with its floor
 * from the same run and the ratio (or the reason it has none), the machine's load and steal time.
 * Benchmarks are not tests: nothing here looks at a timing or compares a figure with its target.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchResult } from '../../bench/common.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BENCHMARKS = ['agent', 'webhook', 'handoff', 'throughput', 'scale', 'memory-limit', 'wait-resources'];
const resultsDir = mkdtempSync(join(tmpdir(), 'konductor-bench-smoke-'));
afterAll(() => rmSync(resultsDir, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'run.ts'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('bench (tiny mode)', () => {
  // Seven benchmarks, each with its floor and most with a fresh devcluster: about 4 minutes here, well over 10
  // at a load average of 50 on 2 cores. The bound only catches a hang.
  it('runs every benchmark and writes well-formed JSON', { timeout: 1_500_000 }, async () => {
    const { code, output } = await runBench(['--tiny', '--results-dir', resultsDir]);
    expect(code, output).toBe(0);
    for (const name of BENCHMARKS) {
      const result = JSON.parse(readFileSync(join(resultsDir, `${name}.json`), 'utf8')) as BenchResult;
      expect(result.benchmark).toBe(name);
      expect(result.mode).toBe('tiny');
      expect(result.method.length).toBeGreaterThan(40);
      expect(result.environment.node).toBe(process.version);
      expect(result.environment.cores).toBeGreaterThan(0);
      expect(result.environment.kubernetes).toMatch(/^v1\.\d+/);
      expect(result.environment.loadAverageAtStart).toHaveLength(3);
      expect(result.loadAverageAtEnd).toHaveLength(3);
      expect(Object.keys(result.parameters).length).toBeGreaterThan(0);
      expect(result.figures.length).toBeGreaterThan(0);
      for (const f of result.figures) {
        expect(typeof f.name).toBe('string');
        expect(Number.isFinite(f.value), `${name}: ${f.name} = ${f.value}`).toBe(true);
        expect(f.unit.length).toBeGreaterThan(0);
        if (f.target !== undefined) expect(typeof f.meetsTarget).toBe('boolean');
        // A floor measured in the same run and the ratio to it, or the reason there is none.
        if (f.noFloor === undefined) {
          expect(Number.isFinite(f.floor), `${name}: ${f.name} floor = ${f.floor}`).toBe(true);
          expect(Number.isFinite(f.ratio), `${name}: ${f.name} ratio = ${f.ratio}`).toBe(true);
          expect(f.floorName?.length ?? 0, `${name}: ${f.name} floorName`).toBeGreaterThan(5);
          if (f.ratioTarget !== undefined) expect(typeof f.meetsRatioTarget).toBe('boolean');
        } else {
          expect(f.floor).toBeUndefined();
          expect(f.noFloor.length).toBeGreaterThan(10);
        }
      }
      // Most figures have a floor; the exceptions are counts.
      expect(result.figures.filter((f) => f.floor !== undefined).length).toBeGreaterThan(0);
      // The machine during the run: load at both ends, steal and busy share from /proc/stat.
      expect(result.machine.loadAverageAtStart).toHaveLength(3);
      expect(result.machine.loadAverageAtEnd).toHaveLength(3);
      for (const k of ['stealPercent', 'busyPercent', 'idlePercent', 'seconds'] as const) {
        expect(Number.isFinite(result.machine[k]), `${name}: machine.${k}`).toBe(true);
        expect(result.machine[k]).toBeGreaterThanOrEqual(0);
      }
      // Every benchmark states its method on stdout too.
      expect(output).toContain(`=== ${name}`);
    }
    expect(output).toMatch(/method: /);
    // npm run bench prints, for each figure, its floor and the ratio beside the value.
    expect(output).toMatch(/\n {6}floor \S+ \S+ \(.+\); ratio \d/);
    expect(output).toMatch(/machine during the run: load average .* steal /);
  });

  it('rejects an unknown benchmark name', async () => {
    const { code, output } = await runBench(['--tiny', '--results-dir', resultsDir, 'no-such-bench']);
    expect(code).toBe(1);
    expect(output).toContain('unknown benchmark');
  });
});
