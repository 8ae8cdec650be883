/**
 * The campaign's independent watcher: a watch on etcd itself (its v3 JSON gateway, POST /v3/watch), not on
 * the API server and not the manager's view. It sees every committed version of every object under a
 * prefix — across API server crashes (etcd stays up) and etcd restarts (it resumes at the next revision) —
 * and proves it: etcd numbers each key's modifications (`version`), so a missed version is a detected gap,
 * never a silent one. The campaign's cluster stores every object as JSON (`--storage-media-type`), so pods
 * are readable too.
 *
 * Compaction would make a resume fail; the campaign only compacts at a revision this watcher has reached
 * (`revision`).
 */

export interface StoredVersion {
  key: string;
  /** The object (undefined for a deletion). */
  object: Record<string, unknown> | undefined;
  modRevision: number;
  createRevision: number;
  /** etcd's per-key modification count since creation (1 for a new key). */
  version: number;
  /** When this process received it (ms since the epoch). */
  observedAt: number;
}

export interface EtcdWatcherOptions {
  etcdUrl: string;
  /** Key prefix, e.g. `/registry/`. */
  prefix: string;
  /** The first revision to deliver. */
  startRevision: number;
  /** Keys to decode and deliver (cheap filter before JSON parsing). */
  accept: (key: string) => boolean;
  onVersion: (v: StoredVersion) => void;
  /** A key's version skipped, or the watch was compacted past: versions were missed. */
  onGap: (what: string) => void;
  log?: (line: string) => void;
}

interface WatchKv {
  key: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  value?: string;
}

interface WatchMessage {
  result?: {
    header?: { revision?: string };
    events?: { type?: string; kv: WatchKv }[];
    canceled?: boolean;
    created?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
  };
  error?: { message?: string };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
/** The end of a prefix range: the prefix with its last byte incremented. */
function rangeEnd(prefix: string): string {
  const bytes = Buffer.from(prefix);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) + 1;
  return bytes.toString('base64');
}

export class EtcdWatcher {
  private readonly opts: EtcdWatcherOptions;
  private next: number;
  /** The highest revision this watcher knows it has seen everything up to. */
  private seen: number;
  private abort: AbortController | undefined;
  private stopped = false;
  private readonly keys = new Map<string, { createRevision: number; version: number }>();
  private loop: Promise<void> | undefined;
  private waiters: { revision: number; resolve: () => void }[] = [];
  /** Versions delivered. */
  delivered = 0;
  reconnects = 0;

  constructor(opts: EtcdWatcherOptions) {
    this.opts = opts;
    this.next = opts.startRevision;
    this.seen = opts.startRevision - 1;
  }

  /** Everything up to this revision has been delivered. */
  get revision(): number {
    return this.seen;
  }

  start(): this {
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
  }

  /** Resolves once everything up to `revision` has been delivered. */
  caughtUp(revision: number): Promise<void> {
    if (this.seen >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  private advance(revision: number): void {
    if (revision <= this.seen) return;
    this.seen = revision;
    const ready = this.waiters.filter((w) => w.revision <= revision);
    this.waiters = this.waiters.filter((w) => w.revision > revision);
    for (const w of ready) w.resolve();
  }

  private async run(): Promise<void> {
    let delay = 50;
    while (!this.stopped) {
      try {
        await this.watchOnce();
        delay = 50;
      } catch (err) {
        if (this.stopped) return;
        this.opts.log?.(`etcd watch interrupted (${(err as Error).message}); resuming at ${this.next}`);
      }
      if (this.stopped) return;
      this.reconnects++;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }

  private async watchOnce(): Promise<void> {
    this.abort = new AbortController();
    const res = await fetch(`${this.opts.etcdUrl}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({
        create_request: {
          key: b64(this.opts.prefix),
          range_end: rangeEnd(this.opts.prefix),
          start_revision: String(this.next),
          progress_notify: true,
        },
      }),
      signal: this.abort.signal,
    });
    if (!res.ok || !res.body) throw new Error(`watch: HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        if (line) this.onMessage(JSON.parse(line) as WatchMessage);
      }
    }
    throw new Error('watch stream ended');
  }

  private onMessage(msg: WatchMessage): void {
    if (msg.error) throw new Error(msg.error.message ?? 'watch error');
    const r = msg.result;
    if (!r) return;
    if (r.canceled) {
      if (r.compact_revision)
        this.opts.onGap(`etcd watch compacted at ${r.compact_revision} while resuming at ${this.next}`);
      throw new Error(`watch canceled: ${r.cancel_reason ?? ''}`);
    }
    const now = Date.now();
    for (const ev of r.events ?? []) {
      const key = Buffer.from(ev.kv.key, 'base64').toString('utf8');
      const modRevision = Number(ev.kv.mod_revision ?? 0);
      this.next = Math.max(this.next, modRevision + 1);
      if (!this.opts.accept(key)) continue;
      const deleted = ev.type === 'DELETE';
      const createRevision = Number(ev.kv.create_revision ?? 0);
      const version = Number(ev.kv.version ?? 0);
      const known = this.keys.get(key);
      if (deleted) {
        this.keys.delete(key);
      } else {
        const expected = known && known.createRevision === createRevision ? known.version + 1 : 1;
        if (version !== expected)
          this.opts.onGap(`${key}: version ${version} after ${known?.version ?? 'none'} (missed versions)`);
        this.keys.set(key, { createRevision, version });
      }
      let object: Record<string, unknown> | undefined;
      if (!deleted && ev.kv.value) {
        object = JSON.parse(Buffer.from(ev.kv.value, 'base64').toString('utf8')) as Record<string, unknown>;
        const meta = (object.metadata ?? {}) as Record<string, unknown>;
        meta.resourceVersion = String(modRevision);
        object.metadata = meta;
      }
      this.delivered++;
      this.opts.onVersion({ key, object, modRevision, createRevision, version, observedAt: now });
    }
    // Events come in revision order. A message without events that is not the creation answer is a progress
    // notification: everything up to its header revision was delivered.
    const last = r.events?.length ? Number(r.events[r.events.length - 1]?.kv.mod_revision) : undefined;
    if (last !== undefined) this.advance(last);
    else if (!r.created && r.header?.revision) this.advance(Number(r.header.revision));
  }
}
