/**
 * The real node's binaries: kubelet, kube-proxy and kube-scheduler from the `k8s` tool set (the same
 * Go build as the control plane), containerd 2.x from `containerd`, CoreDNS from `coredns`, all
 * cached and stamped by devcluster/binaries.ts; runc from Debian (packages.ts).
 */
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { type EnsureOptions, ensureGoTools } from '../binaries.ts';
import { findExecutable } from './packages.ts';

export interface RealNodeBinaries {
  kubelet: string;
  kubeProxy: string;
  kubeScheduler: string;
  kubectl: string;
  containerd: string;
  ctr: string;
  /** Directory holding containerd-shim-runc-v2 (put first on containerd's PATH). */
  containerdBinDir: string;
  coredns: string;
  runc: string;
}

/** Builds what is missing (one tool set after another: each `go build` uses every core). */
export async function ensureRealNodeBinaries(opts: EnsureOptions = {}): Promise<RealNodeBinaries> {
  const k8s = await ensureGoTools('k8s', opts);
  const containerd = await ensureGoTools('containerd', opts);
  const coredns = await ensureGoTools('coredns', opts);
  const runc = findExecutable('runc');
  if (!runc) {
    throw konductorError('KDR_REALNODE_PACKAGES_MISSING', 'runc is missing: apt-get install runc');
  }
  return {
    kubelet: join(k8s, 'kubelet'),
    kubeProxy: join(k8s, 'kube-proxy'),
    kubeScheduler: join(k8s, 'kube-scheduler'),
    kubectl: join(k8s, 'kubectl'),
    containerd: join(containerd, 'containerd'),
    ctr: join(containerd, 'ctr'),
    containerdBinDir: containerd,
    coredns: join(coredns, 'coredns'),
    runc,
  };
}
