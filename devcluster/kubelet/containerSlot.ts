/**
 * A container of a pod in the process kubelet (a TEST HARNESS): its spec, the runtime state the status
 * writer reports, its current process and the log file of each attempt. Stopping one, and finding the log
 * `kubectl logs` asks for.
 */
import type { ContainerLogWriter } from './containerLog.ts';
import type { ContainerProcess } from './containerProcess.ts';
import type { KContainer, KPod, RuntimeContainer } from './podTypes.ts';

/** A regular init container, a native sidecar (an init container with restartPolicy Always), or a main one. */
export type SlotKind = 'init' | 'sidecar' | 'main';

export interface Slot {
  spec: KContainer;
  kind: SlotKind;
  rt: RuntimeContainer;
  proc?: ContainerProcess;
  /** Log file of each attempt, oldest first. */
  logs: ContainerLogWriter[];
}

export type LogLookup =
  | { ok: true; writer: ContainerLogWriter }
  | { ok: false; status: number; message: string };

/** The pod's containers in start order (init containers and sidecars, then the main ones), none started. */
export function podSlots(pod: KPod): Slot[] {
  const slot = (spec: KContainer, kind: SlotKind): Slot => ({
    spec,
    kind,
    logs: [],
    rt: {
      name: spec.name,
      state: { kind: 'waiting', reason: 'PodInitializing' },
      restartCount: 0,
      image: spec.image ?? '',
    },
  });
  return [
    ...(pod.spec.initContainers ?? []).map((c) => slot(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init')),
    ...pod.spec.containers.map((c) => slot(c, 'main')),
  ];
}

/** SIGTERM, wait until the deadline, SIGKILL; resolves once the process is gone. */
export async function stopSlot(slot: Slot, deadline: number): Promise<void> {
  const proc = slot.proc;
  if (!proc?.running) return;
  proc.signal('SIGTERM');
  const left = deadline - Date.now();
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(
      () => {
        proc.signal('SIGKILL');
        proc.killGroup('SIGKILL');
        resolve();
      },
      Math.max(0, left),
    );
  });
  await Promise.race([proc.exited, killed]);
  clearTimeout(timer);
  await proc.exited;
}

/** Log file of a container (current attempt, or the previous one), or the error the kubelet answers. */
export function findSlotLog(
  slots: readonly Slot[],
  podName: string,
  container: string,
  previous: boolean,
): LogLookup {
  const slot = slots.find((s) => s.spec.name === container);
  if (!slot)
    return { ok: false, status: 404, message: `container ${container} is not valid for pod ${podName}` };
  const writer = previous ? slot.logs[slot.logs.length - 2] : slot.logs[slot.logs.length - 1];
  if (writer) return { ok: true, writer };
  if (previous) {
    return {
      ok: false,
      status: 400,
      message: `previous terminated container "${container}" in pod "${podName}" not found`,
    };
  }
  const st = slot.rt.state;
  const reason = st.kind === 'waiting' ? `${st.reason}${st.message ? `: ${st.message}` : ''}` : '';
  return {
    ok: false,
    status: 400,
    message: `container "${container}" in pod "${podName}" is waiting to start: ${reason}`,
  };
}
