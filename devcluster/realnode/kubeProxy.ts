/**
 * kube-proxy in iptables mode for the pod CIDR: NodePorts only on the node IP (nothing on eth0, and
 * no route_localnet sysctl for localhost NodePorts), health and metrics on loopback, and no
 * conntrack table resizing (a sysctl a VM may refuse). Its chains are removed at cleanup.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { ManagedProcess, ProcessGroup } from '../processes.ts';
import { NODE_IP, NODE_NAME, NODE_PORTS, POD_CIDR, type StateLayout } from './layout.ts';

export function kubeProxyConfig(kubeconfig: string): Record<string, unknown> {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    mode: 'iptables',
    clusterCIDR: POD_CIDR,
    hostnameOverride: NODE_NAME,
    bindAddress: NODE_IP,
    healthzBindAddress: `127.0.0.1:${NODE_PORTS.kubeProxyHealthz}`,
    metricsBindAddress: `127.0.0.1:${NODE_PORTS.kubeProxyMetrics}`,
    nodePortAddresses: [`${NODE_IP}/32`],
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: '0s',
      tcpCloseWaitTimeout: '0s',
    },
  };
}

export async function startKubeProxy(opts: {
  group: ProcessGroup;
  layout: StateLayout;
  bin: string;
  kubeconfig: string;
  logPath: string;
}): Promise<ManagedProcess> {
  const configPath = join(opts.layout.config, 'kube-proxy.yaml');
  await writeFile(configPath, toYaml(kubeProxyConfig(opts.kubeconfig)));
  return opts.group.spawn('kube-proxy', opts.bin, [`--config=${configPath}`, '--v=1'], opts.logPath);
}
