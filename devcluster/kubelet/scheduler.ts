/**
 * The scheduler of the process kubelet (a TEST HARNESS with a single node): binds every pod with an
 * empty spec.nodeName (all namespaces) to its node through the `pods/binding` subresource, as
 * kube-scheduler does. It ignores pods with scheduling gates, pods for another schedulerName, terminating
 * pods, and pods whose nodeSelector the node's labels do not match (they stay Pending, as kube-scheduler leaves
 * an unschedulable pod). It does not evaluate affinity, taints or resources.
 *
 * Besides its watch it sweeps: every SWEEP_MS it lists the unbound pods from the API server and binds those
 * its watch did not deliver. The fault campaign once left a pod unbound for minutes after an API server
 * SIGKILL, an etcd restart and a compaction (round 4 of seed reliability-4): the harness must not be the
 * reason a pod never runs, and the sweep logs what the watch missed so such a case can be traced.
 */
import { Informer } from '../../api/informer.ts';
import { isConflict, isNotFound, type KubeClient } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import { nodeLabels } from './node.ts';
import type { KPod } from './podTypes.ts';

export function needsBinding(pod: KPod, labels: Readonly<Record<string, string>> = {}): boolean {
  const s = pod.spec;
  const fits = Object.entries(s.nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
  return (
    fits &&
    !s.nodeName &&
    !pod.metadata.deletionTimestamp &&
    !(s.schedulingGates?.length ?? 0) &&
    (!s.schedulerName || s.schedulerName === 'default-scheduler') &&
    pod.status?.phase !== 'Succeeded' &&
    pod.status?.phase !== 'Failed'
  );
}

/** How often the binder lists the unbound pods itself (its watch may have missed one). */
export const SWEEP_MS = 5000;

export class PodBinder {
  private readonly client: KubeClient;
  private readonly nodeName: string;
  private readonly labels: Readonly<Record<string, string>>;
  private readonly log: (msg: string) => void;
  private readonly informer: Informer<KPod>;
  private readonly inFlight = new Set<string>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private stopped = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(client: KubeClient, nodeName: string, log: (msg: string) => void) {
    this.client = client;
    this.nodeName = nodeName;
    this.labels = nodeLabels(nodeName);
    this.log = log;
    this.informer = new Informer<KPod>(client, {
      path: '/api/v1/pods',
      fieldSelector: 'spec.nodeName=',
      onEvent: (ev) => {
        if (ev.type !== 'deleted' && needsBinding(ev.object, this.labels)) void this.bind(ev.object);
      },
      onError: (err, attempt) => {
        if (attempt === 1) this.log(`scheduler watch error (resuming): ${(err as Error).message}`);
      },
    });
  }

  start(): Promise<void> {
    this.informer.start();
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    return this.informer.synced;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    this.informer.stop();
    for (const t of this.retries) clearTimeout(t);
  }

  /** Binds the unbound pods the API server lists (not the watch's cache); logs those the watch missed. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped || !this.informer.current) return;
    this.sweeping = true;
    try {
      const page = await this.client.list<KPod>('/api/v1/pods', { fieldSelector: 'spec.nodeName=' });
      for (const pod of page.items) {
        if (!needsBinding(pod, this.labels)) continue;
        const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
        const cached = this.informer.get(key);
        const ageMs = Date.now() - Date.parse(pod.metadata.creationTimestamp ?? '');
        if (cached?.metadata.uid !== pod.metadata.uid && ageMs > SWEEP_MS)
          this.log(
            `sweep: ${key} (${pod.metadata.uid}) is unbound and its watch did not deliver it: binding it`,
          );
        void this.bind(pod);
      }
    } catch {
      // The API server is away (a fault): the next sweep tries again.
    } finally {
      this.sweeping = false;
    }
  }

  private async bind(pod: KPod): Promise<void> {
    const uid = pod.metadata.uid ?? '';
    if (this.inFlight.has(uid) || this.stopped) return;
    this.inFlight.add(uid);
    try {
      await this.client.create(
        `${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}/binding`,
        {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, uid },
          target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName },
        },
      );
    } catch (err) {
      if (!isConflict(err) && !isNotFound(err) && !this.stopped) {
        this.log(
          `binding ${pod.metadata.namespace}/${pod.metadata.name} failed (retrying): ${(err as Error).message}`,
        );
        const t = setTimeout(() => {
          this.retries.delete(t);
          const cur = this.informer.get(`${pod.metadata.namespace}/${pod.metadata.name}`);
          if (cur && cur.metadata.uid === uid && needsBinding(cur, this.labels)) void this.bind(cur);
        }, 1000);
        this.retries.add(t);
      }
    } finally {
      this.inFlight.delete(uid);
    }
  }
}
