/**
 * A short fault campaign as the tests run it (test/integration/campaign.test.ts on the process kubelet): the
 * short shape, the manager from the bundle the image runs, no results file; the campaign's lines kept, and
 * each failing round's printed block.
 */
import { type CampaignReport, runCampaign } from '../../campaign/campaign.ts';
import type { NodeKind } from '../../campaign/environment.ts';
import { planRound, SHORT_SHAPE } from '../../campaign/plan.ts';
import { failureBlock } from '../../campaign/report.ts';

export interface ShortCampaign {
  report: CampaignReport;
  /** What the campaign printed. */
  lines: string[];
  /** The failure blocks of the rounds with violations (seed, schedule, versions, intervals). */
  failures: string;
}

export async function runShortCampaign(opts: {
  seed: string;
  rounds: number;
  node: NodeKind;
  badInput: number;
  command: string;
}): Promise<ShortCampaign> {
  const lines: string[] = [];
  const report = await runCampaign({
    seed: opts.seed,
    rounds: opts.rounds,
    firstRound: 0,
    shape: SHORT_SHAPE,
    node: opts.node,
    badInput: opts.badInput,
    // As the image runs it: the memory bound (the chart's 128Mi) is about the bundle; from the sources
    // the manager carries ~25 MiB more (bench scale) and peaked just over 128 MiB in the flood.
    managerFromBundle: true,
    command: opts.command,
    log: (line) => lines.push(line),
    resultsPath: '',
  });
  const failures = report.rounds
    .filter((r) => r.violations.length > 0)
    .map((r) => failureBlock(r, planRound(opts.seed, r.round, SHORT_SHAPE)))
    .join('\n');
  return { report, lines, failures };
}
