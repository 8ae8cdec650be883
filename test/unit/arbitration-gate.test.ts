import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Gate, GateConditionType, Job } from '../../api/types.ts';
import {
  evaluateGate,
  type GateLookup,
  type GateTarget,
  gateReadersAllow,
  gateVerdict,
  referencesOf,
} from '../../controller/arbitration/gate.ts';
import { barrier, gate, lease, semaphore, T0 } from '../helpers/arbitrationFixtures.ts';

const job = (conditions: { type: string; status: 'True' | 'False' }[], active = 0): Job => ({
  metadata: { name: 'prep', namespace: 'default' },
  spec: { template: { spec: { containers: [] } } },
  status: { active, conditions },
});

function lookupFrom(objects: Record<string, GateTarget>): GateLookup {
  return (type, namespace, name) => objects[`${type}/${namespace}/${name}`];
}

describe('evaluateGate: conditions', () => {
  it('Job Complete / Failed', () => {
    const g = gate([{ type: 'Job', name: 'prep', state: 'Complete' }]);
    const missing = evaluateGate({ gate: g, lookup: () => undefined, now: T0 });
    expect(missing.status.phase).toBe('Waiting');
    expect(missing.status.conditionStatuses).toEqual([
      { type: 'Job', name: 'prep', namespace: 'default', met: false, message: 'job default/prep not found' },
    ]);
    const running = evaluateGate({
      gate: g,
      lookup: lookupFrom({ 'Job/default/prep': job([], 2) }),
      now: T0,
    });
    expect(running.status.conditionStatuses[0]?.message).toBe(
      'job default/prep is not Complete yet (active 2, succeeded 0, failed 0)',
    );
    const failedJob = job([{ type: 'Failed', status: 'True' }]);
    const failed = evaluateGate({ gate: g, lookup: lookupFrom({ 'Job/default/prep': failedJob }), now: T0 });
    expect(failed.status.conditionStatuses[0]).toMatchObject({
      met: false,
      message: 'job default/prep is Failed, needs Complete',
    });
    const done = job([{ type: 'Complete', status: 'True' }]);
    const open = evaluateGate({ gate: g, lookup: lookupFrom({ 'Job/default/prep': done }), now: T0 });
    expect(open.status.phase).toBe('Open');
    const onFailure = gate([{ type: 'Job', name: 'prep', state: 'Failed' }]);
    expect(
      evaluateGate({ gate: onFailure, lookup: lookupFrom({ 'Job/default/prep': failedJob }), now: T0 }).status
        .phase,
    ).toBe('Open');
    const notTrue = job([{ type: 'Complete', status: 'False' }]);
    expect(
      evaluateGate({ gate: g, lookup: lookupFrom({ 'Job/default/prep': notTrue }), now: T0 }).status.phase,
    ).toBe('Waiting');
  });

  it('Semaphore Available with a value', () => {
    const g = gate([{ type: 'Semaphore', name: 'slots', namespace: 'other', state: 'Available', value: 2 }]);
    const sem = (available: number) =>
      semaphore(3, {
        status: { inUse: 3 - available, available, phase: 'Ready', holders: [], waiting: 0, nextToken: 1 },
      });
    // Namespace `other` lets gates of `default` read it (konductor.io/gate-readers).
    const mayRead = (target: string, from: string) => target === 'other' && from === 'default';
    const one = evaluateGate({
      gate: g,
      lookup: lookupFrom({ 'Semaphore/other/slots': sem(1) }),
      now: T0,
      mayRead,
    });
    expect(one.status.conditionStatuses[0]).toMatchObject({
      met: false,
      message: 'semaphore other/slots has 1 available, needs 2',
    });
    expect(one.status.phase).toBe('Waiting');
    const two = evaluateGate({
      gate: g,
      lookup: lookupFrom({ 'Semaphore/other/slots': sem(2) }),
      now: T0,
      mayRead,
    });
    expect(two.status.phase).toBe('Open');
    const noStatus = evaluateGate({
      gate: g,
      lookup: lookupFrom({ 'Semaphore/other/slots': semaphore(3) }),
      now: T0,
      mayRead,
    });
    expect(noStatus.status.conditionStatuses[0]?.met).toBe(false);
    // value defaults to 1
    const dflt = gate([{ type: 'Semaphore', name: 'slots', state: 'Available' }]);
    expect(
      evaluateGate({ gate: dflt, lookup: lookupFrom({ 'Semaphore/default/slots': sem(1) }), now: T0 }).status
        .phase,
    ).toBe('Open');
  });

  it('a condition on another namespace is not met unless that namespace opts in, and says how', () => {
    const g = gate([{ type: 'Job', name: 'prep', namespace: 'team-b', state: 'Complete' }]);
    const done = {
      ...job([{ type: 'Complete', status: 'True' }]),
      metadata: { name: 'prep', namespace: 'team-b' },
    };
    const lookup = lookupFrom({ 'Job/team-b/prep': done });
    const refused = evaluateGate({ gate: g, lookup, now: T0 });
    expect(refused.status.phase).toBe('Waiting');
    expect(refused.status.conditionStatuses[0]).toEqual({
      type: 'Job',
      name: 'prep',
      namespace: 'team-b',
      met: false,
      message:
        'job team-b/prep: namespace team-b does not let gates of namespace default read it (its owner can ' +
        'allow it: kubectl annotate namespace team-b konductor.io/gate-readers=default)',
    });
    const allowed = evaluateGate({
      gate: g,
      lookup,
      now: T0,
      mayRead: (target, from) =>
        gateReadersAllow({ 'konductor.io/gate-readers': 'x, default' }, from) && target === 'team-b',
    });
    expect(allowed.status.phase).toBe('Open');
  });

  it('konductor.io/gate-readers lists namespaces, or * for all', () => {
    expect(gateReadersAllow(undefined, 'a')).toBe(false);
    expect(gateReadersAllow({ 'konductor.io/gate-readers': 'a,b' }, 'b')).toBe(true);
    expect(gateReadersAllow({ 'konductor.io/gate-readers': ' a , b ' }, 'a')).toBe(true);
    expect(gateReadersAllow({ 'konductor.io/gate-readers': 'ab' }, 'a')).toBe(false);
    expect(gateReadersAllow({ 'konductor.io/gate-readers': '*' }, 'anyone')).toBe(true);
    expect(gateReadersAllow({ 'konductor.io/gate-readers': '' }, 'a')).toBe(false);
  });

  it('Barrier Open, Lease Available/Held, Gate Open', () => {
    const b = barrier(1, { status: { arrived: 1, arrivals: [], phase: 'Open' } });
    const l = lease('1m', { status: { phase: 'Held', waiting: 0, nextToken: 2 } });
    const other = gate([], { name: 'other', status: { phase: 'Open', conditionStatuses: [] } });
    const objects = { 'Barrier/default/start': b, 'Lease/default/db': l, 'Gate/default/other': other };
    const g = gate([
      { type: 'Barrier', name: 'start', state: 'Open' },
      { type: 'Lease', name: 'db', state: 'Held' },
      { type: 'Gate', name: 'other', state: 'Open' },
    ]);
    expect(evaluateGate({ gate: g, lookup: lookupFrom(objects), now: T0 }).status.phase).toBe('Open');
    const wantsAvailable = gate([{ type: 'Lease', name: 'db', state: 'Available' }]);
    const r = evaluateGate({ gate: wantsAvailable, lookup: lookupFrom(objects), now: T0 });
    expect(r.status.conditionStatuses[0]?.message).toBe('lease default/db is Held, needs Available');
  });

  it('a gate waiting on itself never opens; unsupported states are reported', () => {
    const self = gate([{ type: 'Gate', name: 'ready', state: 'Open' }]);
    const r = evaluateGate({ gate: self, lookup: () => self, now: T0 });
    expect(r.status.conditionStatuses[0]?.met).toBe(false);
    const bad = gate([{ type: 'Barrier', name: 'start', state: 'Closed' }]);
    const rb = evaluateGate({ gate: bad, lookup: () => undefined, now: T0 });
    expect(rb.status.conditionStatuses[0]?.message).toContain('unsupported state "Closed"');
  });
});

