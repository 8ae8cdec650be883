import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, FULL_SHAPE, faultKindAt, planRound, SHORT_SHAPE } from '../../campaign/plan.ts';
import { createRng, seedOf } from '../../campaign/random.ts';
import { podManifest, workScript } from '../../campaign/workload.ts';

describe('campaign plan', () => {
  it('is a pure function of (seed, round, shape): a round replays alone', () => {
    expect(planRound('abc', 7, FULL_SHAPE)).toEqual(planRound('abc', 7, FULL_SHAPE));
    expect(planRound('abc', 7, FULL_SHAPE)).not.toEqual(planRound('abd', 7, FULL_SHAPE));
    expect(planRound('abc', 7, FULL_SHAPE)).not.toEqual(planRound('abc', 8, FULL_SHAPE));
  });

  it('injects a fault every 1–3 s over the fault phase', () => {
    const plan = planRound('gaps', 0, FULL_SHAPE);
    const times = plan.faults.map((f) => f.atMs);
    expect(times[0]).toBe(1000);
    for (let i = 1; i < times.length; i++) {
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1000);
      expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(3000);
    }
    expect(times.at(-1)).toBeLessThanOrEqual(FULL_SHAPE.faultPhaseMs);
  });

  it('deals every kind once per cycle across rounds, so a few short rounds inject all of them', () => {
    const kinds = Array.from({ length: FAULT_KINDS.length * 3 }, (_, n) => faultKindAt('cycles', n));
    for (let c = 0; c < 3; c++)
      expect(new Set(kinds.slice(c * FAULT_KINDS.length, (c + 1) * FAULT_KINDS.length)).size).toBe(
        FAULT_KINDS.length,
      );
    // Rounds continue the deal where the previous round stopped.
    const r0 = planRound('cycles', 0, SHORT_SHAPE).faults.map((f) => f.kind);
    const r1 = planRound('cycles', 1, SHORT_SHAPE).faults.map((f) => f.kind);
    expect([...r0, ...r1]).toEqual(kinds.slice(0, r0.length + r1.length));
  });

  it('deals only the chosen fault kinds when the shape names them (--faults)', () => {
    const shape = { ...FULL_SHAPE, faultKinds: ['graceful-delete', 'hold-killed'] as const };
    const kinds = new Set([0, 1].flatMap((r) => planRound('chosen', r, shape).faults.map((f) => f.kind)));
    expect([...kinds].sort()).toEqual(['graceful-delete', 'hold-killed']);
  });

  it('plans a mixed workload: every primitive, several annotations, priorities, near-limit wait-timeouts', () => {
    const pods = Array.from({ length: 6 }, (_, r) => planRound('mix', r, FULL_SHAPE).pods).flat();
    const kinds = new Set(pods.flatMap((p) => p.refs.map((r) => r.kind)));
    expect([...kinds].sort()).toEqual(['Barrier', 'Gate', 'Lease', 'Semaphore']);
    expect(pods.some((p) => p.refs.length >= 2)).toBe(true);
    expect(pods.some((p) => p.annotations['konductor.io/priority'] !== undefined)).toBe(true);
    expect(pods.some((p) => p.annotations['konductor.io/permits'] === '2')).toBe(true);
    expect(pods.some((p) => p.annotations['konductor.io/wait-timeout'] === '597h')).toBe(true);
    expect(pods.some((p) => p.restartPolicy === 'OnFailure')).toBe(true);
    // Every pod's work ends well within its grace period (a graceful deletion never ends in SIGKILL).
    expect(Math.max(...pods.map((p) => p.workMs))).toBeLessThan(14_000);
    const plan = planRound('mix', 0, FULL_SHAPE);
    const barrierPods = plan.pods.filter((p) => p.refs.some((r) => r.kind === 'Barrier'));
    expect(barrierPods).toHaveLength(plan.primitives.start.expected);
    expect(plan.primitives.start.quorum).toBeLessThan(plan.primitives.start.expected);
  });

  it("the workload's script stamps start, SIGTERM and end to a file named after the pod and its UID", () => {
    const pod = planRound('script', 0, SHORT_SHAPE).pods[0]!;
    const manifest = podManifest(pod, '/stamps');
    expect(manifest.spec.volumes[0]).toEqual({
      name: 'stamps',
      hostPath: { path: '/stamps', type: 'DirectoryOrCreate' },
    });
    // The process kubelet maps busybox to the host's shell; a real node runs the image it is given.
    expect(manifest.spec.containers[0]?.image).toBe('busybox');
    expect(podManifest(pod, '/stamps', 'konductor/campaign-shell:1').spec.containers[0]?.image).toBe(
      'konductor/campaign-shell:1',
    );
    const script = workScript({ ...pod, workMs: 1500, exitCode: 1, failFirstRun: false });
    expect(script).toContain('F=/campaign-stamps/$POD_NAME.$POD_UID');
    expect(script).toContain(`trap 'echo term $(/usr/bin/date +%s%N) >> "$F"' TERM`);
    expect(script).toContain('sleep 1.500 & p=$!');
    expect(script).toMatch(/X=1\necho end .*\nexit \$X$/);
  });

  it('seeded generators are stable and independent per label', () => {
    const a = createRng(seedOf('x', 1));
    const b = createRng(seedOf('x', 1));
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    expect(createRng(1).fork('p').next()).not.toBe(createRng(1).fork('q').next());
    const r = createRng(3);
    for (let i = 0; i < 200; i++) {
      const n = r.int(2, 4);
      expect(n).toBeGreaterThanOrEqual(2);
      expect(n).toBeLessThanOrEqual(4);
    }
  });
});
