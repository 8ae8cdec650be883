/**
 * Runs one pod as local processes: the pod lifecycle of the process kubelet (a TEST HARNESS standing
 * in for a real kubelet; see docs/devcluster-kubelet.md).
 *
 * Order as the kubelet does it: volumes; init containers one after another (a regular one must exit 0,
 * a native sidecar - restartPolicy Always - only has to start); main containers together; once every
 * main container has exited for good, sidecars get SIGTERM in reverse order (SIGKILL after the grace
 * period). Deletion: SIGTERM to the main containers (and a running regular init container), then the
 * sidecars in reverse order, SIGKILL at the end of terminationGracePeriodSeconds, then the pod object
 * is deleted with gracePeriodSeconds=0. Every state change calls `onChange` (the status writer).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { backoffCeiling } from '../../api/backoff.ts';
import { isConflict, isNotFound } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import { type ContainerLaunchDeps, type LaunchResult, launchContainer, nowIso } from './containerLaunch.ts';
import { findSlotLog, type LogLookup, podSlots, type Slot, stopSlot } from './containerSlot.ts';
import type { KPod, RuntimePod } from './podTypes.ts';
import { PodVolumes } from './volumes.ts';

export interface PodRunnerDeps extends ContainerLaunchDeps {
  clusterCaPem?: string;
  /** CrashLoopBackOff: initialMs doubling to maxMs. */
  backoff: { initialMs: number; maxMs: number };
  /** Called on every state change; the status writer coalesces. */
  onChange: (runner: PodRunner) => void;
  /** Resolves once the runner's latest state has been written to the API server. */
  flushStatus: (runner: PodRunner) => Promise<void>;
  log: (msg: string) => void;
}

export class PodRunner {
  pod: KPod;
  readonly uid: string;
  readonly rt: RuntimePod;
  /** The status last written (conditions' transition times and terminal phases continue from it). */
  lastStatus: KPod['status'];
  private readonly deps: PodRunnerDeps;
  private readonly slots: Slot[];
  private readonly volumes: PodVolumes;
  private readonly abort = new AbortController();
  private runDone: Promise<void> = Promise.resolve();
  private terminating: Promise<void> | undefined;
  /** True once the main containers are done and sidecars are being stopped (no more restarts). */
  private finishing = false;

  constructor(pod: KPod, deps: PodRunnerDeps) {
    this.pod = pod;
    this.uid = pod.metadata.uid ?? '';
    this.deps = deps;
    this.lastStatus = pod.status;
    mkdirSync(join(deps.podDir, 'logs'), { recursive: true });
    this.slots = podSlots(pod);
    this.rt = {
      init: this.slots.filter((s) => s.kind !== 'main').map((s) => s.rt),
      main: this.slots.filter((s) => s.kind === 'main').map((s) => s.rt),
      sandboxReady: false,
      sandboxGone: false,
      hostIP: deps.hostIP,
      podIP: deps.podIP,
    };
    this.volumes = new PodVolumes({
      client: deps.client,
      pod,
      podDir: deps.podDir,
      nodeName: deps.nodeName,
      podIP: deps.podIP,
      hostIP: deps.hostIP,
      nodeCapacity: deps.nodeCapacity,
      clusterCaPem: deps.clusterCaPem,
      log: (m) => deps.log(`${this.key}: ${m}`),
    });
  }

  get key(): string {
    return `${this.pod.metadata.namespace}/${this.pod.metadata.name}`;
  }

  /** PIDs of the processes currently running. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.proc?.running ? [s.proc.pid] : []));
  }

  start(): void {
    this.runDone = this.run().catch((err: Error) =>
      this.deps.log(`${this.key}: runner error: ${err.stack ?? err}`),
    );
  }

  private changed(): void {
    this.deps.onChange(this);
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      const t = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      const signal = this.abort.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }

  private backoffMs(restartCount: number): number {
    const { initialMs, maxMs } = this.deps.backoff;
    return backoffCeiling(restartCount, { baseMs: initialMs, maxMs });
  }

  private async run(): Promise<void> {
    this.rt.startTime = nowIso();
    this.changed();
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await this.volumes.prepare();
        break;
      } catch (err) {
        const message = (err as Error).message;
        this.deps.log(`${this.key}: ${message}`);
        for (const s of this.slots) {
          if (s.kind === 'main') s.rt.state = { kind: 'waiting', reason: 'ContainerCreating', message };
        }
        this.changed();
        await this.sleep(this.backoffMs(attempt));
      }
    }
    if (this.stopping) return;
    this.rt.sandboxReady = true;
    for (const s of this.slots) {
      if (s.kind === 'main') s.rt.state = { kind: 'waiting', reason: 'PodInitializing' };
    }
    this.changed();

    for (const slot of this.slots) {
      if (slot.kind === 'main' || this.stopping) continue;
      if (slot.kind === 'sidecar') {
        if (!(await this.startSidecar(slot))) return;
      } else if (!(await this.runInit(slot))) {
        break; // failed for good (restartPolicy Never), or stopping
      }
    }
    const initOk = this.slots
      .filter((s) => s.kind === 'init')
      .every((s) => s.rt.state.kind === 'terminated' && s.rt.state.exitCode === 0);
    if (!this.stopping && initOk) {
      const mains = this.slots.filter((s) => s.kind === 'main');
      for (const s of mains) s.rt.state = { kind: 'waiting', reason: 'ContainerCreating' };
      this.changed();
      await Promise.all(mains.map((s) => this.runMain(s)));
    }
    if (this.stopping) return;
    // The pod is done (or its initialization failed for good): stop the sidecars, newest first.
    this.finishing = true;
    const deadline = Date.now() + this.gracePeriodMs();
    for (const s of this.slots.filter((x) => x.kind === 'sidecar').reverse()) await stopSlot(s, deadline);
    this.teardown();
  }

  private gracePeriodMs(): number {
    return Math.max(0, (this.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
  }

  private teardown(): void {
    if (this.rt.sandboxGone) return;
    this.volumes.stop();
    this.rt.sandboxGone = true;
    this.changed();
  }

  /** Starts a sidecar and keeps it running (restarts it when it exits). Resolves once started. */
  private async startSidecar(slot: Slot): Promise<boolean> {
    for (;;) {
      if (this.stopping) return false;
      const r = await this.startContainer(slot);
      if (r.kind === 'started') {
        void r.proc.exited.then(async () => {
          if (this.stopping || this.finishing) return;
          await this.backoffThenRestartState(slot);
          if (!this.stopping && !this.finishing) await this.startSidecar(slot);
        });
        return true;
      }
      if (r.kind === 'blocked') {
        await this.sleep(Number.POSITIVE_INFINITY);
        return false;
      }
      await this.backoffThenRestartState(slot);
    }
  }

