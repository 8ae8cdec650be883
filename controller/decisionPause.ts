/**
 * When the controller may decide: never from a partial cache, nor from one that missed events (its watch
 * resumed into 410 Gone) until it has re-listed. Says in the log once when decisions pause and when they
 * resume.
 */
import type { Logger } from 'pino';

export class DecisionPause {
  private readonly log: Logger;
  /** The first cache that missed events and has not re-listed yet (undefined: every cache is current). */
  private readonly cacheGap: () => string | undefined;
  /** The cache whose gap pauses decisions, once said in the log. */
  private pausedBy: string | undefined;

  constructor(log: Logger, cacheGap: () => string | undefined) {
    this.log = log;
    this.cacheGap = cacheGap;
  }

  /**
   * Only the leader decides, and never from a partial cache: a holder whose pod is not listed yet would look
   * gone and be released (every key is enqueued again once all informers have synced). Nor from a cache that
   * missed events until it has re-listed: a pod that finished or went meanwhile would still look like a
   * waiter, and be granted. The re-list enqueues every key.
   */
  mayDecide(leading: boolean, synced: boolean): boolean {
    if (!leading || !synced) return false;
    const gap = this.cacheGap();
    if (gap === undefined) return true;
    if (this.pausedBy === undefined)
      this.log.info({ cache: gap }, 'decisions paused: a cache missed events (410 Gone) and is re-listing');
    this.pausedBy = gap;
    return false;
  }

  /** A cache re-listed after a gap; true once every cache is current again (decide everything again). */
  relisted(): boolean {
    if (this.cacheGap() !== undefined) return false;
    if (this.pausedBy) this.log.info({ cache: this.pausedBy }, 'caches re-listed: decisions resume');
    this.pausedBy = undefined;
    return true;
  }
}
