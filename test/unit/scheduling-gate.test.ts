import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { SCHEDULING_GATE } from '../../api/constants.ts';
import type { Pod } from '../../api/types.ts';
import { schedulingGateRemoval } from '../../controller/arbitration/schedulingGate.ts';

const pod = (
  gates: string[] | undefined,
  extra: Partial<Pod['metadata']> = {},
  status: Pod['status'] = {},
): Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u1', ...extra },
  spec: {
    restartPolicy: 'Never',
    containers: [{ name: 'main' }],
    ...(gates ? { schedulingGates: gates.map((name) => ({ name })) } : {}),
  },
  status,
});

describe('schedulingGateRemoval', () => {
  it('removes konductor.io/wait once the pod has passed everything, guarded by its UID and the gate name', () => {
    const p = pod(['other.io/a', SCHEDULING_GATE, 'other.io/b']);
    expect(schedulingGateRemoval(p, false)).toBeUndefined();
    const patch = schedulingGateRemoval(p, true);
    expect(patch).toEqual([
      { op: 'test', path: '/metadata/uid', value: 'u1' },
      { op: 'test', path: '/spec/schedulingGates/1/name', value: SCHEDULING_GATE },
      { op: 'remove', path: '/spec/schedulingGates/1' },
    ]);
    const out = jsonpatch.applyPatch(p, patch!, true, false).newDocument;
    expect(out.spec.schedulingGates?.map((g) => g.name)).toEqual(['other.io/a', 'other.io/b']);
    // Refused when the pod is another one of the same name, or its gates moved.
    expect(() =>
      jsonpatch.applyPatch({ ...p, metadata: { ...p.metadata, uid: 'u2' } }, patch!, true, false),
    ).toThrow();
    expect(() => jsonpatch.applyPatch(pod([SCHEDULING_GATE, 'x.io/y']), patch!, true, false)).toThrow();
  });

  it('leaves a pod without the gate, being deleted, or finished', () => {
    expect(schedulingGateRemoval(pod(undefined), true)).toBeUndefined();
    expect(schedulingGateRemoval(pod(['other.io/a']), true)).toBeUndefined();
    expect(
      schedulingGateRemoval(pod([SCHEDULING_GATE], { deletionTimestamp: '2030-01-01T00:00:00Z' }), true),
    ).toBeUndefined();
    expect(schedulingGateRemoval(pod([SCHEDULING_GATE], {}, { phase: 'Failed' }), true)).toBeUndefined();
  });

  it('property: applied to any gate list, removes exactly konductor.io/wait and keeps the others in order', () => {
    const name = fc.oneof(fc.constant(SCHEDULING_GATE), fc.stringMatching(/^[a-z]{1,4}\.io\/[a-z]{1,4}$/));
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 5 }), fc.boolean(), (gates, cleared) => {
        const p = pod(gates);
        const patch = schedulingGateRemoval(p, cleared);
        const has = gates.includes(SCHEDULING_GATE);
        expect(patch !== undefined).toBe(cleared && has);
        if (!patch) return;
        const out = jsonpatch.applyPatch(p, patch, true, false).newDocument;
        expect(out.spec.schedulingGates?.map((g) => g.name)).toEqual(
          gates.filter((g) => g !== SCHEDULING_GATE),
        );
        // Level-triggered: once applied, nothing more to do.
        expect(schedulingGateRemoval(out, true)).toBeUndefined();
      }),
    );
  });
});
