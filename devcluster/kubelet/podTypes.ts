/**
 * Types of the process kubelet (a TEST HARNESS standing in for a real kubelet; see
 * docs/devcluster-kubelet.md): the Pod fields it reads beyond konductor's shared minimum in
 * api/types.ts, and the plain-data runtime state its pure status function works from.
 */
import type {
  Container,
  ContainerStatus,
  EnvVar,
  ObjectFieldSelector,
  Pod,
  PodSpec,
  Volume,
} from '../../api/types.ts';

export interface EnvFromSource {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

export interface DownwardApiFile {
  path: string;
  fieldRef?: ObjectFieldSelector;
  resourceFieldRef?: { containerName?: string; resource: string; divisor?: string };
  mode?: number;
}

export type KContainer = Container & { envFrom?: EnvFromSource[]; env?: EnvVar[] };

export type KVolume = Volume & {
  downwardAPI?: { items?: DownwardApiFile[]; defaultMode?: number };
};

export type KPodSpec = Omit<PodSpec, 'containers' | 'initContainers' | 'volumes'> & {
  containers: KContainer[];
  initContainers?: KContainer[];
  volumes?: KVolume[];
  hostname?: string;
  schedulingGates?: { name: string }[];
};

export type KPod = Omit<Pod, 'spec' | 'status'> & {
  spec: KPodSpec;
  status?: Pod['status'] & {
    podIPs?: { ip: string }[];
    hostIPs?: { ip: string }[];
    nominatedNodeName?: string;
  };
};

/** What the runner knows about one container (one entry per spec container, in spec order). */
export type RuntimeState =
  | { kind: 'waiting'; reason: string; message?: string }
  | { kind: 'running'; startedAt: string }
  | {
      kind: 'terminated';
      exitCode: number;
      signal?: number;
      reason: string;
      message?: string;
      startedAt: string;
      finishedAt: string;
    };

export interface RuntimeContainer {
  name: string;
  state: RuntimeState;
  /** The previous attempt's termination, when the container was restarted. */
  lastTerminated?: Extract<RuntimeState, { kind: 'terminated' }>;
  restartCount: number;
  image: string;
  imageID?: string;
  /** `process://<pid>` of the current or last attempt. */
  containerID?: string;
}

/** The whole runtime state of one pod, as the runner keeps it. */
export interface RuntimePod {
  init: RuntimeContainer[];
  main: RuntimeContainer[];
  /** Set once the runner accepted the pod (status.startTime). */
  startTime?: string;
  /** True once volumes are prepared (PodReadyToStartContainers). */
  sandboxReady: boolean;
  /** True once every process of the pod is gone after it finished (sandbox torn down). */
  sandboxGone: boolean;
  hostIP: string;
  podIP: string;
}

export type { ContainerStatus };
