/**
 * Where a pod stands at one primitive, for the agent API's progress stream (api/protocol.ts QueueStanding).
 * Computed with the same ordering arbitration grants in; holders come from the primitive's status (the
 * authority on grants), waiters from the pods (status.queue lists only the head).
 */
import { formatProgress, type QueueStanding } from '../../api/protocol.ts';
import type { Barrier, Gate, Lease, Semaphore } from '../../api/types.ts';
import { barrierNeeded, hasArrived } from './barrier.ts';
import { leaseQueue } from './lease.ts';
import type { PodView } from './podView.ts';
import { semaphoreCapacity, semaphoreQueue } from './semaphore.ts';

export type QueuePositionInput =
  | { kind: 'Semaphore'; semaphore: Semaphore; pods: readonly PodView[] }
  | { kind: 'Lease'; lease: Lease; pods: readonly PodView[] }
  | { kind: 'Barrier'; barrier: Barrier; pods: readonly PodView[] }
  | { kind: 'Gate'; gate: Gate };

/**
 * The standing of pod `uid`: for a Semaphore or Lease its 1-based position and the queue length (requests
 * larger than the semaphore's capacity are counted at the end of the queue, in arbitration order), in-use and
 * capacity figures; for a Barrier arrivals and the number needed; for a Gate the unmet conditions.
 * Undefined when the pod already holds the primitive, or is not waiting at it (not bound, finished, not yet
 * eligible, or not among `pods`).
 */
export function queuePosition(input: QueuePositionInput, uid: string): QueueStanding | undefined {
  switch (input.kind) {
    case 'Semaphore': {
      const { semaphore } = input;
      const holders = semaphore.status?.holders ?? [];
      if (holders.some((h) => h.uid === uid)) return undefined;
      const capacity = semaphoreCapacity(semaphore) ?? 0;
      const queue = semaphoreQueue(capacity, input.pods, new Set(holders.map((h) => h.uid)));
      const all = [...queue.ordered, ...queue.oversize];
      const index = all.findIndex((p) => p.uid === uid);
      const pod = all[index];
      if (pod === undefined) return undefined;
      return standing({
        primitive: refOf('Semaphore', semaphore),
        position: index + 1,
        queueLength: all.length,
        inUse: holders.reduce((sum, h) => sum + h.permits, 0),
        capacity,
        requested: pod.permits,
      });
    }
    case 'Lease': {
      const { lease } = input;
      const holder = lease.status?.holder;
      if (holder?.uid === uid) return undefined;
      const queue = leaseQueue(lease, input.pods, holder?.uid);
      const index = queue.findIndex((p) => p.uid === uid);
      if (index < 0) return undefined;
      const s: QueueStanding = {
        primitive: refOf('Lease', lease),
        position: index + 1,
        queueLength: queue.length,
        message: '',
      };
      if (holder !== undefined) s.holder = holder.pod;
      return standing(s);
    }
    case 'Barrier': {
      const { barrier } = input;
      const pod = input.pods.find((p) => p.uid === uid);
      if (pod === undefined || !hasArrived(pod)) return undefined;
      const phase = barrier.status?.phase;
      const arrived =
        phase === 'Open' || phase === 'Failed' ? (barrier.status?.arrived ?? 0) : countArrived(input.pods);
      return standing({
        primitive: refOf('Barrier', barrier),
        position: 0,
        queueLength: 0,
        arrived,
        expected: barrierNeeded(barrier) ?? barrier.spec?.expected ?? 0,
      });
    }
    case 'Gate': {
      const { gate } = input;
      const unmet = (gate.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);
      const s: QueueStanding = { primitive: refOf('Gate', gate), position: 0, queueLength: 0, message: '' };
      if (gate.status?.phase !== 'Open') s.unmet = unmet;
      return standing(s);
    }
  }
}

function countArrived(pods: readonly PodView[]): number {
  return new Set(pods.filter(hasArrived).map((p) => p.uid)).size;
}

function refOf(
  kind: 'Semaphore' | 'Lease' | 'Barrier' | 'Gate',
  object: { metadata: { name?: string; namespace?: string } },
) {
  return { kind, name: object.metadata.name ?? '', namespace: object.metadata.namespace ?? 'default' };
}

function standing(s: Omit<QueueStanding, 'message'> & { message?: string }): QueueStanding {
  const out: QueueStanding = { ...s, message: '' };
  out.message = formatProgress(out);
  return out;
}
