/**
 * Two runs of the suite side by side: each figure's value, floor and ratio in both, and how far the ratios
 * are apart (run 2 / run 1 - 1), with each run's load and steal. The ratio is what should carry from one
 * run to the next on a shared machine (docs/benchmarks.md keeps them within 20 %).
 *
 * Usage: node bench/compare.ts RESULTS_DIR_1 RESULTS_DIR_2 (directories written by npm run bench --
 * --results-dir DIR). Prints a markdown table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResult } from './common.ts';

const NAMES = ['agent', 'webhook', 'handoff', 'throughput', 'scale', 'memory-limit', 'realnode'];

function load(dir: string): Map<string, BenchResult> {
  const out = new Map<string, BenchResult>();
  for (const n of NAMES) {
    const f = join(dir, `${n}.json`);
    if (existsSync(f)) out.set(n, JSON.parse(readFileSync(f, 'utf8')) as BenchResult);
  }
  return out;
}

const machine = (r: BenchResult | undefined) =>
  r?.machine
    ? `load ${r.machine.loadAverageAtStart[0]}->${r.machine.loadAverageAtEnd[0]}, steal ${r.machine.stealPercent} %`
    : '';

function main(): void {
  const [a, b] = process.argv.slice(2);
  if (!a || !b) throw new Error('usage: node bench/compare.ts RESULTS_DIR_1 RESULTS_DIR_2');
  const one = load(a);
  const two = load(b);
  const lines = [
    '| figure | target; as a ratio | run 1: value / floor / **ratio** | run 2: value / floor / **ratio** | ratio change |',
    '|---|---|---|---|---|',
  ];
  for (const n of NAMES) {
    const r1 = one.get(n);
    const r2 = two.get(n);
    if (!r1 || !r2) continue;
    const at = (r: BenchResult) => r.environment.startedAt.slice(0, 16).replace('T', ' ');
    lines.push(`| **${n}** | | ${at(r1)}, ${machine(r1)} | ${at(r2)}, ${machine(r2)} | |`);
    for (const f1 of r1.figures) {
      const f2 = r2.figures.find((f) => f.name === f1.name);
      if (!f2) continue;
      const cell = (f: typeof f1) =>
        f.floor === undefined ? `${f.value} ${f.unit}` : `${f.value} / ${f.floor} ${f.unit} / **${f.ratio}**`;
      const change =
        f1.ratio !== undefined && f2.ratio !== undefined
          ? `${Math.round((f2.ratio / f1.ratio - 1) * 1000) / 10} %`
          : `${Math.round((f2.value / f1.value - 1) * 1000) / 10} % (value)`;
      const targets = [f1.target, f1.ratioTarget].filter(Boolean).join('; ');
      lines.push(`| ${f1.name} | ${targets} | ${cell(f1)} | ${cell(f2)} | ${change} |`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
