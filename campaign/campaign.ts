/**
 * The fault campaign (issue 10): rounds of a mixed workload under a seeded fault schedule on a devcluster of
 * its own, each checked at every status version (an etcd watcher), against the pods' own clocks, and for
 * liveness once the faults stop; then a flood of bad input against the running manager. A failure prints the
 * seed, the round, the fault schedule and the offending versions and intervals; `--seed S --round R` replays
 * the round.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
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
  /**
   * A report of an earlier chunk of this run (`--resume FILE`): its rounds are kept, this chunk goes on from
   * the round after its last, and the report counts them all. Its seed and shape must be this run's.
   */
  previous?: CampaignReport;
  /** The commit the chunk runs (`git describe`), for the report. */
  commit?: string;
}

/** One sitting of a run: a long run may be carried over several (`--resume`), each on its own commit. */
export interface CampaignChunk {
  commit: string;
  startedAt: string;
  durationMs: number;
  /** Rounds it ran: [from, to). */
  from: number;
  to: number;
  loadAverageAtStart: number;
  loadAverageAtEnd: number;
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
  /** The next round a `--resume` of this report runs. */
  nextRound: number;
  /** The sittings of the run (one unless it was resumed). */
  chunks: CampaignChunk[];
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
  /** Where the report is written (a --resume writes to the same file). */
  resultsPath: string;
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

/** A report can be resumed only by a run of the same seed, shape and node. */
function checkResumable(previous: CampaignReport, opts: CampaignOptions): void {
  const problems: string[] = [];
  if (previous.seed !== opts.seed) problems.push(`seed ${previous.seed}, not ${opts.seed}`);
  if (previous.node !== opts.node) problems.push(`node ${previous.node}, not ${opts.node}`);
  if (JSON.stringify(previous.shape) !== JSON.stringify(opts.shape))
    problems.push(`round shape ${JSON.stringify(previous.shape)}, not ${JSON.stringify(opts.shape)}`);
  if (typeof previous.nextRound !== 'number') problems.push('no nextRound (a report from before --resume)');
  if (problems.length > 0) throw new Error(`--resume: the report is of another run: ${problems.join('; ')}`);
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignReport> {
  const started = Date.now();
  const { log } = opts;
  const env0 = environment();
  const previous = opts.previous;
  if (previous) checkResumable(previous, opts);
  const env = await startEnvironment({ node: opts.node, managerFromBundle: opts.managerFromBundle, log });
  const rounds: RoundResult[] = [...(previous?.rounds ?? [])];
  let flood: FloodResult | undefined = previous?.flood;
  let floodError: string | undefined;
  const harnessErrors: string[] = [...(previous?.harnessErrors ?? [])];
  const firstRound = previous ? previous.nextRound : opts.firstRound;
  const lastRound = (previous ? previous.firstRound : opts.firstRound) + opts.rounds; // exclusive
  let nextRound = firstRound;
  log(
    `campaign seed ${opts.seed}, rounds ${firstRound}..${lastRound - 1}${previous ? ` (resuming a run of ${previous.rounds.length} rounds)` : ''}, ${opts.shape.pods} pods per round, node ${opts.node}`,
  );
  log(describeEnvironment(env0));
  const loadNow = () => Number(loadavg()[0]?.toFixed(2));
  const chunk: CampaignChunk = {
    commit: opts.commit ?? 'unknown',
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    from: firstRound,
    to: firstRound,
    loadAverageAtStart: loadNow(),
    loadAverageAtEnd: loadNow(),
  };
  let stoppedByTimeBudget = false;
  const resultsPath =
    opts.resultsPath ??
    previous?.resultsPath ??
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
    chunk.to = nextRound;
    chunk.durationMs = Date.now() - started;
    chunk.loadAverageAtEnd = loadNow();
    return {
      command: previous?.command ?? opts.command,
      seed: opts.seed,
      firstRound: previous?.firstRound ?? opts.firstRound,
      shape: opts.shape,
      node: opts.node,
      environment: previous?.environment ?? env0,
      roundsRequested: opts.rounds,
      nextRound,
      chunks: [...(previous?.chunks ?? []), chunk],
      resultsPath,
      stoppedByTimeBudget,
      totals: t,
      rounds,
      ...(flood ? { flood } : {}),
      floodFailures: failures,
      harnessErrors,
      passed: t.violations === 0 && failures.length === 0 && harnessErrors.length === 0,
      durationMs: (previous?.durationMs ?? 0) + Date.now() - started,
      summary: markdownSummary(
        t,
        flood,
        previous?.command ?? opts.command,
        stoppedByTimeBudget ? opts.rounds : t.rounds,
      ),
    };
  };
  const save = async () => {
    if (resultsPath === '') return;
    await mkdir(join(resultsPath, '..'), { recursive: true });
    await writeFile(resultsPath, `${JSON.stringify(build(), null, 2)}\n`);
  };
  try {
    for (let r = firstRound; r < lastRound; r++) {
      if (opts.timeBudgetMs !== undefined && Date.now() - started >= opts.timeBudgetMs) {
        stoppedByTimeBudget = true;
        log(
          `time budget of ${Math.round(opts.timeBudgetMs / 60_000)} min spent: ${r - firstRound} rounds in this sitting, ${rounds.length} of ${opts.rounds} in the run; go on with --resume ${resultsPath}`,
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
        nextRound = r + 1;
        await save();
        continue;
      }
      rounds.push(result);
      nextRound = r + 1;
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
