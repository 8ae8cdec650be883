/**
 * The fault campaign (issue 10): rounds of a mixed workload under a seeded fault schedule on a devcluster of
 * its own, each checked at every status version (an etcd watcher), against the pods' own clocks, and for
 * liveness once the faults stop; then a flood of bad input against the running manager. A failure prints the
 * seed, the round, the fault schedule and the offending versions and intervals; `--seed S --round R` replays
 * the round.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeEnvironment, type Environment, environment } from '../bench/common.ts';
import { ROOT } from '../scripts/build.ts';
import { MANAGER_MEMORY_LIMIT_BYTES, type NodeKind, startEnvironment } from './environment.ts';
import { type FloodResult, runFlood } from './flood.ts';
import { planRound, type RoundShape } from './plan.ts';
import { type CampaignTotals, failureBlock, markdownSummary, roundLine, totals } from './report.ts';
import { type RoundResult, runRound } from './round.ts';

/** Well-formed admission p99 during the flood at most (the webhook's timeoutSeconds is 5 s). */
export const FLOOD_P99_BOUND_MS = 1000;

export interface CampaignOptions {
  seed: string;
  /** Rounds to run, from firstRound on. */
  rounds: number;
  firstRound: number;
  shape: RoundShape;
  node: NodeKind;
  /** Bad inputs of each kind (AdmissionReviews, agent requests); 0 skips the flood. */
  badInput: number;
  managerFromBundle: boolean;
  /** The command line, for the report. */
  command: string;
  log: (line: string) => void;
  /** Where the JSON report goes (default campaign/results/<seed>-<time>.json); '' writes none. */
  resultsPath?: string;
  /** Start no round after this long (ms from the start); the rounds run so far are reported, the flood runs. */
  timeBudgetMs?: number;
}

export interface CampaignReport {
  command: string;
  seed: string;
  firstRound: number;
  shape: RoundShape;
  node: NodeKind;
  environment: Environment;
  /** Rounds asked for; totals.rounds were run (fewer when the time budget ran out first). */
  roundsRequested: number;
  /** The time budget stopped the campaign before roundsRequested. */
  stoppedByTimeBudget: boolean;
  totals: CampaignTotals;
  rounds: RoundResult[];
  flood?: FloodResult;
  /** Problems of the flood (unclear answers, crash, memory, latency). */
  floodFailures: string[];
  /** Rounds the harness could not run (not konductor's failures; they fail the campaign too). */
  harnessErrors: string[];
  passed: boolean;
  durationMs: number;
  summary: string;
}

export function floodFailures(f: FloodResult | undefined): string[] {
  if (!f) return [];
  const out: string[] = [];
  if (f.admission.problems)
    out.push(`${f.admission.problems} unclear admission answers: ${f.admission.examples.join(' | ')}`);
  if (f.agent.problems)
    out.push(`${f.agent.problems} unclear agent API answers: ${f.agent.examples.join(' | ')}`);
  if (f.crashes) out.push(`the manager crashed ${f.crashes} time(s)`);
  if (!f.rss.backToBaseline)
    out.push(`manager RSS ${f.rss.afterMiB} MiB after the flood, baseline ${f.rss.baselineMiB} MiB`);
  if (f.rss.peakMiB * 1024 * 1024 > MANAGER_MEMORY_LIMIT_BYTES)
    out.push(`manager RSS peaked at ${f.rss.peakMiB} MiB during the flood (limit 128 MiB)`);
  if (f.streams.stillOpen > 2) out.push(`${f.streams.stillOpen} wait streams of one pod left open (cap 2)`);
  if (f.wellFormed.failures)
    out.push(`${f.wellFormed.failures} well-formed AdmissionReviews failed during the flood`);
  if (f.wellFormed.duringFlood.p99 > FLOOD_P99_BOUND_MS)
    out.push(
      `well-formed admission p99 ${f.wellFormed.duringFlood.p99} ms during the flood (bound ${FLOOD_P99_BOUND_MS} ms)`,
    );
  return out;
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignReport> {
  const started = Date.now();
  const { log } = opts;
  const env0 = environment();
  log(
    `campaign seed ${opts.seed}, rounds ${opts.firstRound}..${opts.firstRound + opts.rounds - 1}, ${opts.shape.pods} pods per round, node ${opts.node}`,
  );
  log(describeEnvironment(env0));
  const env = await startEnvironment({ node: opts.node, managerFromBundle: opts.managerFromBundle, log });
  const rounds: RoundResult[] = [];
  let flood: FloodResult | undefined;
  let floodError: string | undefined;
  const harnessErrors: string[] = [];
  let stoppedByTimeBudget = false;
  const resultsPath =
    opts.resultsPath ??
    join(
      ROOT,
      'campaign',
      'results',
      `${opts.seed}-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`,
    );
  /** The report so far (written after every round, so a long run that dies keeps its rounds). */
  const build = (): CampaignReport => {
    const t = totals(rounds);
    const failures = [...floodFailures(flood), ...(floodError ? [floodError] : [])];
    return {
      command: opts.command,
      seed: opts.seed,
      firstRound: opts.firstRound,
      shape: opts.shape,
      node: opts.node,
      environment: env0,
      roundsRequested: opts.rounds,
      stoppedByTimeBudget,
      totals: t,
      rounds,
      ...(flood ? { flood } : {}),
      floodFailures: failures,
      harnessErrors,
      passed: t.violations === 0 && failures.length === 0 && harnessErrors.length === 0,
      durationMs: Date.now() - started,
      summary: markdownSummary(t, flood, opts.command, stoppedByTimeBudget ? opts.rounds : t.rounds),
    };
  };
  const save = async () => {
    if (resultsPath === '') return;
    await mkdir(join(resultsPath, '..'), { recursive: true });
    await writeFile(resultsPath, `${JSON.stringify(build(), null, 2)}\n`);
  };
  try {
    for (let r = opts.firstRound; r < opts.firstRound + opts.rounds; r++) {
      if (opts.timeBudgetMs !== undefined && Date.now() - started >= opts.timeBudgetMs) {
        stoppedByTimeBudget = true;
        log(
          `time budget of ${Math.round(opts.timeBudgetMs / 60_000)} min spent: ${r - opts.firstRound} of ${opts.rounds} rounds run`,
        );
        await save();
        break;
      }
      let result: RoundResult;
      try {
        result = await runRound({
          seed: opts.seed,
          round: r,
          shape: opts.shape,
          env,
          log,
          debugDir: resultsPath === '' ? join(ROOT, 'campaign', 'results') : join(resultsPath, '..'),
        });
      } catch (err) {
        // The harness itself failed (not konductor): say so and go on with the next round.
        const message = `round ${r} could not run: ${(err as Error).stack ?? String(err)}`;
        log(message);
        harnessErrors.push(message);
        await save();
        continue;
      }
      rounds.push(result);
      log(roundLine(result));
      if (result.violations.length > 0) log(failureBlock(result, planRound(opts.seed, r, opts.shape)));
      await save();
    }
    if (opts.badInput > 0) {
      try {
        flood = await runFlood(env, { seed: opts.seed, admission: opts.badInput, agent: opts.badInput, log });
      } catch (err) {
        floodError = `the flood could not run: ${(err as Error).stack ?? String(err)}`;
        log(floodError);
      }
    }
  } finally {
    await env.stop();
  }
  const report = build();
  await save();
  if (resultsPath !== '') log(`report: ${resultsPath}`);
  return report;
}
