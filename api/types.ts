/**
 * TypeScript shapes of konductor's custom resources (group sync.konductor.io, version v1; DESIGN §2)
 * and the minimal built-in Kubernetes objects konductor reads (Pod, Job, CronJob).
 *
 * Plain data only: these types describe JSON as the API server returns it. Timestamps are RFC 3339
 * strings, durations are Go duration strings (see ./duration.ts). The primitives' own types are in the kind
 * table (./kinds.ts), the shared metadata in ./meta.ts; both are re-exported here.
 */
import type { ConditionStatus, ObjectMeta } from './meta.ts';

export type * from './kinds.ts';
export { GATE_CONDITION_STATES } from './kinds.ts';
export type * from './meta.ts';

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
  /** Set at creation only; afterwards entries can only be removed (the scheduler waits while any is left). */
  schedulingGates?: { name: string }[];
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
