/**
 * The wait stream's state machine (controller/arbitration/waitStream.ts): which events POST /v1/wait sends
 * for each standing of the pod, and when it ends. The route around it is test/unit/agent-api.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PrimitiveKind } from '../../api/kinds.ts';
import type { Grant, QueueStanding, WaitEvent } from '../../api/protocol.ts';
import type { StageState } from '../../controller/arbitration/stages.ts';
import {
  type PodStanding,
  stepWaitStream,
  WAIT_STREAM_START,
  type WaitStreamState,
} from '../../controller/arbitration/waitStream.ts';

const POD = { namespace: 'ns', name: 'p' };

const grant = (kind: PrimitiveKind, name: string, token = 1): Grant => ({
  kind,
  name,
  namespace: 'ns',
  token,
  grantedAt: '2026-01-01T00:00:00Z',
  pod: 'p',
  uid: 'u',
});
const passed = (kind: PrimitiveKind, name: string, token = 1): StageState => ({
  state: 'passed',
  grant: grant(kind, name, token),
});
const waiting = (kind: PrimitiveKind, name: string, position: number, extra: Partial<QueueStanding> = {}) =>
  ({
    state: 'waiting',
    standing: {
      primitive: { kind, name, namespace: 'ns' },
      position,
      queueLength: 3,
      message: '',
      ...extra,
    },
  }) satisfies StageState;
/** A pod with `total` stages, standing as `stages` says. */
const standing = (total: number, ...stages: StageState[]): PodStanding => ({
  pod: { stages: Array.from({ length: total }) },
  stages,
});

/** Runs the standings through the machine, as the route does, until it ends. */
function run(...standings: (PodStanding | undefined)[]): { events: WaitEvent[]; ended: boolean } {
  let state: WaitStreamState = WAIT_STREAM_START;
  const events: WaitEvent[] = [];
  for (const s of standings) {
    const step = stepWaitStream(state, s, POD);
    state = step.state;
    events.push(...step.events);
    if (step.end) return { events, ended: true };
  }
  return { events, ended: false };
}

const types = (events: WaitEvent[]) => events.map((e) => e.type);

describe('stepWaitStream', () => {
  it('a pod already granted everything gets its grants and done at once', () => {
    const { events, ended } = run(standing(2, passed('Lease', 'l'), passed('Semaphore', 's')));
    expect(ended).toBe(true);
    expect(events).toEqual([
      { type: 'granted', grant: grant('Lease', 'l') },
      { type: 'granted', grant: grant('Semaphore', 's') },
      { type: 'done', grants: [grant('Lease', 'l'), grant('Semaphore', 's')] },
    ]);
  });

  it('queued first, nothing for an unchanged standing, progress when it changes, then granted and done', () => {
    const { events, ended } = run(
      standing(1, waiting('Semaphore', 's', 2)),
      standing(1, waiting('Semaphore', 's', 2)),
      standing(1, waiting('Semaphore', 's', 1)),
      standing(1, passed('Semaphore', 's')),
    );
    expect(ended).toBe(true);
    expect(types(events)).toEqual(['queued', 'progress', 'granted', 'done']);
    expect(events[0]).toMatchObject({ type: 'queued', position: 2 });
    expect(events[1]).toMatchObject({ type: 'progress', position: 1 });
  });

  it('each primitive is queued once and granted once, in acquisition order', () => {
    const { events } = run(
      standing(2, waiting('Lease', 'l', 1, { holder: 'other' })),
      standing(2, passed('Lease', 'l'), waiting('Semaphore', 's', 1)),
      standing(2, passed('Lease', 'l'), waiting('Semaphore', 's', 1, { inUse: 1 })),
      standing(2, passed('Lease', 'l'), passed('Semaphore', 's')),
    );
    expect(events.map((e) => (e.type === 'granted' ? `granted ${e.grant.kind}` : e.type))).toEqual([
      'queued',
      'granted Lease',
      'queued',
      'progress',
      'granted Semaphore',
      'done',
    ]);
  });

  it('done carries the grants as held now (a recreated primitive granted anew), not the first announced', () => {
    const { events } = run(
      standing(2, passed('Lease', 'l', 1), waiting('Semaphore', 's', 1)),
      standing(2, passed('Lease', 'l', 7), passed('Semaphore', 's', 3)),
    );
    expect(types(events)).toEqual(['granted', 'queued', 'granted', 'done']);
    expect(events.at(-1)).toEqual({
      type: 'done',
      grants: [grant('Lease', 'l', 7), grant('Semaphore', 's', 3)],
    });
  });

  it('a failed stage ends the stream with its reason, after the grants before it', () => {
    const { events, ended } = run(
      standing(2, passed('Gate', 'g'), { state: 'failed', reason: 'WaitTimeout', message: 'too long' }),
    );
    expect(ended).toBe(true);
    expect(events).toEqual([
      { type: 'granted', grant: grant('Gate', 'g') },
      { type: 'failed', reason: 'WaitTimeout', message: 'too long' },
    ]);
  });

  it('a pod gone from the cache fails PodTerminating', () => {
    const { events, ended } = run(standing(1, waiting('Barrier', 'b', 0)), undefined);
    expect(ended).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'failed', reason: 'PodTerminating', message: 'pod ns/p is gone' });
  });

  it('whatever the standings: one verdict at most and last, grants never repeated, progress only after queued', () => {
    const kinds: [PrimitiveKind, string][] = [
      ['Gate', 'g'],
      ['Lease', 'l'],
      ['Semaphore', 's'],
    ];
    // A standing: how many stages passed (and their tokens), and where the pod stands in the next.
    const arbStanding = fc
      .record({
        passedCount: fc.integer({ min: 0, max: 3 }),
        tokens: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 3, maxLength: 3 }),
        position: fc.integer({ min: 0, max: 2 }),
        fail: fc.boolean(),
        gone: fc.boolean(),
      })
      .map(({ passedCount, tokens, position, fail, gone }): PodStanding | undefined => {
        if (gone && fail) return undefined;
        const stages: StageState[] = kinds.slice(0, passedCount).map(([k, n], i) => passed(k, n, tokens[i]));
        if (passedCount < kinds.length) {
          const [k, n] = kinds[passedCount]!;
          stages.push(
            fail ? { state: 'failed', reason: 'WaitTimeout', message: 'x' } : waiting(k, n, position),
          );
        }
        return standing(kinds.length, ...stages);
      });
    fc.assert(
      fc.property(fc.array(arbStanding, { maxLength: 12 }), (standings) => {
        const { events } = run(...standings);
        const verdicts = events.filter((e) => e.type === 'done' || e.type === 'failed');
        expect(verdicts.length).toBeLessThanOrEqual(1);
        if (verdicts.length === 1) expect(events.at(-1)).toBe(verdicts[0]);
        const granted = events.flatMap((e) =>
          e.type === 'granted' ? [`${e.grant.kind}/${e.grant.name}`] : [],
        );
        expect(new Set(granted).size).toBe(granted.length);
        const queued = new Set<string>();
        for (const e of events) {
          if (e.type === 'queued') queued.add(`${e.primitive.kind}/${e.primitive.name}`);
          if (e.type === 'progress') expect(queued.has(`${e.primitive.kind}/${e.primitive.name}`)).toBe(true);
        }
      }),
    );
  });
});
