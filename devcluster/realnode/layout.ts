/**
 * The real node's names and addresses on the host, and the directories under its state directory.
 * Fixed (one real node per machine), so a later run finds and removes what a crashed one left.
 *
 *   konductor0 (port-less bridge) 10.250.0.1/32  the node IP: kube-apiserver, kubelet, kube-proxy
 *                                 bind here (reachable from pods through kdr-br0, not on eth0); a
 *                                 dummy interface would do, but these kernels lack the dummy driver
 *   bridge kdr-br0              10.244.0.1/24  pod network (bridge CNI, host-local IPAM)
 *   Service range               10.0.0.0/24    10.0.0.1 kubernetes, 10.0.0.10 kube-dns
 */
import { join } from 'node:path';

export const STATE_DIR = '/var/lib/konductor-realnode';
export const NODE_NAME = 'konductor-real-node';
export const DUMMY_INTERFACE = 'konductor0';
export const NODE_IP = '10.250.0.1';
export const BRIDGE = 'kdr-br0';
export const POD_CIDR = '10.244.0.0/24';
export const CNI_NETWORK = 'konductor-realnode';
export const CLUSTER_DNS_IP = '10.0.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
/** The kubelet's cgroupRoot: every pod cgroup lives below /sys/fs/cgroup/<controller>/konductor-realnode. */
export const CGROUP_ROOT = '/konductor-realnode';
/** Where the kubelet links container logs; fixed by the kubelet (not configurable). */
export const CONTAINER_LOG_LINKS = '/var/log/containers';
/** libcni's result cache (containerd does not make it configurable): files named <network>-<id>-<if>. */
export const CNI_RESULT_CACHE = '/var/lib/cni/results';
/**
 * Host directories the node's components create outside the state directory (the kubelet's device
 * plugin socket is at a fixed path; libcni's cache; the kubelet's container log links). Each one the
 * node created is removed at cleanup (deepest first, only when empty after our files are gone).
 */
export const HOST_DIRS = [
  '/var/lib/kubelet',
  '/var/lib/kubelet/device-plugins',
  '/var/lib/cni',
  CNI_RESULT_CACHE,
  CONTAINER_LOG_LINKS,
] as const;
/** The kubelet's device-plugin socket (fixed path, ignores --root-dir). */
export const DEVICE_PLUGIN_SOCKET = '/var/lib/kubelet/device-plugins/kubelet.sock';
/** Host sysctls the node needs; their previous values are restored at cleanup. */
export const SYSCTLS: Readonly<Record<string, string>> = {
  'net/ipv4/ip_forward': '1',
  'net/bridge/bridge-nf-call-iptables': '1',
  'net/bridge/bridge-nf-call-ip6tables': '1',
};
/** Ports the node's components listen on (one node per machine: they are fixed). */
export const NODE_PORTS = {
  kubelet: 10250,
  kubeletHealthz: 10248,
  kubeProxyHealthz: 10256,
  kubeProxyMetrics: 10249,
} as const;

export interface StateLayout {
  root: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  containerdConfig: string;
  runcRoot: string;
  kubeletRoot: string;
  podLogs: string;
  cniConfDir: string;
  cniIpamDir: string;
  pki: string;
  config: string;
  images: string;
  registryFile: string;
  pidRegistry: string;
}

export function stateLayout(root = STATE_DIR): StateLayout {
  return {
    root,
    containerdRoot: join(root, 'containerd', 'root'),
    containerdState: join(root, 'containerd', 'state'),
    containerdSocket: join(root, 'containerd', 'containerd.sock'),
    containerdConfig: join(root, 'config', 'containerd.toml'),
    runcRoot: join(root, 'containerd', 'runc'),
    kubeletRoot: join(root, 'kubelet'),
    podLogs: join(root, 'pod-logs'),
    cniConfDir: join(root, 'cni', 'net.d'),
    cniIpamDir: join(root, 'cni', 'ipam'),
    pki: join(root, 'pki'),
    config: join(root, 'config'),
    images: join(root, 'images'),
    registryFile: join(root, 'registry.json'),
    pidRegistry: join(root, 'pids'),
  };
}
