/**
 * The campaign's figures (pure): per-round results summed up, a failure's replay block, and the summary
 * table docs/reliability.md reports.
 */
import { type Summary, summarize } from '../bench/common.ts';
import type { FloodResult } from './flood.ts';
import { FAULT_KINDS, type FaultKind, type RoundPlan } from './plan.ts';
import type { RoundResult } from './round.ts';

export interface CampaignTotals {
  rounds: number;
  podsPlanned: number;
  podsCreated: number;
  faults: Record<FaultKind, { planned: number; injected: number }>;
  faultsInjected: number;
  versionsChecked: number;
  intervalsChecked: number;
  violations: number;
  leakedPermits: number;
  watchGaps: number;
  drainMs: Summary;
  permitReturnMaxMs: number;
  permitReturns: number;
  staleGrants: number;
  staleGrantMaxLagMs: number;
  maxRssMiB: number;
  maxIdleReconcilesPerSecond: number;
  topologies: Record<string, number>;
}

export function totals(rounds: readonly RoundResult[]): CampaignTotals {
  const faults = Object.fromEntries(
    FAULT_KINDS.map((k) => [k, { planned: 0, injected: 0 }]),
  ) as CampaignTotals['faults'];
  const topologies: Record<string, number> = {};
  for (const r of rounds) {
    topologies[r.topology] = (topologies[r.topology] ?? 0) + 1;
    for (const f of r.faults) {
      faults[f.kind].planned++;
      if (f.injected) faults[f.kind].injected++;
    }
  }
  const stale = rounds.flatMap((r) => r.staleGrants);
  const sum = (f: (r: RoundResult) => number) => rounds.reduce((s, r) => s + f(r), 0);
  return {
    rounds: rounds.length,
    podsPlanned: sum((r) => r.podsPlanned),
    podsCreated: sum((r) => r.podsCreated),
    faults,
    faultsInjected: sum((r) => r.faults.filter((f) => f.injected).length),
    versionsChecked: sum((r) => r.versionsChecked),
    intervalsChecked: sum((r) => r.intervalsChecked),
    violations: sum((r) => r.violations.length),
    leakedPermits: sum((r) => r.leakedPermits),
    watchGaps: sum((r) => r.watchGaps.length),
    drainMs: summarize(
      rounds.map((r) => r.drainMs),
      0,
    ),
    permitReturnMaxMs: Math.max(0, ...rounds.map((r) => r.permitReturnMaxMs)),
    permitReturns: sum((r) => r.permitReturns),
    staleGrants: stale.length,
    staleGrantMaxLagMs: Math.round(Math.max(0, ...stale.map((s) => s.lagMs))),
    maxRssMiB: Math.max(0, ...rounds.map((r) => r.maxRssMiB)),
    maxIdleReconcilesPerSecond: Math.max(0, ...rounds.map((r) => r.idleReconcilesPerSecond)),
    topologies,
  };
}

export const replayCommand = (seed: string, round: number) =>
  `npm run campaign -- --seed ${seed} --round ${round}`;

/** What a failed round prints: seed, round, replay command, the schedule as run, every violation. */
export function failureBlock(r: RoundResult, plan: RoundPlan): string {
  const lines = [
    `VIOLATIONS in round ${r.round} of seed ${r.seed} (${r.topology}, namespace ${r.namespace})`,
    `  replay: ${replayCommand(r.seed, r.round)}`,
    ...(r.historyPath ? [`  every version the watcher saw: ${r.historyPath}`] : []),
    '  fault schedule (planned @ started..ended, s):',
    ...r.faults.map((f) => {
      const params = plan.faults.find((p) => p.index === f.index)?.params ?? {};
      return `    #${f.index} ${f.kind} ${JSON.stringify(params)} @${(f.plannedAtMs / 1000).toFixed(1)} ${(f.startedAtMs / 1000).toFixed(1)}..${(f.endedAtMs / 1000).toFixed(1)}: ${f.detail}`;
    }),
    `  violations (${r.violations.length}):`,
    ...r.violations.flatMap((v) => [
      `    [${v.check}] ${v.message}`,
      ...(v.versions?.length ? [`      status versions: ${v.versions.join(', ')}`] : []),
      ...(v.intervals ?? []).map((i) => `      interval: ${i}`),
    ]),
  ];
  return lines.join('\n');
}

