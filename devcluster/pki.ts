/**
 * The devcluster's PKI: a cluster CA and the certificates the control plane needs (apiserver serving,
 * admin client, controller-manager client, apiserver -> kubelet client) plus the service-account
 * signing key pair, made by konductor's one certificate builder (certs/certificateBuilder.ts).
 * `signCertificate` is exported so the process kubelet can issue its serving certificate from the
 * same CA.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CertificateAndKey, issueCertificate, rsaKeyPair } from '../certs/certificateBuilder.ts';

export type CertAndKey = CertificateAndKey;

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'both';
  validDays?: number;
}

/** A self-signed CA (konductor's one certificate builder, certs/certificateBuilder.ts). */
export function createCa(commonName = 'konductor-devcluster-ca', validDays = 3650): Promise<CertAndKey> {
  return issueCertificate({ commonName, isCA: true, validityDays: validDays });
}

/** Issues a leaf certificate signed by `ca`. */
export function signCertificate(ca: CertAndKey, req: CertRequest): Promise<CertAndKey> {
  return issueCertificate({
    commonName: req.commonName,
    issuer: ca,
    usage: req.usage,
    validityDays: req.validDays ?? 365,
    ...(req.organizations ? { organizations: req.organizations } : {}),
    ...(req.dnsNames ? { dnsNames: req.dnsNames } : {}),
    ...(req.ipAddresses ? { ipAddresses: req.ipAddresses } : {}),
  });
}

/** Paths of the files written by `writeClusterPki`. */
export interface ClusterPkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export interface ClusterPki {
  paths: ClusterPkiPaths;
  ca: CertAndKey;
  admin: CertAndKey;
}

/** Names the apiserver answers to (its serving certificate's SANs). */
export const APISERVER_DNS_NAMES = [
  'localhost',
  'kubernetes',
  'kubernetes.default',
  'kubernetes.default.svc',
  'kubernetes.default.svc.cluster.local',
];

/** Generates every key and certificate of a cluster into `dir` (mode 0600 for keys). */
export async function writeClusterPki(
  dir: string,
  serviceIp: string,
  extraIps: readonly string[] = [],
): Promise<ClusterPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa();
  const [apiserver, admin, kcm, kubeletClient, sa] = await Promise.all([
    signCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: APISERVER_DNS_NAMES,
      ipAddresses: ['127.0.0.1', serviceIp, ...extraIps],
      usage: 'server',
    }),
    signCertificate(ca, {
      commonName: 'konductor-admin',
      organizations: ['system:masters'],
      usage: 'client',
    }),
    // The controller manager runs every controller under its own identity
    // (--use-service-account-credentials=false), so it needs more than the bootstrap
    // system:kube-controller-manager role grants: system:masters as well.
    signCertificate(ca, {
      commonName: 'system:kube-controller-manager',
      organizations: ['system:masters'],
      usage: 'client',
    }),
    signCertificate(ca, {
      commonName: 'kube-apiserver-kubelet-client',
      organizations: ['system:masters'],
      usage: 'client',
    }),
    rsaKeyPair(),
  ]);
  const p = (name: string) => join(dir, name);
  const paths: ClusterPkiPaths = {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    apiserverCert: p('apiserver.crt'),
    apiserverKey: p('apiserver.key'),
    adminCert: p('admin.crt'),
    adminKey: p('admin.key'),
    controllerManagerCert: p('kube-controller-manager.crt'),
    controllerManagerKey: p('kube-controller-manager.key'),
    kubeletClientCert: p('apiserver-kubelet-client.crt'),
    kubeletClientKey: p('apiserver-kubelet-client.key'),
    serviceAccountKey: p('sa.key'),
    serviceAccountPub: p('sa.pub'),
  };
  // Certificates are world-readable, keys the owner's only.
  const pair = (cert: string, key: string, issued: { certPem: string; keyPem: string }) =>
    [
      [cert, issued.certPem, 0o644],
      [key, issued.keyPem, 0o600],
    ] as const;
  const files: (readonly [string, string, number])[] = [
    ...pair(paths.caCert, paths.caKey, ca),
    ...pair(paths.apiserverCert, paths.apiserverKey, apiserver),
    ...pair(paths.adminCert, paths.adminKey, admin),
    ...pair(paths.controllerManagerCert, paths.controllerManagerKey, kcm),
    ...pair(paths.kubeletClientCert, paths.kubeletClientKey, kubeletClient),
    [paths.serviceAccountKey, sa.privateKeyPem, 0o600],
    [paths.serviceAccountPub, sa.publicKeyPem, 0o644],
  ];
  await Promise.all(files.map(([f, content, mode]) => writeFile(f, content, { mode })));
  return { paths, ca, admin };
}
