/**
 * Public API of the devcluster: a real local Kubernetes control plane for the demo and the tests
 * (DESIGN §7). See devcluster/README.md.
 */
export {
  type EnsureOptions,
  ensureGoTools,
  ensureK8sBinaries,
  GO_TOOLSETS,
  type GoToolset,
  K8S_VERSION,
  type K8sBinaries,
} from './binaries.ts';
export {
  API_AUDIENCES,
  type DevCluster,
  KUBERNETES_SERVICE_IP,
  SERVICE_CLUSTER_IP_RANGE,
  type StartClusterOptions,
  startCluster,
} from './controlPlane.ts';
export { type CertAndKey, type CertRequest, createCa, signCertificate } from './pki.ts';
export { assertPortFree, getFreePort, getFreePorts } from './ports.ts';
export { isProcessAlive, reapStaleClusters } from './processes.ts';
export {
  findLeftovers,
  type RealCluster,
  type RealClusterOptions,
  type RealNode,
  startRealCluster,
} from './realnode/index.ts';
