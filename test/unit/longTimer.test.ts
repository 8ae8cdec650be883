import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, setLongTimeout } from '../../api/longTimer.ts';
import { WorkQueue } from '../../controller/workQueue.ts';

const HOUR = 3_600_000;

describe('setLongTimeout', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires a 600h delay after 600h, not after 1 ms (Node caps one timer at 2^31-1 ms)', () => {
    const fired = vi.fn();
    setLongTimeout(fired, 600 * HOUR);
    vi.advanceTimersByTime(1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(600 * HOUR - MAX_TIMER_MS - 2);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('fires a short delay once, on time', () => {
    const fired = vi.fn();
    setLongTimeout(fired, 250);
    vi.advanceTimersByTime(249);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10 * HOUR);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('can be cancelled in any segment of a chain', () => {
    const fired = vi.fn();
    const cancel = setLongTimeout(fired, 3 * MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS + 5);
    cancel();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
  });

  it('never fires for Infinity; fires at once for a negative or NaN delay', () => {
    const never = vi.fn();
    const now = vi.fn();
    setLongTimeout(never, Number.POSITIVE_INFINITY);
    setLongTimeout(now, -5);
    setLongTimeout(now, Number.NaN);
    vi.advanceTimersByTime(0);
    expect(now).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(100 * MAX_TIMER_MS);
    expect(never).not.toHaveBeenCalled();
  });
});

describe('WorkQueue.addAfter with a 600h requeue (a ttl of 600h)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('processes the key after 600h, not in a hot loop', async () => {
    const seen: string[] = [];
    const q = new WorkQueue({
      process: async (key) => {
        seen.push(key);
        return undefined;
      },
    });
    q.addAfter('Semaphore/ns/s', 600 * HOUR);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 1000);
    expect(seen).toEqual([]);
    await vi.advanceTimersByTimeAsync(600 * HOUR);
    expect(seen).toEqual(['Semaphore/ns/s']);
    await q.shutdown();
  });
});
