/**
 * Bounds the `/v1/wait` streams open per pod. A pod's agent needs one; a second covers a reconnect while
 * the previous connection is still half-open. A stream beyond the cap closes the pod's oldest one, so a
 * reconnecting agent always gets through, and whoever holds a pod's token cannot pile up streams (each
 * costs a connection and a subscription in the manager).
 */
export const MAX_WAIT_STREAMS_PER_POD = 2;

export class WaitStreamLimiter {
  private readonly open = new Map<string, { close: () => void }[]>();
  readonly maxPerPod: number;

  constructor(maxPerPod = MAX_WAIT_STREAMS_PER_POD) {
    this.maxPerPod = Math.max(1, maxPerPod);
  }

  /**
   * Registers a stream of pod `uid`; `close` ends it (called when newer streams push it out). Returns the
   * function to call when the stream ends for any other reason.
   */
  admit(uid: string, close: () => void): () => void {
    const streams = this.open.get(uid) ?? [];
    const entry = { close };
    streams.push(entry);
    this.open.set(uid, streams);
    while (streams.length > this.maxPerPod) {
      const oldest = streams.shift();
      oldest?.close();
    }
    return () => {
      const list = this.open.get(uid);
      if (!list) return;
      const i = list.indexOf(entry);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.open.delete(uid);
    };
  }

  /** Streams open for pod `uid`. */
  count(uid: string): number {
    return this.open.get(uid)?.length ?? 0;
  }
}
