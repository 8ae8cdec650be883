/**
 * When konductor's scheduling gate comes off a pod (scheduling-gate wait mode), pure: once the pod has passed
 * every one of its primitives — as their statuses record it, so the grant is in the API server before the pod
 * can be scheduled — and is neither finished nor being deleted. The patch tests the gate's name at its index,
 * so a stale cached pod (gates changed meanwhile) makes the API server refuse it instead of removing the wrong
 * entry (and its UID, so a new pod of the same name is never touched); the caller retries from a fresher copy. Kubernetes lets gates be removed after creation, never added.
 */
import { SCHEDULING_GATE } from '../../api/constants.ts';
import type { Pod } from '../../api/types.ts';
import { isFinished } from './podView.ts';

/** One operation of a JSON patch (RFC 6902), as the API server takes it. */
export type GatePatchOperation = { op: 'test'; path: string; value: string } | { op: 'remove'; path: string };

/**
 * The JSON patch removing SCHEDULING_GATE from `pod`, or undefined when it must stay (or is not there).
 * `cleared`: the pod has passed all its primitives (stages.ts clearedAt / eligibleFor over all stages).
 */
export function schedulingGateRemoval(pod: Pod, cleared: boolean): GatePatchOperation[] | undefined {
  if (!cleared) return undefined;
  if (pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null)
    return undefined;
  if (isFinished(pod)) return undefined;
  const index = (pod.spec?.schedulingGates ?? []).findIndex((g) => g?.name === SCHEDULING_GATE);
  if (index < 0) return undefined;
  const path = `/spec/schedulingGates/${index}`;
  return [
    { op: 'test', path: '/metadata/uid', value: pod.metadata.uid ?? '' },
    { op: 'test', path: `${path}/name`, value: SCHEDULING_GATE },
    { op: 'remove', path },
  ];
}