  /** Runs a regular init container until it exits 0. False if it failed for good or the pod stops. */
  private async runInit(slot: Slot): Promise<boolean> {
    const never = (this.pod.spec.restartPolicy ?? 'Always') === 'Never';
    for (;;) {
      if (this.stopping) return false;
      const r = await this.startContainer(slot);
      if (r.kind === 'blocked') {
        await this.sleep(Number.POSITIVE_INFINITY);
        return false;
      }
      if (r.kind === 'started') {
        await r.proc.exited;
        if (slot.rt.state.kind === 'terminated' && slot.rt.state.exitCode === 0) return true;
        if (never || this.stopping) return false;
      }
      await this.backoffThenRestartState(slot);
    }
  }

  /** Runs a main container, restarting it per the pod's restartPolicy. */
  private async runMain(slot: Slot): Promise<void> {
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    for (;;) {
      if (this.stopping) return;
      const r = await this.startContainer(slot);
      if (r.kind === 'blocked') return this.sleep(Number.POSITIVE_INFINITY);
      if (r.kind === 'started') {
        await r.proc.exited;
        const st = slot.rt.state;
        const failed = st.kind === 'terminated' && st.exitCode !== 0;
        if (this.stopping || policy === 'Never' || (policy === 'OnFailure' && !failed)) return;
      }
      await this.backoffThenRestartState(slot);
    }
  }

  /** CrashLoopBackOff wait, then the state a restarting container has (restartCount++). */
  private async backoffThenRestartState(slot: Slot): Promise<void> {
    const ms = this.backoffMs(slot.rt.restartCount);
    const prev = slot.rt.state;
    if (prev.kind === 'terminated') {
      slot.rt.lastTerminated = prev;
      slot.rt.state = {
        kind: 'waiting',
        reason: 'CrashLoopBackOff',
        message: `back-off ${ms}ms restarting failed container=${slot.spec.name} pod=${this.pod.metadata.name}_${this.pod.metadata.namespace}(${this.uid})`,
      };
      this.changed();
    }
    await this.sleep(ms);
    if (prev.kind === 'terminated' && !this.stopping) slot.rt.restartCount++;
  }

  private startContainer(slot: Slot): Promise<LaunchResult> {
    return launchContainer(
      {
        pod: this.pod,
        deps: this.deps,
        volumePath: (name) => this.volumes.hostPath(name),
        stopping: () => this.stopping,
        changed: () => this.changed(),
      },
      slot,
    );
  }

  /** Updates the pod object; a deletionTimestamp starts termination. */
  update(pod: KPod): void {
    this.pod = pod;
    if (pod.metadata.deletionTimestamp) void this.terminate({ deleteFromApi: true });
  }

  /**
   * Stops every process (mains and a running regular init first, then sidecars newest first) within
   * the grace period. With deleteFromApi, writes the final status and deletes the pod object with
   * gracePeriodSeconds=0, as the kubelet does.
   */
  terminate(opts: { deleteFromApi: boolean; graceMs?: number }): Promise<void> {
    this.terminating ??= (async () => {
      const graceFromPod =
        this.pod.metadata.deletionTimestamp &&
        (this.pod.metadata as { deletionGracePeriodSeconds?: number }).deletionGracePeriodSeconds;
      const grace =
        opts.graceMs ?? (typeof graceFromPod === 'number' ? graceFromPod * 1000 : this.gracePeriodMs());
      const deadline = Date.now() + grace;
      this.abort.abort();
      await Promise.all(this.slots.filter((s) => s.kind !== 'sidecar').map((s) => stopSlot(s, deadline)));
      for (const s of this.slots.filter((x) => x.kind === 'sidecar').reverse()) await stopSlot(s, deadline);
      await this.runDone;
      this.teardown();
      if (!opts.deleteFromApi) return;
      try {
        await this.deps.flushStatus(this);
      } catch (err) {
        this.deps.log(`${this.key}: final status write failed: ${(err as Error).message}`);
      }
      const ns = this.pod.metadata.namespace ?? 'default';
      try {
        await this.deps.client.delete(
          resourcePath({ version: 'v1', plural: 'pods', namespace: ns, name: this.pod.metadata.name }),
          {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            gracePeriodSeconds: 0,
            preconditions: { uid: this.uid },
          },
        );
      } catch (err) {
        // NotFound: already gone; Conflict: the uid precondition failed (a new pod of the same name).
        if (!isNotFound(err) && !isConflict(err)) {
          this.deps.log(`${this.key}: delete failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.terminating;
  }

  /** Log file of a container (current attempt, or the previous one). */
  findLog(container: string, previous: boolean): LogLookup {
    return findSlotLog(this.slots, this.pod.metadata.name ?? '', container, previous);
  }
}
