/**
 * The command-line flags of the control plane's components (etcd, kube-apiserver,
 * kube-controller-manager): pure, from the ports, addresses and PKI paths. See devcluster/README.md for why
 * each one.
 */
import type { ClusterPkiPaths } from './pki.ts';

export const SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';
export const KUBERNETES_SERVICE_IP = '10.0.0.1';
/** Admission plugins enabled besides the defaults (the real node adds NodeRestriction). */
export const ADMISSION_PLUGINS = [
  'NamespaceLifecycle',
  'ServiceAccount',
  'MutatingAdmissionWebhook',
  'ValidatingAdmissionWebhook',
  'ValidatingAdmissionPolicy',
];
/**
 * Audiences the apiserver accepts for service-account tokens: its issuer only, as in a real cluster. So an
 * ordinary service-account token (`kubectl create token`) is not a `konductor` token; the injected projected
 * token asks for audience `konductor` itself, and the manager's TokenReview names that audience.
 */
export const API_AUDIENCES = ['https://kubernetes.default.svc'];

/**
 * `base` with `extra` applied: an extra `--name=value` replaces the base flag of the same name (list
 * flags such as --authorization-mode fail when repeated), any other is appended.
 */
export function mergeFlags(base: readonly string[], extra: readonly string[] = []): string[] {
  const name = (f: string) => f.split('=')[0];
  const out = [...base];
  for (const flag of extra) {
    const i = out.findIndex((f) => name(f) === name(flag));
    if (i >= 0) out[i] = flag;
    else out.push(flag);
  }
  return out;
}

/** A single-member etcd on `clientUrl`/`peerUrl` keeping its data in `dataDir`, without fsync (a test cluster). */
export function etcdFlags(
  opts: { dataDir: string; clientUrl: string; peerUrl: string },
  extra: readonly string[] = [],
): string[] {
  return [
    '--name=devcluster',
    `--data-dir=${opts.dataDir}`,
    `--listen-client-urls=${opts.clientUrl}`,
    `--advertise-client-urls=${opts.clientUrl}`,
    `--listen-peer-urls=${opts.peerUrl}`,
    `--initial-advertise-peer-urls=${opts.peerUrl}`,
    `--initial-cluster=devcluster=${opts.peerUrl}`,
    '--unsafe-no-fsync=true',
    '--log-level=warn',
    ...extra,
  ];
}

export function apiserverFlags(
  opts: { etcdUrl: string; bindAddress: string; port: number; pki: ClusterPkiPaths },
  extra?: readonly string[],
): string[] {
  const p = opts.pki;
  return mergeFlags(
    [
      `--etcd-servers=${opts.etcdUrl}`,
      `--bind-address=${opts.bindAddress}`,
      `--advertise-address=${opts.bindAddress}`,
      `--secure-port=${opts.port}`,
      `--cert-dir=${p.dir}`,
      `--tls-cert-file=${p.apiserverCert}`,
      `--tls-private-key-file=${p.apiserverKey}`,
      `--client-ca-file=${p.caCert}`,
      '--authorization-mode=RBAC',
      `--enable-admission-plugins=${ADMISSION_PLUGINS.join(',')}`,
      '--allow-privileged=true',
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${p.serviceAccountPub}`,
      `--service-account-signing-key-file=${p.serviceAccountKey}`,
      `--api-audiences=${API_AUDIENCES.join(',')}`,
      `--kubelet-client-certificate=${p.kubeletClientCert}`,
      `--kubelet-client-key=${p.kubeletClientKey}`,
      `--kubelet-certificate-authority=${p.caCert}`,
      '--kubelet-preferred-address-types=InternalIP',
      // A loopback advertise address cannot be an Endpoints address: do not reconcile the
      // `kubernetes` Service endpoints (nothing in the devcluster reaches the apiserver through it).
      '--endpoint-reconciler-type=none',
      '--profiling=false',
    ],
    extra,
  );
}

export function controllerManagerFlags(
  opts: { kubeconfig: string; pki: ClusterPkiPaths },
  extra?: readonly string[],
): string[] {
  const p = opts.pki;
  return mergeFlags(
    [
      `--kubeconfig=${opts.kubeconfig}`,
      `--authentication-kubeconfig=${opts.kubeconfig}`,
      `--authorization-kubeconfig=${opts.kubeconfig}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--use-service-account-credentials=false',
      `--service-account-private-key-file=${p.serviceAccountKey}`,
      `--root-ca-file=${p.caCert}`,
      `--cluster-signing-cert-file=${p.caCert}`,
      `--cluster-signing-key-file=${p.caKey}`,
      // Everything on by default except what needs cloud, node CIDRs or a node heartbeat we do
      // not promise: node-lifecycle would taint and evict pods of a quiet process kubelet.
      '--controllers=*,-node-ipam-controller,-node-lifecycle-controller,-persistentvolume-attach-detach-controller',
      '--cluster-name=konductor-devcluster',
      '--controller-start-interval=0s',
    ],
    extra,
  );
}
