/**
 * Public API of the devcluster: a real local Kubernetes control plane for the demo and the tests
 * (DESIGN §7). See devcluster/README.md.
 */
export { type EnsureOptions, ensureGoTools, ensureK8sBinaries, type K8sBinaries } from './binaries.ts';
export { API_AUDIENCES, KUBERNETES_SERVICE_IP, SERVICE_CLUSTER_IP_RANGE } from './componentFlags.ts';
export { type DevCluster, type StartClusterOptions, startCluster } from './controlPlane.ts';
export { GO_TOOLSETS, type GoToolset, K8S_VERSION } from './goToolsets.ts';
export { type CertAndKey, type CertRequest, createCa, signCertificate } from './pki.ts';
export { assertPortFree, getFreePort, getFreePorts } from './ports.ts';
export { reapStaleClusters } from './processes.ts';
export { isProcessAlive } from './processInfo.ts';
export {
  findLeftovers,
  type RealCluster,
  type RealClusterOptions,
  type RealNode,
  startRealCluster,
} from './realnode/index.ts';
