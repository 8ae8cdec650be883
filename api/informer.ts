/**
 * List+watch cache of one resource collection, like client-go's reflector + store:
 * lists, then watches from the list's resourceVersion with bookmarks; on 410 Gone re-lists and
 * emits the difference; on any other error (watch dropped, API server restarted) backs off with
 * jitter and resumes. It never gives up while running: a controller's caches must outlive the
 * API server's restarts.
 *
 * The cache is keyed by namespace/name, but an object is its UID: when a re-list (or any event) brings a
 * new UID under a name the cache holds with another UID — the object was deleted and recreated while the
 * watch was away — the informer emits `deleted` for the old object and `added` for the new one, never an
 * `updated` that would silently replace one object with another (a deleted holder's grant would leak).
 */
import { backoffDelay, WATCH_BACKOFF } from './backoff.ts';
import { isGone, type KubeClient } from './kubeClient.ts';
import type { Query, WatchEvent } from './kubeRequest.ts';
import { setLongTimeout } from './longTimer.ts';

export interface ObjectWithMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
}

export type InformerEvent<T> =
  | { type: 'added'; object: T }
  | { type: 'updated'; object: T; old: T }
  | { type: 'deleted'; object: T };

export interface InformerOptions<T> {
  /** Collection path, e.g. /api/v1/pods or /apis/sync.konductor.io/v1/namespaces/ns/semaphores */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Strips what the cache does not need (keeps memory flat with many objects). */
  transform?: (obj: T) => T;
  onEvent: (ev: InformerEvent<T>) => void;
  onError?: (err: unknown, attempt: number) => void;
  /** Backoff bounds after a failed list or watch. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch timeout; the watch is renewed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** A re-list that closed a gap (a watch that resumed into 410 Gone: events were missed) has completed. */
  onRelisted?: () => void;
}

export const objectKey = (o: ObjectWithMeta) =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

export class Informer<T extends ObjectWithMeta> {
  private readonly store = new Map<string, T>();
  private readonly abort = new AbortController();
  private resourceVersion = '';
  private syncedResolve!: () => void;
  private running = false;
  /** A watch resumed into 410 Gone (events were missed) and the re-list that follows has not completed. */
  private gap = false;
  /** Resolves once the first list has been delivered to onEvent. */
  readonly synced: Promise<void>;
  hasSynced = false;

  private readonly client: KubeClient;
  private readonly opts: InformerOptions<T>;

  constructor(client: KubeClient, opts: InformerOptions<T>) {
    this.client = client;
    this.opts = opts;
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
  }

  /**
   * The cache misses nothing its watch could have told: it has synced, and no re-list after a 410 Gone is
   * pending. While it is false the cache may hold objects that are gone or changed since (hasSynced stays true:
   * readiness must not flap with every compaction).
   */
  get current(): boolean {
    return this.hasSynced && !this.gap;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }
  list(): IterableIterator<T> {
    return this.store.values();
  }
  get size(): number {
    return this.store.size;
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    void this.run();
    return this;
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
  }

  private selectors(): Query {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private put(raw: T): void {
    const obj = this.opts.transform ? this.opts.transform(raw) : raw;
    const key = objectKey(obj);
    const old = this.store.get(key);
    this.store.set(key, obj);
    if (old && old.metadata?.uid !== obj.metadata?.uid) {
      this.opts.onEvent({ type: 'deleted', object: old });
      this.opts.onEvent({ type: 'added', object: obj });
      return;
    }
    this.opts.onEvent(old ? { type: 'updated', object: obj, old } : { type: 'added', object: obj });
  }

  private async relist(): Promise<void> {
    // Page by page, each page slimmed (transform) and cached before the next is fetched, so a list of
    // 10,000 pods never holds more than one page of full objects. Pages share one snapshot (continue).
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.list<T>(this.opts.path, {
        ...this.selectors(),
        limit: 500,
        continue: cont,
      });
      for (const item of page.items) {
        seen.add(objectKey(item));
        this.put(item);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    for (const [key, obj] of this.store) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.opts.onEvent({ type: 'deleted', object: obj });
      }
    }
    this.resourceVersion = rv;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.syncedResolve();
    }
    if (this.gap) {
      this.gap = false;
      this.opts.onRelisted?.();
    }
  }

  private handle(ev: WatchEvent<T>): void {
    const rv = ev.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (ev.type === 'BOOKMARK') return;
    if (ev.type === 'DELETED') {
      const key = objectKey(ev.object);
      const old = this.store.get(key);
      // A deletion of an object the cache no longer holds under this name (already replaced) changes nothing.
      if (old && old.metadata?.uid !== ev.object.metadata?.uid) return;
      this.store.delete(key);
      this.opts.onEvent({ type: 'deleted', object: old ?? ev.object });
      return;
    }
    this.put(ev.object);
  }

  private async run(): Promise<void> {
    const policy = {
      baseMs: this.opts.minBackoffMs ?? WATCH_BACKOFF.baseMs,
      maxMs: this.opts.maxBackoffMs ?? WATCH_BACKOFF.maxMs,
    };
    let attempt = 0;
    let needList = true;
    while (this.running) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.client.watch<T>(
          this.opts.path,
          {
            ...this.selectors(),
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300,
          },
          (ev) => {
            attempt = 0;
            this.handle(ev);
          },
          this.abort.signal,
        );
        attempt = 0; // a normal end of the watch: renew at once
      } catch (err) {
        if (!this.running) return;
        if (isGone(err)) {
          needList = true;
          this.gap = true;
        }
        attempt++;
        this.opts.onError?.(err, attempt);
        await delay(backoffDelay(attempt - 1, Math.random, policy), this.abort.signal);
      }
    }
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const cancel = setLongTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        cancel();
        resolve();
      },
      { once: true },
    );
  });
}
