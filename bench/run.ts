/**
 * `npm run bench`: every benchmark of DESIGN §8, one after another, each on its own fresh devcluster
 * where it needs one. Each prints its figures and its method and writes bench/results/<name>.json.
 *
 *   npm run bench                      all, full counts (<= 15 minutes)
 *   npm run bench -- --quick           all, small counts (<= 2 minutes), for development
 *   npm run bench -- handoff webhook   only these (handoff, throughput, webhook, scale, agent, memory-limit,
 *                                      wait-resources)
 *   npm run bench -- --tiny            the smoke test's mode: minimal counts, checks the plumbing only
 *   --results-dir DIR                  write the JSON there instead of bench/results
 *   --profile                          also take a CPU profile of the manager (throughput, scale) or the
 *                                      webhook server (webhook) during the measured phase
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runAgent } from './agent.ts';
import { type BenchMode, type BenchOptions, type BenchResult, DEFAULT_RESULTS_DIR, round } from './common.ts';
import { summaryTable } from './floors.ts';
import { runHandoff } from './handoff.ts';
import { runMemoryLimit } from './memoryLimit.ts';
import { runRealNode } from './realnode.ts';
import { runScale } from './scale.ts';
import { runThroughput } from './throughput.ts';
import { runWaitResources } from './waitResources.ts';
import { runWebhook } from './webhook.ts';

const BENCHMARKS: Record<string, (opts: BenchOptions) => Promise<void>> = {
  agent: runAgent,
  webhook: runWebhook,
  handoff: runHandoff,
  throughput: runThroughput,
  scale: runScale,
  'memory-limit': runMemoryLimit,
  'wait-resources': runWaitResources,
  // Needs root and this machine's one real node (devcluster/realnode/): only when named.
  realnode: runRealNode,
};
const OPT_IN = new Set(['realnode']);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'results-dir': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(
      `usage: npm run bench -- [--quick|--tiny] [--profile] [--results-dir DIR] [${Object.keys(BENCHMARKS).join('|')} ...]\n`,
    );
    return;
  }
  const unknown = positionals.filter((p) => !(p in BENCHMARKS));
  if (unknown.length)
    throw new Error(
      `unknown benchmark(s) ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`,
    );
  const names = positionals.length ? positionals : Object.keys(BENCHMARKS).filter((n) => !OPT_IN.has(n));
  const mode: BenchMode = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const opts: BenchOptions = {
    mode,
    resultsDir: values['results-dir'] ?? DEFAULT_RESULTS_DIR,
    profile: values.profile,
    log: (line) => process.stdout.write(`${line}\n`),
  };
  await mkdir(opts.resultsDir, { recursive: true });
  const started = Date.now();
  const failed: string[] = [];
  for (const name of names) {
    const t = Date.now();
    opts.log(
      `\n=== ${name} (${mode}; load average ${loadavg()
        .map((l) => round(l))
        .join(' / ')}) ===`,
    );
    try {
      await (BENCHMARKS[name] as (o: BenchOptions) => Promise<void>)(opts);
    } catch (err) {
      failed.push(name);
      opts.log(`${name} FAILED: ${(err as Error).stack ?? String(err)}`);
    }
    opts.log(`=== ${name}: ${round((Date.now() - t) / 1000, 1)} s ===`);
  }
  // Every figure beside its floor and the ratio, as one table (what docs/benchmarks.md shows).
  const files = names.map((n) => join(opts.resultsDir, `${n}.json`)).filter((f) => existsSync(f));
  const ran = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as BenchResult);
  opts.log(`\n${summaryTable(ran.filter((r) => r.mode === mode && !failed.includes(r.benchmark)))}`);
  opts.log(
    `\nbench: ${names.length - failed.length}/${names.length} ran in ${round((Date.now() - started) / 1000, 1)} s`,
  );
  if (failed.length) {
    opts.log(`failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
