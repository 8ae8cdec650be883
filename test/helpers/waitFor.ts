/**
 * Condition-based waits for tests (never bare sleeps): `waitFor` polls with backoff, `waitForObject`
 * watches one object until a predicate holds.
 */
import { isGone, type KubeClient } from '../../api/kubeClient.ts';

export interface WaitOptions {
  timeoutMs?: number;
  /** Says what was awaited; part of the timeout error. */
  message?: string;
  initialIntervalMs?: number;
  maxIntervalMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describe(v: unknown): string {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v)?.slice(0, 500) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * Polls `condition` until it returns a truthy value (which is returned). A throw counts as "not yet";
 * the last value or error is part of the timeout message.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let delay = opts.initialIntervalMs ?? 20;
  let last: unknown;
  for (;;) {
    try {
      const v = await condition();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${opts.message ?? 'condition'}; last: ${describe(last)}`,
      );
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    delay = Math.min(delay * 2, opts.maxIntervalMs ?? 500);
  }
}

/**
 * Watches the object `name` in the collection `collectionPath` until `predicate` holds for it;
 * resolves with the object. Checks the current state first (list), then follows watch events.
 */
export async function waitForObject<T extends { metadata?: { name?: string; resourceVersion?: string } }>(
  client: KubeClient,
  collectionPath: string,
  name: string,
  predicate: (obj: T) => boolean,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let last: T | undefined;
  const fieldSelector = `metadata.name=${name}`;
  try {
    for (;;) {
      const list = await client.list<T>(collectionPath, { fieldSelector });
      last = list.items[0];
      if (last && predicate(last)) return last;
      let found: T | undefined;
      const inner = new AbortController();
      const onAbort = () => inner.abort();
      abort.signal.addEventListener('abort', onAbort);
      try {
        await client.watch<T>(
          collectionPath,
          { fieldSelector, resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 60 },
          (ev) => {
            if (ev.type === 'BOOKMARK') return;
            last = ev.type === 'DELETED' ? undefined : ev.object;
            if (last && predicate(last)) {
              found = last;
              inner.abort();
            }
          },
          inner.signal,
        );
      } catch (err) {
        if (!isGone(err)) throw err; // 410: the list below starts over
      } finally {
        abort.signal.removeEventListener('abort', onAbort);
      }
      if (found) return found;
      if (abort.signal.aborted) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${opts.message ?? `${collectionPath}/${name}`}; ` +
            `last: ${describe(last)}`,
        );
      }
      // the watch ended (server timeout or 410): list again
    }
  } finally {
    clearTimeout(timer);
  }
}
