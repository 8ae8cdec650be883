/**
 * TypeScript shapes of konductor's custom resources (group sync.konductor.io, version v1; DESIGN §2)
 * and the minimal built-in Kubernetes objects konductor reads (Pod, Job, CronJob).
 *
 * Plain data only: these types describe JSON as the API server returns it. Timestamps are RFC 3339
 * strings, durations are Go duration strings (see ./duration.ts).
 */
import type { PrimitiveKind } from './constants.ts';

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
export interface KonductorObject<K extends PrimitiveKind, Spec, Status> {
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

// ---------------------------------------------------------------------------------------------
// Semaphore
// ---------------------------------------------------------------------------------------------

export interface SemaphoreSpec {
  /** Number of permits, >= 1. */
  permits: number;
  /** Maximum hold time (Go duration); a holder past it is released with an Expired event. */
  ttl?: string;
}

export interface Holder {
  /** Pod name (same namespace as the primitive). */
  pod: string;
  uid: string;
  permits: number;
  /** Fencing token handed out at grant time. */
  token: number;
  grantedAt: string;
  /** grantedAt + spec.ttl, when a ttl is set. */
  expiresAt?: string;
  /**
   * Adopted by this object's first decision: the pod runs on a grant of an earlier object of the same name
   * (deleted and recreated). Its token is then 0 here; its real one, in its grant.json, is smaller than
   * every token of this object.
   */
  adopted?: boolean;
}

export type SemaphorePhase = 'Ready' | 'Full';

export interface SemaphoreStatus {
  inUse: number;
  available: number;
  phase: SemaphorePhase;
  holders: Holder[];
  waiting: number;
  queue?: QueueEntry[];
  /** When the longest-waiting pod arrived; absent when none waits (printer column Oldest-Wait). */
  oldestWaitingSince?: string;
  /** The token the next grant takes. */
  nextToken: number;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Semaphore = KonductorObject<'Semaphore', SemaphoreSpec, SemaphoreStatus>;

// ---------------------------------------------------------------------------------------------
// Lease
// ---------------------------------------------------------------------------------------------

export interface LeaseSpec {
  /** Maximum hold time (Go duration). */
  ttl: string;
  /** Queue priority of waiting pods that set no konductor.io/priority annotation. */
  priority?: number;
}

export interface LeaseHolder {
  pod: string;
  uid: string;
  token: number;
  acquiredAt: string;
  expiresAt: string;
  /** Adopted from an earlier Lease of the same name (see Holder.adopted); token 0. */
  adopted?: boolean;
}

export type LeasePhase = 'Available' | 'Held';

export interface LeaseStatus {
  holder?: LeaseHolder;
  /** Mirrors of holder.token / acquiredAt / expiresAt, for printer columns; absent when not held. */
  token?: number;
  acquiredAt?: string;
  expiresAt?: string;
  phase: LeasePhase;
  waiting: number;
  queue?: QueueEntry[];
  /** When the longest-waiting pod arrived; absent when none waits (printer column Oldest-Wait). */
  oldestWaitingSince?: string;
  nextToken: number;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Lease = KonductorObject<'Lease', LeaseSpec, LeaseStatus>;

// ---------------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------------

export interface BarrierSpec {
  /** Number of pods expected, >= 1. */
  expected: number;
  /** Fail the barrier when it is not open this long after the first arrival (Go duration). */
  timeout?: string;
  /** Open when this many pods have arrived (1 <= quorum <= expected); defaults to expected. */
  quorum?: number;
}

export interface Arrival {
  pod: string;
  uid: string;
  arrivedAt: string;
}

export type BarrierPhase = 'Waiting' | 'Open' | 'Failed';

export interface BarrierStatus {
  arrived: number;
  arrivals: Arrival[];
  /** Open is latched: once open, a barrier stays open. */
  phase: BarrierPhase;
  firstArrivalAt?: string;
  openedAt?: string;
  failedAt?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Barrier = KonductorObject<'Barrier', BarrierSpec, BarrierStatus>;

// ---------------------------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------------------------

export type GateConditionType = 'Job' | 'Semaphore' | 'Barrier' | 'Lease' | 'Gate';

/** Accepted `state` values per gate condition type (the CRD's CEL rule says the same). */
export const GATE_CONDITION_STATES = {
  Job: ['Complete', 'Failed'],
  Semaphore: ['Available'],
  Barrier: ['Open'],
  Lease: ['Available', 'Held'],
  Gate: ['Open'],
} as const satisfies Record<GateConditionType, readonly string[]>;

export interface GateCondition {
  type: GateConditionType;
  name: string;
  /** Defaults to the Gate's namespace. */
  namespace?: string;
  state: string;
  /** For Semaphore/Available: at least this many permits free (default 1). */
  value?: number;
}

export interface GateSpec {
  conditions: GateCondition[];
  /** Fail the gate when it is not open this long after creation (Go duration). */
  timeout?: string;
}

export interface GateConditionStatus {
  type: GateConditionType;
  name: string;
  namespace?: string;
  met: boolean;
  message: string;
}

export type GatePhase = 'Waiting' | 'Open' | 'Failed';

export interface GateStatus {
  phase: GatePhase;
  conditionStatuses: GateConditionStatus[];
  openedAt?: string;
  failedAt?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Gate = KonductorObject<'Gate', GateSpec, GateStatus>;

export type Primitive = Semaphore | Lease | Barrier | Gate;

/** A LIST response (`SemaphoreList`, `PodList`, ...). */
export interface KubeList<T> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

// ---------------------------------------------------------------------------------------------
// Pods (the minimum webhook, controller and devcluster kubelet need)
// ---------------------------------------------------------------------------------------------

export interface ObjectFieldSelector {
  fieldPath: string;
  apiVersion?: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    /** Downward API: metadata.name, metadata.namespace, metadata.uid, spec.nodeName, status.podIP, ... */
    fieldRef?: ObjectFieldSelector;
    resourceFieldRef?: { resource: string; containerName?: string; divisor?: string };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string; localhostProfile?: string };
}

export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  resources?: ResourceRequirements;
  securityContext?: SecurityContext;
  /** Only on init containers: 'Always' makes it a native sidecar. */
  restartPolicy?: 'Always';
  workingDir?: string;
  ports?: { containerPort: number; name?: string; protocol?: string }[];
}

export interface ServiceAccountTokenProjection {
  audience?: string;
  expirationSeconds?: number;
  path: string;
}

export interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  projected?: {
    defaultMode?: number;
    sources: {
      serviceAccountToken?: ServiceAccountTokenProjection;
      downwardAPI?: { items: { path: string; fieldRef?: ObjectFieldSelector }[] };
      configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean };
      secret?: { name: string; items?: { key: string; path: string }[]; optional?: boolean };
    }[];
  };
  configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean };
  secret?: { secretName: string; items?: { key: string; path: string }[]; optional?: boolean };
  /** Other volume sources konductor passes through untouched. */
  [source: string]: unknown;
}

