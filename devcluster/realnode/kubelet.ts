/**
 * The upstream kubelet on containerd: its KubeletConfiguration for this host (cgroupfs driver,
 * failCgroupV1: false on a v1 host, no swap check, Webhook authn/authz, a serving certificate for
 * the node IP, cluster DNS, every path under the state directory, image GC and disk eviction out of
 * the way of a shared developer machine), and the wait until the Node is Ready and untainted.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { konductorError } from '../../api/errors.ts';
import type { KubeClient } from '../../api/kubeClient.ts';
import { logTail, type ManagedProcess, type ProcessGroup } from '../processes.ts';
import type { HostFacts } from './hostCheck.ts';
import {
  CGROUP_ROOT,
  CLUSTER_DNS_IP,
  CLUSTER_DOMAIN,
  NODE_IP,
  NODE_NAME,
  NODE_PORTS,
  type StateLayout,
} from './layout.ts';
import { podResolvConf } from './network.ts';

export function kubeletConfig(opts: {
  layout: StateLayout;
  facts: Pick<HostFacts, 'cgroup'>;
  caCertPath: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  resolvConf: string;
}): Record<string, unknown> {
  const endpoint = `unix://${opts.layout.containerdSocket}`;
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_IP,
    port: NODE_PORTS.kubelet,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: NODE_PORTS.kubeletHealthz,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: opts.caCertPath },
    },
    authorization: { mode: 'Webhook' },
    tlsCertFile: opts.tlsCertFile,
    tlsPrivateKeyFile: opts.tlsPrivateKeyFile,
    containerRuntimeEndpoint: endpoint,
    imageServiceEndpoint: endpoint,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: CGROUP_ROOT,
    // Kubernetes deprecated cgroup v1; hosts like this one offer nothing else (hostCheck.ts).
    ...(opts.facts.cgroup === 'v2' ? {} : { failCgroupV1: false }),
    failSwapOn: false,
    clusterDNS: [CLUSTER_DNS_IP],
    clusterDomain: CLUSTER_DOMAIN,
    resolvConf: opts.resolvConf,
    podLogsDir: opts.layout.podLogs,
    serializeImagePulls: false,
    // Images are imported, never pulled: never collect them; the disk is shared with other work.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    rotateCertificates: false,
    serverTLSBootstrap: false,
    registerNode: true,
    maxPods: 110,
    nodeStatusReportFrequency: '10s',
    shutdownGracePeriod: '0s',
  };
}

export interface Kubelet {
  process: ManagedProcess;
  nodeName: string;
}

export async function startKubelet(opts: {
  group: ProcessGroup;
  layout: StateLayout;
  facts: HostFacts;
  bin: string;
  kubeconfig: string;
  caCertPath: string;
  serving: { certPath: string; keyPath: string };
  logPath: string;
}): Promise<Kubelet> {
  const { layout } = opts;
  await mkdir(layout.kubeletRoot, { recursive: true });
  await mkdir(layout.podLogs, { recursive: true });
  await mkdir(layout.config, { recursive: true });
  const resolvConf = join(layout.config, 'resolv.conf');
  let hostResolv = '';
  try {
    hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    /* none: pods get an empty one */
  }
  await writeFile(resolvConf, podResolvConf(hostResolv));
  const configPath = join(layout.config, 'kubelet.yaml');
  await writeFile(
    configPath,
    toYaml(
      kubeletConfig({
        layout,
        facts: opts.facts,
        caCertPath: opts.caCertPath,
        tlsCertFile: opts.serving.certPath,
        tlsPrivateKeyFile: opts.serving.keyPath,
        resolvConf,
      }),
    ),
  );
  const proc = await opts.group.spawn(
    'kubelet',
    opts.bin,
    [
      `--config=${configPath}`,
      `--kubeconfig=${opts.kubeconfig}`,
      `--root-dir=${layout.kubeletRoot}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ],
    opts.logPath,
  );
  return { process: proc, nodeName: NODE_NAME };
}

interface NodeObject {
  spec?: { taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the Node is Ready and node-lifecycle has removed the not-ready taint. */
export async function waitNodeReady(client: KubeClient, kubelet: Kubelet, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not registered yet';
  for (;;) {
    if (kubelet.process.exitInfo) {
      throw konductorError(
        'KDR_REALNODE_KUBELET_FAILED',
        `the kubelet exited during start-up (log ${kubelet.process.logPath}):\n${logTail(kubelet.process.logPath, 25)}`,
      );
    }
    try {
      const node = await client.get<NodeObject>(`/api/v1/nodes/${kubelet.nodeName}`);
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      const taints = (node.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`);
      if (ready?.status === 'True' && !taints.length) return;
      last = `Ready=${ready?.status ?? '?'} (${ready?.message ?? ''}), taints [${taints.join(', ')}]`;
    } catch (err) {
      last = (err as Error).message.split('\n')[0] ?? '';
    }
    if (Date.now() > deadline) {
      throw konductorError(
        'KDR_REALNODE_KUBELET_FAILED',
        `node ${kubelet.nodeName} did not become Ready within ${timeoutMs / 1000} s (last: ${last}); ` +
          `kubelet log ${kubelet.process.logPath}:\n${logTail(kubelet.process.logPath, 25)}`,
      );
    }
    await sleep(250);
  }
}
