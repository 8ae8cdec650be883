/**
 * The devcluster's PKI: a cluster CA and the certificates the control plane needs (apiserver serving,
 * admin client, controller-manager client, apiserver -> kubelet client) plus the service-account
 * signing key pair. RSA keys come from node:crypto (fast, async); node-forge builds the certificates.
 * `signCertificate` is exported so the process kubelet can issue its serving certificate from the
 * same CA.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'both';
  validDays?: number;
}

export function generateRsaKeyPair(bits = 2048): Promise<KeyPairPem> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: bits,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      },
      (err, publicKeyPem, privateKeyPem) => (err ? reject(err) : resolve({ publicKeyPem, privateKeyPem })),
    );
  });
}

/** A positive random serial (hex, high bit cleared). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number) {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 5 * 60_000);
  cert.validity.notAfter = new Date(now + days * 86_400_000);
}

export async function createCa(
  commonName = 'konductor-devcluster-ca',
  validDays = 3650,
): Promise<CertAndKey> {
  const keys = await generateRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = randomSerial();
  validity(cert, validDays);
  const attrs = [{ name: 'commonName', value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

/** Issues a leaf certificate signed by `ca`. */
export async function signCertificate(ca: CertAndKey, req: CertRequest): Promise<CertAndKey> {
  const keys = await generateRsaKeyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = randomSerial();
  validity(cert, req.validDays ?? 365);
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: req.commonName }];
  for (const o of req.organizations ?? []) subject.push({ name: 'organizationName', value: o });
  cert.setSubject(subject);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(req.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const extensions: Record<string, unknown>[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: 'extKeyUsage',
      serverAuth: req.usage !== 'client',
      clientAuth: req.usage !== 'server',
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (altNames.length) extensions.push({ name: 'subjectAltName', altNames });
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
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
    generateRsaKeyPair(),
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
  const files: [string, string, number][] = [
    [paths.caCert, ca.certPem, 0o644],
    [paths.caKey, ca.keyPem, 0o600],
    [paths.apiserverCert, apiserver.certPem, 0o644],
    [paths.apiserverKey, apiserver.keyPem, 0o600],
    [paths.adminCert, admin.certPem, 0o644],
    [paths.adminKey, admin.keyPem, 0o600],
    [paths.controllerManagerCert, kcm.certPem, 0o644],
    [paths.controllerManagerKey, kcm.keyPem, 0o600],
    [paths.kubeletClientCert, kubeletClient.certPem, 0o644],
    [paths.kubeletClientKey, kubeletClient.keyPem, 0o600],
    [paths.serviceAccountKey, sa.privateKeyPem, 0o600],
    [paths.serviceAccountPub, sa.publicKeyPem, 0o644],
  ];
  await Promise.all(files.map(([f, content, mode]) => writeFile(f, content, { mode })));
  return { paths, ca, admin };
}
