/**
 * `npm run campaign -- --rounds N --seed S` (docs/reliability.md): the fault campaign on a devcluster of its
 * own. `--round R` replays round R of seed S alone. Exits 1 on any violation.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type CampaignReport, runCampaign } from './campaign.ts';
import { NODE_KINDS, type NodeKind } from './environment.ts';
import { FAULT_KINDS, type FaultKind, FULL_SHAPE, type RoundShape, SHORT_SHAPE } from './plan.ts';

const HELP = `usage: npm run campaign -- [options]

  --rounds N         rounds to run (default 100; 0: only the bad-input flood)
  --seed S           the campaign's seed (default: a new random one, printed)
  --round R          replay round R of the seed alone (with --seed)
  --node KIND        process (default: the devcluster's process kubelet) or real (the devcluster's real node: kubelet, containerd; one per machine)
  --pods N           workload pods per round (default ${FULL_SHAPE.pods})
  --fault-seconds F  length of each round's fault phase (default ${FULL_SHAPE.faultPhaseMs / 1000})
  --short            the short rounds of npm test (${SHORT_SHAPE.pods} pods, ${SHORT_SHAPE.faultPhaseMs / 1000} s of faults)
  --bad-input N      AdmissionReviews and agent API requests of the flood, each (default 10000; 0: no flood)
  --manager M        bundle (default: dist/konductor.js, as the image runs it) or sources (cmd/konductor.ts)
  --faults K,K      deal only these fault kinds (default: all; names as in docs/reliability.md)
  --minutes M        start no round after M minutes (the rounds run are reported; the flood still runs)
  --out FILE         the JSON report (default campaign/results/<seed>-<time>.json)
  --resume FILE      go on with the run of this report (its seed, shape, node and --rounds) from the round
                     after its last, in the same file: a long run carried over several sittings, each
                     sitting's commit and load recorded (combine with --minutes and --bad-input)
`;

/** The report of an earlier sitting, read for --resume (a clear error if it is not one). */
function readResumable(file: string): CampaignReport {
  let report: CampaignReport;
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as CampaignReport;
  } catch (err) {
    throw new Error(`--resume ${file}: not a campaign report (${(err as Error).message})`);
  }
  if (typeof report.nextRound !== 'number' || !Array.isArray(report.rounds))
    throw new Error(`--resume ${file}: not a campaign report written by a run that can be resumed`);
  if (report.nextRound >= report.firstRound + report.roundsRequested)
    throw new Error(
      `--resume ${file}: that run is complete (${report.rounds.length} of ${report.roundsRequested} rounds)`,
    );
  return report;
}

/** The commit the campaign runs, for the report (`-dirty` when the tree has changes). */
function currentCommit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '100' },
      seed: { type: 'string' },
      round: { type: 'string' },
      node: { type: 'string', default: 'process' },
      pods: { type: 'string' },
      'fault-seconds': { type: 'string' },
      short: { type: 'boolean', default: false },
      'bad-input': { type: 'string', default: '10000' },
      manager: { type: 'string', default: 'bundle' },
      out: { type: 'string' },
      minutes: { type: 'string' },
      faults: { type: 'string' },
      resume: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const int = (v: string | undefined, flag: string, min = 0) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag} must be an integer >= ${min}, not "${v}"`);
    return n;
  };
  if (!NODE_KINDS.includes(values.node as NodeKind))
    throw new Error(`--node must be one of ${NODE_KINDS.join(', ')}, not "${values.node}"`);
  if (values.round !== undefined && values.seed === undefined)
    throw new Error('--round needs the --seed of the run');
  const previous = values.resume ? readResumable(values.resume) : undefined;
  if (previous) {
    const fixed = ['seed', 'round', 'pods', 'fault-seconds', 'faults', 'rounds', 'short', 'node'];
    const given = fixed.filter((f) => process.argv.includes(`--${f}`));
    if (given.length > 0)
      throw new Error(`--resume takes the run's own settings from its report; drop --${given.join(', --')}`);
  }
  const base = values.short ? SHORT_SHAPE : FULL_SHAPE;
  const faultKinds = values.faults?.split(',').map((k) => k.trim());
  for (const k of faultKinds ?? [])
    if (!FAULT_KINDS.includes(k as FaultKind))
      throw new Error(`--faults: unknown fault kind "${k}" (one of ${FAULT_KINDS.join(', ')})`);
  const shape: RoundShape = {
    ...base,
    ...(faultKinds ? { faultKinds: faultKinds as FaultKind[] } : {}),
    ...(values.pods ? { pods: int(values.pods, 'pods', 1) } : {}),
    ...(values['fault-seconds']
      ? {
          faultPhaseMs: int(values['fault-seconds'], 'fault-seconds', 1) * 1000,
          podWindowMs: Math.round(
            int(values['fault-seconds'], 'fault-seconds', 1) * 1000 * (base.podWindowMs / base.faultPhaseMs),
          ),
        }
      : {}),
  };
  const seed = previous?.seed ?? values.seed ?? randomBytes(4).toString('hex');
  const replay = values.round !== undefined;
  const report = await runCampaign({
    seed,
    rounds: previous ? previous.roundsRequested : replay ? 1 : int(values.rounds, 'rounds', 0),
    firstRound: replay ? int(values.round, 'round') : 0,
    shape: previous?.shape ?? shape,
    commit: currentCommit(),
    ...(previous ? { previous } : {}),
    node: previous?.node ?? (values.node as NodeKind),
    badInput: replay ? 0 : int(values['bad-input'], 'bad-input'),
    managerFromBundle: values.manager !== 'sources',
    command: `npm run campaign -- ${process.argv.slice(2).join(' ')}`.trim(),
    log: (line) => process.stdout.write(`${line}\n`),
    ...(values.out ? { resultsPath: values.out } : {}),
    ...(values.minutes ? { timeBudgetMs: int(values.minutes, 'minutes', 1) * 60_000 } : {}),
  });
  process.stdout.write(`\n${report.summary}\n\n`);
  for (const f of report.floodFailures) process.stdout.write(`FLOOD: ${f}\n`);
  for (const e of report.harnessErrors) process.stdout.write(`HARNESS: ${e.split('\n')[0]}\n`);
  process.stdout.write(
    report.passed
      ? `campaign passed: seed ${seed}, ${report.totals.rounds} rounds${report.stoppedByTimeBudget ? ` (of ${report.roundsRequested}: time budget)` : ''}, 0 violations\n`
      : `campaign FAILED: seed ${seed}, ${report.totals.violations} violation(s), ${report.floodFailures.length} flood failure(s); replay a round with --seed ${seed} --round R\n`,
  );
  return report.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`campaign: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
