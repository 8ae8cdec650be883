/**
 * Independent watchers for invariant checks: an Informer on a collection, running from beforeAll (synced)
 * to afterAll, that sees every version of every object the API server publishes.
 */
import { afterAll, beforeAll } from 'vitest';
import { Informer, type ObjectWithMeta } from '../../api/informer.ts';
import type { KubeClient } from '../../api/kubeClient.ts';

/**
 * Call at a test file's top level: watches the collection `path` from beforeAll to afterAll and passes
 * every added or updated object to `onObject` (deletions are ignored).
 */
export function watchObjects<T extends ObjectWithMeta>(
  client: KubeClient,
  path: string,
  onObject: (object: T) => void,
): void {
  let watcher: Informer<T> | undefined;
  beforeAll(async () => {
    watcher = new Informer<T>(client, {
      path,
      onEvent: (ev) => {
        if (ev.type === 'deleted') return;
        onObject(ev.object);
      },
    }).start();
    await watcher.synced;
  });
  afterAll(() => watcher?.stop());
}

export interface VersionLog<T> {
  /** Every version seen, by object name, oldest first. */
  versions: Map<string, T[]>;
  /** Every invariant violation, as `<name>@<resourceVersion>: <what>`. */
  violations: string[];
}

/**
 * Call at a test file's top level: records every version of the objects in the collection `path` and
 * checks each with `check(object, earlier, violation)`, where `earlier` are the object's versions seen
 * before it (oldest first) and `violation(what)` records `<name>@<resourceVersion>: <what>`.
 */
export function recordVersions<T extends ObjectWithMeta>(
  client: KubeClient,
  path: string,
  check: (object: T, earlier: readonly T[], violation: (what: string) => void) => void,
): VersionLog<T> {
  const log: VersionLog<T> = { versions: new Map(), violations: [] };
  watchObjects<T>(client, path, (object) => {
    const name = object.metadata?.name ?? '';
    const at = `${name}@${object.metadata?.resourceVersion}`;
    const list = log.versions.get(name) ?? [];
    check(object, list, (what) => log.violations.push(`${at}: ${what}`));
    list.push(object);
    log.versions.set(name, list);
  });
  return log;
}