/** One line per round. */
export function roundLine(r: RoundResult): string {
  const injected = r.faults.filter((f) => f.injected).length;
  return (
    `round ${r.round}: ${r.topology}, ${r.podsCreated}/${r.podsPlanned} pods, ${injected}/${r.faults.length} faults, ` +
    `${r.versionsChecked} status versions, ${r.intervalsChecked} container runs, drained ${(r.drainMs / 1000).toFixed(1)} s ` +
    `after the last fault, permits back within ${(r.permitReturnMaxMs / 1000).toFixed(1)} s, RSS ≤ ${r.maxRssMiB} MiB, ` +
    `${r.violations.length} violation(s) (${Math.round(r.durationMs / 1000)} s)`
  );
}

/** The summary in Markdown (docs/reliability.md's figures). */
export function markdownSummary(
  t: CampaignTotals,
  flood: FloodResult | undefined,
  command: string,
  roundsRequested = t.rounds,
): string {
  const rows = [
    ['command', `\`${command}\``],
    [
      'rounds x pods',
      `${t.rounds} x ${Math.round(t.podsPlanned / Math.max(1, t.rounds))} (${t.podsCreated} pods created; topologies ${JSON.stringify(t.topologies)})${t.rounds < roundsRequested ? `; ${roundsRequested} asked, the time budget stopped it` : ''}`,
    ],
    ['faults injected', `${t.faultsInjected}`],
    ['status versions checked', `${t.versionsChecked}`],
    ['container runs checked', `${t.intervalsChecked}`],
    ['violations', `${t.violations}`],
    ['leaked permits', `${t.leakedPermits}`],
    ['versions missed by the watcher', `${t.watchGaps}`],
    [
      'drain after the last fault',
      `p50 ${(t.drainMs.p50 / 1000).toFixed(1)} s, max ${(t.drainMs.max / 1000).toFixed(1)} s`,
    ],
    [
      "a finished pod's permit back (after the heal)",
      `max ${(t.permitReturnMaxMs / 1000).toFixed(1)} s over ${t.permitReturns} returns (bound 10 s)`,
    ],
    [
      'grants to a pod finishing while it was decided',
      `${t.staleGrants} (largest lag ${t.staleGrantMaxLagMs} ms)`,
    ],
    ['manager RSS', `max ${t.maxRssMiB} MiB (limit 128 MiB)`],
    ['reconciles while idle', `max ${t.maxIdleReconcilesPerSecond}/s`],
  ];
  if (flood) {
    const fmt = (s: { p50: number; p99: number; max: number }) =>
      `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`;
    rows.push(
      [
        'bad AdmissionReviews sent',
        `${flood.admission.sent} (${JSON.stringify(flood.admission.byStatus)}), unclear answers ${flood.admission.problems}`,
      ],
      [
        'bad agent API requests sent',
        `${flood.agent.sent} (${JSON.stringify(flood.agent.byStatus)}), unclear answers ${flood.agent.problems}; ${flood.slowBodies.sent} slow bodies cut within ${(flood.slowBodies.cutWithinMs / 1000).toFixed(1)} s; ${flood.streams.opened} wait streams of one pod, ${flood.streams.stillOpen} left open`,
      ],
      ['manager crashes', `${flood.crashes}`],
      [
        'manager RSS (flood)',
        `idle ${flood.rss.idleMiB} MiB; after the warm-up tenth ${flood.rss.baselineMiB} MiB, peak ${flood.rss.peakMiB} MiB, after ${flood.rss.afterMiB} MiB`,
      ],
      [
        'well-formed admission latency',
        `alone ${fmt(flood.wellFormed.baseline)}; during the agent API flood (its own port) ${fmt(flood.wellFormed.duringAgentFlood)}; during the admission flood ${fmt(flood.wellFormed.duringAdmissionFlood)}; ${flood.wellFormed.failures} failed`,
      ],
    );
  }
  const faultRows = FAULT_KINDS.map((k) => `| ${k} | ${t.faults[k].injected} | ${t.faults[k].planned} |`);
  return [
    '| figure | value |',
    '| --- | --- |',
    ...rows.map(([a, b]) => `| ${a} | ${b} |`),
    '',
    '| fault | injected | planned |',
    '| --- | --- | --- |',
    ...faultRows,
  ].join('\n');
}
