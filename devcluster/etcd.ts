/**
 * Talking to the devcluster's etcd directly (its v3 JSON gateway) and restarting it: what tests and the fault
 * campaign need to put the API server's storage through its edges — compaction (watches resuming from an
 * older resourceVersion get 410 Gone) and an etcd crash or restart on the same data.
 */
import { etcdReadiness, waitReady } from './componentReadiness.ts';
import type { DevCluster } from './controlPlane.ts';
import type { ManagedProcess } from './processes.ts';

/** POSTs JSON to etcd's gateway (e.g. `/v3/kv/range`) and returns the parsed answer. */
export async function etcdPost<T>(etcdUrl: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${etcdUrl}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** etcd's current revision (the resourceVersion of the latest write). */
export async function etcdRevision(etcdUrl: string): Promise<number> {
  const r = await etcdPost<{ header: { revision: string } }>(etcdUrl, '/v3/kv/range', {
    key: Buffer.from('/').toString('base64'),
    limit: 1,
  });
  return Number(r.header.revision);
}

/**
 * Compacts etcd (physically) at `revision`, by default the current one: every older resourceVersion is gone,
 * and a watch resuming from one gets 410 Gone. Returns the revision.
 */
export async function compactEtcd(etcdUrl: string, revision?: number): Promise<number> {
  const at = revision ?? (await etcdRevision(etcdUrl));
  await etcdPost(etcdUrl, '/v3/kv/compaction', { revision: String(at), physical: true });
  return at;
}

/** The running etcd process of a cluster (a restarted one replaces the first). */
export function etcdProcess(cluster: Pick<DevCluster, 'processes'>): ManagedProcess | undefined {
  return cluster.processes.processes.findLast((p) => p.component === 'etcd' && !p.exitInfo);
}

/**
 * Stops etcd with `signal` (SIGKILL: a crash) and starts it again with the same flags and data; resolves once
 * it answers /health. The API server reconnects by itself.
 */
export async function restartEtcd(
  cluster: Pick<DevCluster, 'processes' | 'etcdUrl'>,
  signal: NodeJS.Signals = 'SIGKILL',
  timeoutMs = 60_000,
): Promise<void> {
  const old = etcdProcess(cluster);
  if (!old) throw new Error('etcd is not running');
  old.expectedExit = true;
  old.child.kill(signal);
  const killer = setTimeout(() => old.child.kill('SIGKILL'), 10_000);
  await old.exited;
  clearTimeout(killer);
  const proc = await cluster.processes.spawn('etcd', old.bin, old.args, old.logPath);
  await waitReady(proc, etcdReadiness(cluster.etcdUrl), timeoutMs);
}
