/**
 * The short fault campaign on the real node (`npm run campaign -- --node real --short`): one round of a
 * fixed seed with the workload on the upstream kubelet (containerd, runc, the agent image built from
 * Dockerfile.sidecar), the managers as supervised host processes as in process mode, and a small bad-input
 * flood. In the `realnode` project, not `e2e`: the campaign starts a control plane and real node of its own
 * (its faults kill the API server and etcd), and the e2e phase's global setup holds the machine's one real
 * node for all its files — a campaign there would wait for its own lock. docs/reliability.md, "Nodes".
 */
import { describe, expect, it } from 'vitest';
import { planRound, SHORT_SHAPE } from '../../campaign/plan.ts';
import { findLeftovers, stateLayout } from '../../devcluster/realnode/index.ts';
import { runShortCampaign } from '../helpers/campaign.ts';

const SEED = 'real-short-1';

describe('the fault campaign on the real node, short', () => {
  it('one round on real containers: no violation, every permit back, the sidecar killed by its containerd ID, no leftovers', async () => {
    const plan = planRound(SEED, 0, SHORT_SHAPE);
    expect(
      plan.faults.map((f) => f.kind),
      'the seed plans hold-killed (the containerd:// path)',
    ).toContain('hold-killed');
    const { report, lines, failures } = await runShortCampaign({
      seed: SEED,
      rounds: 1,
      node: 'real',
      badInput: 200,
      command: 'vitest test/realnode/campaign.test.ts',
    });
    expect(report.harnessErrors, lines.join('\n')).toEqual([]);
    expect(report.totals.violations, failures || lines.join('\n')).toBe(0);
    // Measured, not asserted, as in the process-node short campaign: a test must not depend on speed.
    expect(report.floodFailures.filter((f) => !f.startsWith('well-formed admission p99'))).toEqual([]);
    expect(report.totals.leakedPermits).toBe(0);
    expect(report.totals.watchGaps).toBe(0);
    expect(report.totals.intervalsChecked, 'stamps written by the real containers').toBeGreaterThan(10);
    expect(report.flood?.crashes).toBe(0);
    expect(report.node).toBe('real');
    // hold-killed found the sidecar's host process from its containerd:// ID (campaign/containerProcess.ts).
    const holdKilled = report.rounds[0]?.faults.filter((f) => f.kind === 'hold-killed') ?? [];
    expect(holdKilled.length).toBeGreaterThan(0);
    for (const f of holdKilled)
      expect(f.detail, f.detail).toMatch(/^konductor-hold of \S+ \(.*pid \d+\) sent SIG/);
    // The stop swept the node: nothing of it left on the host.
    expect(await findLeftovers(stateLayout())).toEqual([]);
  }, 900_000); // minutes on a loaded machine: a harness limit, not a speed check
});
