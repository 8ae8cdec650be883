/**
 * Pod status writes of the process kubelet (a TEST HARNESS): one strategic-merge patch of the status
 * subresource per burst of state changes. A change schedules a write on the next tick (so the
 * changes of one event loop turn coalesce); while a write is in flight, further changes wait for it
 * and go out in the next write at once. A terminated state is thus never held back by more than one
 * in-flight write.
 */
import { isConflict, isNotFound, KubeApiError, type KubeClient } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import type { PodRunner } from './podRunner.ts';
import { computePodStatus } from './podStatus.ts';
import type { KPod } from './podTypes.ts';

interface WriteState {
  scheduled: boolean;
  inFlight: Promise<void> | undefined;
  dirty: boolean;
  gone: boolean;
}

export class StatusWriter {
  private readonly client: KubeClient;
  private readonly log: (msg: string) => void;
  private readonly states = new WeakMap<PodRunner, WriteState>();

  constructor(client: KubeClient, log: (msg: string) => void) {
    this.client = client;
    this.log = log;
  }

  private state(r: PodRunner): WriteState {
    let s = this.states.get(r);
    if (!s) {
      s = { scheduled: false, inFlight: undefined, dirty: false, gone: false };
      this.states.set(r, s);
    }
    return s;
  }

  /** Marks the runner's status dirty; the write goes out on the next tick (or after the one in flight). */
  changed(r: PodRunner): void {
    const s = this.state(r);
    s.dirty = true;
    if (s.scheduled || s.inFlight || s.gone) return;
    s.scheduled = true;
    setImmediate(() => {
      s.scheduled = false;
      this.pump(r, s);
    });
  }

  private pump(r: PodRunner, s: WriteState): void {
    if (s.inFlight || !s.dirty || s.gone) return;
    s.dirty = false;
    s.inFlight = this.write(r, s).finally(() => {
      s.inFlight = undefined;
      this.pump(r, s);
    });
  }

  /** Resolves once every change so far has been written. */
  async flush(r: PodRunner): Promise<void> {
    const s = this.state(r);
    for (let i = 0; i < 100 && !s.gone && (s.dirty || s.inFlight || s.scheduled); i++) {
      if (s.inFlight) await s.inFlight;
      else if (s.dirty) this.pump(r, s);
      else await new Promise((res) => setImmediate(res));
    }
  }

  private async write(r: PodRunner, s: WriteState): Promise<void> {
    const basis: KPod = { ...r.pod, status: r.lastStatus ?? r.pod.status };
    const status = computePodStatus(basis, r.rt, new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
    const pod = r.pod;
    try {
      const updated = await this.client.patchStrategic<KPod>(
        `${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}/status`,
        { metadata: { uid: r.uid }, status },
      );
      r.lastStatus = updated.status;
    } catch (err) {
      // NotFound: the pod is gone; Conflict, or 422 "metadata.uid: field is immutable": its uid changed (a new
      // pod of the same name). Retrying either would go on for ever.
      if (isNotFound(err) || isConflict(err) || uidChanged(err)) {
        s.gone = true;
        return;
      }
      this.log(`status write for ${r.key} failed (will retry): ${(err as Error).message}`);
      s.dirty = true;
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}

/** The API server's answer to a status patch whose uid precondition names another pod than the one stored. */
function uidChanged(err: unknown): boolean {
  return (
    err instanceof KubeApiError && err.statusCode === 422 && /metadata\.uid: .*immutable/.test(err.message)
  );
}
