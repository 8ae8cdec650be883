/** The devcluster's real node (README: "A real node"). */
export { ensureRealNodeBinaries, type RealNodeBinaries } from './binaries.ts';
export { findLeftovers, type SweepReport, sweepRealNode } from './cleanup.ts';
export { type RealCluster, type RealClusterOptions, type RealNode, startRealCluster } from './cluster.ts';
export { type HostFacts, hostLimitNotes, inspectHost } from './hostCheck.ts';
export {
  CGROUP_ROOT,
  CLUSTER_DNS_IP,
  HOST_DIRS,
  NODE_IP,
  NODE_NAME,
  POD_CIDR,
  STATE_DIR,
  SYSCTLS,
  stateLayout,
} from './layout.ts';
export { DEFAULT_LOCK_DIR } from './machineLock.ts';
export { BUSYBOX_ALIASES, COREDNS_IMAGE_REF, ensureNodeImages, type NodeImages } from './nodeImages.ts';
export { prepareRealNode } from './prepare.ts';
