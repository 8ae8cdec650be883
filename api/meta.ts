/**
 * Object metadata and the envelope shared by konductor's custom resources and the Kubernetes objects it reads:
 * plain data, as the API server returns it (timestamps RFC 3339).
 */
// ---------------------------------------------------------------------------------------------
// Shared metadata
// ---------------------------------------------------------------------------------------------

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** The subset of metav1.ObjectMeta konductor uses. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** Common envelope of every konductor custom resource. */
export interface KonductorObject<K extends string, Spec, Status> {
  apiVersion: 'sync.konductor.io/v1';
  kind: K;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** A waiting pod, in grant order (the head of the queue is granted first). */
export interface QueueEntry {
  /** Pod name (same namespace as the primitive). */
  pod: string;
  uid: string;
  /** Permits requested (always 1 for Lease). */
  permits: number;
  priority: number;
}

/** A LIST response (`SemaphoreList`, `PodList`, ...). */
export interface KubeList<T> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}