describe('evaluateGate: AND, latching, timeout', () => {
  it('opens only when every condition holds, then stays open', () => {
    const g = gate([
      { type: 'Job', name: 'prep', state: 'Complete' },
      { type: 'Barrier', name: 'start', state: 'Open' },
    ]);
    const done = job([{ type: 'Complete', status: 'True' }]);
    const openBarrier = barrier(1, { status: { arrived: 1, arrivals: [], phase: 'Open' } });
    const half = evaluateGate({ gate: g, lookup: lookupFrom({ 'Job/default/prep': done }), now: T0 });
    expect(half.status.phase).toBe('Waiting');
    expect(half.status.conditionStatuses.map((c) => c.met)).toEqual([true, false]);
    expect(half.status.conditions?.[0]?.message).toBe('waiting for barrier default/start not found');
    expect(gateVerdict(half.status)).toBe('wait');

    const all = evaluateGate({
      gate: { ...g, status: half.status },
      lookup: lookupFrom({ 'Job/default/prep': done, 'Barrier/default/start': openBarrier }),
      now: T0 + 5,
    });
    expect(all.status).toMatchObject({ phase: 'Open', openedAt: new Date(T0 + 5).toISOString() });
    expect(all.events).toMatchObject([{ target: 'primitive', type: 'Normal', reason: 'Opened' }]);
    expect(gateVerdict(all.status)).toBe('pass');

    // Latched: the job disappearing does not close it.
    const after = evaluateGate({
      gate: { ...g, status: all.status },
      lookup: () => undefined,
      now: T0 + 1e9,
    });
    expect(after.changed).toBe(false);
    expect(after.status.phase).toBe('Open');
  });

  it('fails after timeout counted from creation, latched', () => {
    const g = gate([{ type: 'Job', name: 'prep', state: 'Complete' }], { timeout: '15m' });
    const early = evaluateGate({ gate: g, lookup: () => undefined, now: T0 + 60_000 });
    expect(early.status.phase).toBe('Waiting');
    expect(early.requeueAfterMs).toBe(14 * 60_000);
    const late = evaluateGate({
      gate: { ...g, status: early.status },
      lookup: () => undefined,
      now: T0 + 15 * 60_000,
    });
    expect(late.status.phase).toBe('Failed');
    expect(late.events[0]).toMatchObject({ type: 'Warning', reason: 'Failed' });
    expect(late.events[0]?.message).toBe(
      'gate default/ready timed out 15m after creation, waiting for job default/prep not found',
    );
    expect(gateVerdict(late.status)).toEqual({ failed: late.events[0]?.message });
    const done = job([{ type: 'Complete', status: 'True' }]);
    const stillFailed = evaluateGate({
      gate: { ...g, status: late.status },
      lookup: lookupFrom({ 'Job/default/prep': done }),
      now: T0 + 16 * 60_000,
    });
    expect(stillFailed.status.phase).toBe('Failed');
    expect(stillFailed.changed).toBe(false);
  });

  it('referencesOf defaults namespaces and deduplicates', () => {
    const g = gate([
      { type: 'Job', name: 'prep', state: 'Complete' },
      { type: 'Job', name: 'prep', namespace: 'default', state: 'Failed' },
      { type: 'Semaphore', name: 'slots', namespace: 'x', state: 'Available' },
    ]);
    expect(referencesOf(g)).toEqual([
      { type: 'Job', namespace: 'default', name: 'prep' },
      { type: 'Semaphore', namespace: 'x', name: 'slots' },
    ]);
  });

  it('property: open iff every condition is met, idempotent', () => {
    const types: GateConditionType[] = ['Barrier', 'Lease', 'Gate'];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.constantFrom(...types),
            name: fc.constantFrom('a', 'b', 'c'),
            open: fc.boolean(),
          }),
          {
            maxLength: 6,
          },
        ),
        (conds) => {
          const objects: Record<string, GateTarget> = {};
          const spec: Gate['spec']['conditions'] = [];
          for (const c of conds) {
            const key = `${c.type}/default/${c.name}`;
            // Same object referenced twice keeps the first state.
            if (objects[key] === undefined) {
              objects[key] =
                c.type === 'Barrier'
                  ? barrier(1, { status: { arrived: 0, arrivals: [], phase: c.open ? 'Open' : 'Waiting' } })
                  : c.type === 'Lease'
                    ? lease('1m', {
                        status: { phase: c.open ? 'Held' : 'Available', waiting: 0, nextToken: 1 },
                      })
                    : gate([], {
                        name: c.name,
                        status: { phase: c.open ? 'Open' : 'Waiting', conditionStatuses: [] },
                      });
            }
            spec.push({ type: c.type, name: c.name, state: c.type === 'Lease' ? 'Held' : 'Open' });
          }
          const g = gate(spec, { name: 'under-test' });
          const lookup = lookupFrom(objects);
          const r = evaluateGate({ gate: g, lookup, now: T0 });
          const expectOpen = r.status.conditionStatuses.every((c) => c.met);
          expect(r.status.phase).toBe(expectOpen ? 'Open' : 'Waiting');
          for (const [i, c] of spec.entries()) {
            const o = objects[`${c.type}/default/${c.name}`] as { status?: { phase?: string } };
            expect(r.status.conditionStatuses[i]?.met).toBe(o.status?.phase === c.state);
          }
          const again = evaluateGate({ gate: { ...g, status: r.status }, lookup, now: T0 + 1 });
          expect(again.changed).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });
});
