/**
 * The Node of the process kubelet (a TEST HARNESS): registration with a Ready condition, loopback
 * addresses, capacity, the log server's port as the kubelet endpoint, and a coordination.k8s.io Lease
 * in kube-node-lease renewed periodically (plus a Ready heartbeat in the node status) so the node
 * lifecycle controller keeps it Ready.
 */
import { arch, cpus, release, totalmem } from 'node:os';
import { isAlreadyExists, isNotFound, type KubeClient } from '../../api/kubeClient.ts';

export interface NodeOptions {
  nodeName: string;
  /** Port of the log server (status.daemonEndpoints.kubeletEndpoint.Port). */
  kubeletPort: number;
  capacity: Record<string, string>;
  leaseDurationSeconds: number;
}

export const PROCESS_KUBELET_LABEL = 'konductor.io/process-kubelet';

/** Node capacity from the host (cpu, memory) with room for 1000 pods. */
export function hostCapacity(): Record<string, string> {
  return {
    cpu: String(Math.max(1, cpus().length)),
    memory: `${Math.floor(totalmem() / 1024)}Ki`,
    pods: '1000',
    'ephemeral-storage': '100Gi',
  };
}

const microTime = (d = new Date()) => d.toISOString().replace(/Z$/, '000Z');
const seconds = (d = new Date()) => d.toISOString().replace(/\.\d+Z$/, 'Z');

function nodeStatus(opts: NodeOptions, transition: string): Record<string, unknown> {
  const now = seconds();
  const cond = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: transition,
  });
  return {
    conditions: [
      cond(
        'MemoryPressure',
        'False',
        'KubeletHasSufficientMemory',
        'process kubelet has sufficient memory available',
      ),
      cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'process kubelet has no disk pressure'),
      cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'process kubelet has sufficient PID available'),
      cond(
        'Ready',
        'True',
        'KubeletReady',
        'process kubelet (konductor devcluster test harness) is posting ready status',
      ),
    ],
    addresses: [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: opts.nodeName },
    ],
    capacity: opts.capacity,
    allocatable: opts.capacity,
    daemonEndpoints: { kubeletEndpoint: { Port: opts.kubeletPort } },
    nodeInfo: {
      machineID: 'konductor-process-kubelet',
      systemUUID: 'konductor-process-kubelet',
      bootID: 'konductor-process-kubelet',
      kernelVersion: release(),
      osImage: 'konductor process kubelet (test harness)',
      containerRuntimeVersion: 'process://local',
      kubeletVersion: 'v0.0.0-konductor-process-kubelet',
      kubeProxyVersion: '',
      operatingSystem: 'linux',
      architecture: arch() === 'x64' ? 'amd64' : arch(),
    },
  };
}

/** The labels of the process kubelet's Node (the scheduler matches nodeSelectors against them). */
export function nodeLabels(nodeName: string): Record<string, string> {
  return {
    'kubernetes.io/hostname': nodeName,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': arch() === 'x64' ? 'amd64' : arch(),
    [PROCESS_KUBELET_LABEL]: 'true',
  };
}

/** Creates (or takes over) the Node and writes its status. */
export async function registerNode(client: KubeClient, opts: NodeOptions): Promise<void> {
  const path = `/api/v1/nodes/${encodeURIComponent(opts.nodeName)}`;
  const labels = nodeLabels(opts.nodeName);
  try {
    await client.create('/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: opts.nodeName, labels },
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    await client.patchMerge(path, { metadata: { labels }, spec: { unschedulable: false } });
  }
  await client.patchStrategic(`${path}/status`, { status: nodeStatus(opts, seconds()) });
}

/** Renews the node Lease (every leaseDuration/4) and the Ready heartbeat (every leaseDuration). */
export class NodeHeartbeat {
  private readonly client: KubeClient;
  private readonly opts: NodeOptions;
  private readonly log: (msg: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private lastStatus = 0;
  private readonly transition = seconds();
  private nodeUid = '';

  constructor(client: KubeClient, opts: NodeOptions, log: (msg: string) => void) {
    this.client = client;
    this.opts = opts;
    this.log = log;
  }

  async start(): Promise<void> {
    const node = await this.client.get<{ metadata: { uid: string } }>(
      `/api/v1/nodes/${encodeURIComponent(this.opts.nodeName)}`,
    );
    this.nodeUid = node.metadata.uid;
    this.lastStatus = Date.now();
    await this.renewLease();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.tick(), (this.opts.leaseDurationSeconds * 1000) / 4);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.renewLease();
      if (Date.now() - this.lastStatus >= this.opts.leaseDurationSeconds * 1000) {
        await this.client.patchStrategic(`/api/v1/nodes/${encodeURIComponent(this.opts.nodeName)}/status`, {
          status: nodeStatus(this.opts, this.transition),
        });
        this.lastStatus = Date.now();
      }
    } catch (err) {
      this.log(`node heartbeat failed: ${(err as Error).message}`);
    }
    if (this.timer) this.schedule();
  }

  private async renewLease(): Promise<void> {
    const name = this.opts.nodeName;
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${encodeURIComponent(name)}`;
    const spec = {
      holderIdentity: name,
      leaseDurationSeconds: this.opts.leaseDurationSeconds,
      renewTime: microTime(),
    };
    try {
      await this.client.patchMerge(path, { spec });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.client.create('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name,
          namespace: 'kube-node-lease',
          ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: this.nodeUid }],
        },
        spec,
      });
    }
  }
}
