import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeWaitEvent, encodeWaitEvent, formatProgress, type WaitEvent } from '../../api/protocol.ts';

const semaphore = { kind: 'Semaphore' as const, name: 'batch-slots', namespace: 'default' };

describe('formatProgress', () => {
  it('describes a semaphore queue position and its use', () => {
    expect(
      formatProgress({
        primitive: semaphore,
        position: 2,
        queueLength: 4,
        message: '',
        inUse: 2,
        capacity: 2,
      }),
    ).toBe('waiting for semaphore default/batch-slots: position 2 of 4 (2/2 permits in use)');
  });
  it('mentions a multi-permit request and a lease holder', () => {
    expect(
      formatProgress({
        primitive: semaphore,
        position: 1,
        queueLength: 1,
        message: '',
        inUse: 3,
        capacity: 4,
        requested: 2,
      }),
    ).toBe('waiting for semaphore default/batch-slots: position 1 of 1 (3/4 permits in use, needs 2)');
    expect(
      formatProgress({
        primitive: { kind: 'Lease', name: 'db', namespace: 'ns' },
        position: 1,
        queueLength: 3,
        message: '',
        holder: 'job-a-x1',
      }),
    ).toBe('waiting for lease ns/db: position 1 of 3 (held by job-a-x1)');
  });
  it('describes a barrier and a gate without a queue position', () => {
    expect(
      formatProgress({
        primitive: { kind: 'Barrier', name: 'start', namespace: 'ns' },
        position: 0,
        queueLength: 0,
        message: '',
        arrived: 3,
        expected: 5,
      }),
    ).toBe('waiting for barrier ns/start: 3/5 arrived');
    expect(
      formatProgress({
        primitive: { kind: 'Gate', name: 'g', namespace: 'ns' },
        position: 0,
        queueLength: 0,
        message: '',
        unmet: ['job ns/prep is not Complete'],
      }),
    ).toBe('waiting for gate ns/g: not yet: job ns/prep is not Complete');
  });
  it('says when the primitive does not exist yet', () => {
    expect(
      formatProgress({ primitive: semaphore, position: 0, queueLength: 0, message: '', missing: true }),
    ).toBe('waiting for semaphore default/batch-slots: it does not exist yet');
  });
});

describe('NDJSON wait events', () => {
  it('round-trips every event type', () => {
    const events: WaitEvent[] = [
      { type: 'queued', primitive: semaphore, position: 1, queueLength: 1, message: 'm' },
      { type: 'progress', primitive: semaphore, position: 1, queueLength: 1, message: 'm' },
      {
        type: 'granted',
        grant: { ...semaphore, token: 4, grantedAt: '2025-01-01T00:00:00Z', pod: 'p', uid: 'u' },
      },
      { type: 'done', grants: [] },
      { type: 'failed', reason: 'WaitTimeout', message: 'gave up after 10m' },
      { type: 'heartbeat' },
    ];
    for (const e of events) {
      const line = encodeWaitEvent(e);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n');
      expect(decodeWaitEvent(line)).toEqual(e);
    }
  });
  it('returns null for blank, malformed or unknown lines, never throws', () => {
    for (const line of ['', '  ', '{', 'null', '42', '{"type":"nope"}', '[]'])
      expect(decodeWaitEvent(line)).toBeNull();
    fc.assert(
      fc.property(fc.string(), (s) => {
        decodeWaitEvent(s);
      }),
    );
  });
});
