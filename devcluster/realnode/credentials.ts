/**
 * Client identities of the node's components, signed by the cluster CA, as kubeconfig files:
 * the kubelet is `system:node:<name>` in `system:nodes` (the Node authorizer and NodeRestriction
 * scope it to its own node and pods), kube-proxy `system:kube-proxy` and kube-scheduler
 * `system:kube-scheduler` (both bound to their roles by the API server's bootstrap RBAC).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DevCluster } from '../controlPlane.ts';
import { kubeconfigYaml } from '../kubeconfig.ts';
import { type CertAndKey, type CertRequest, signCertificate } from '../pki.ts';

export async function clusterCa(cluster: DevCluster): Promise<CertAndKey> {
  const [certPem, keyPem] = await Promise.all([
    readFile(cluster.caCertPath, 'utf8'),
    readFile(cluster.caKeyPath, 'utf8'),
  ]);
  return { certPem, keyPem };
}

/** Writes `<dir>/<name>.crt|.key` and `<dir>/<name>.kubeconfig`; returns the kubeconfig path. */
export async function writeComponentKubeconfig(
  cluster: DevCluster,
  ca: CertAndKey,
  dir: string,
  name: string,
  identity: { commonName: string; organizations?: string[] },
): Promise<string> {
  const cert = await signCertificate(ca, { ...identity, usage: 'client' });
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const kubeconfig = join(dir, `${name}.kubeconfig`);
  await writeFile(certPath, cert.certPem);
  await writeFile(keyPath, cert.keyPem, { mode: 0o600 });
  await writeFile(
    kubeconfig,
    kubeconfigYaml({
      name: 'konductor-devcluster',
      server: cluster.apiserverUrl,
      caPem: ca.certPem,
      user: identity.commonName,
      cert: { path: certPath },
      key: { path: keyPath },
    }),
    { mode: 0o600 },
  );
  return kubeconfig;
}

/** A serving certificate (`<dir>/<name>.crt|.key`), e.g. the kubelet's with the node IP. */
export async function writeServingCert(
  ca: CertAndKey,
  dir: string,
  name: string,
  req: Omit<CertRequest, 'usage'>,
): Promise<{ certPath: string; keyPath: string }> {
  const cert = await signCertificate(ca, { ...req, usage: 'server' });
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await writeFile(certPath, cert.certPem);
  await writeFile(keyPath, cert.keyPem, { mode: 0o600 });
  return { certPath, keyPath };
}