export interface PodSpec {
  nodeName?: string;
  schedulerName?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  priority?: number;
  priorityClassName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
}

export interface PodCondition {
  type: string;
  status: ConditionStatus;
  lastTransitionTime?: string;
  lastProbeTime?: string;
  reason?: string;
  message?: string;
}

export interface ContainerStateRunning {
  startedAt?: string;
}
export interface ContainerStateTerminated {
  exitCode: number;
  signal?: number;
  reason?: string;
  message?: string;
  startedAt?: string;
  finishedAt?: string;
}
export interface ContainerStateWaiting {
  reason?: string;
  message?: string;
}
export interface ContainerState {
  running?: ContainerStateRunning;
  terminated?: ContainerStateTerminated;
  waiting?: ContainerStateWaiting;
}

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  started?: boolean;
  image?: string;
  imageID?: string;
  containerID?: string;
  state?: ContainerState;
  lastState?: ContainerState;
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface PodStatus {
  phase?: PodPhase;
  conditions?: PodCondition[];
  containerStatuses?: ContainerStatus[];
  initContainerStatuses?: ContainerStatus[];
  hostIP?: string;
  podIP?: string;
  startTime?: string;
  reason?: string;
  message?: string;
}

export interface Pod {
  apiVersion?: 'v1';
  kind?: 'Pod';
  metadata: ObjectMeta;
  spec: PodSpec;
  status?: PodStatus;
}

export interface PodTemplateSpec {
  metadata?: ObjectMeta;
  spec: PodSpec;
}

// ---------------------------------------------------------------------------------------------
// Jobs (the webhook copies konductor.io/ annotations into the pod template; Gate reads Job state)
// ---------------------------------------------------------------------------------------------

export interface JobCondition {
  /** 'Complete', 'Failed', 'Suspended', 'FailureTarget', 'SuccessCriteriaMet', ... */
  type: string;
  status: ConditionStatus;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface Job {
  apiVersion?: 'batch/v1';
  kind?: 'Job';
  metadata: ObjectMeta;
  spec: {
    template: PodTemplateSpec;
    parallelism?: number;
    completions?: number;
    backoffLimit?: number;
    activeDeadlineSeconds?: number;
    suspend?: boolean;
  };
  status?: {
    active?: number;
    succeeded?: number;
    failed?: number;
    startTime?: string;
    completionTime?: string;
    conditions?: JobCondition[];
  };
}

export interface CronJob {
  apiVersion?: 'batch/v1';
  kind?: 'CronJob';
  metadata: ObjectMeta;
  spec: {
    schedule: string;
    suspend?: boolean;
    concurrencyPolicy?: 'Allow' | 'Forbid' | 'Replace';
    jobTemplate: {
      metadata?: ObjectMeta;
      spec: Job['spec'];
    };
  };
  status?: { lastScheduleTime?: string; active?: { name?: string; namespace?: string; uid?: string }[] };
}
