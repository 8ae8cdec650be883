/** The kubeconfig files the devcluster writes: the admin's, kube-controller-manager's, the real node's components'. */
import { stringify as toYaml } from 'yaml';

export interface KubeconfigOptions {
  name: string;
  server: string;
  caPem: string;
  user: string;
  /** The client certificate, embedded (`pem`) or by file (`path`). */
  cert: { pem?: string; path?: string };
  key: { pem?: string; path?: string };
}

/** A kubeconfig with one cluster, one user and the context joining them. */
export function kubeconfigYaml(opts: KubeconfigOptions): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const user: Record<string, string> = {};
  if (opts.cert.pem) user['client-certificate-data'] = b64(opts.cert.pem);
  if (opts.cert.path) user['client-certificate'] = opts.cert.path;
  if (opts.key.pem) user['client-key-data'] = b64(opts.key.pem);
  if (opts.key.path) user['client-key'] = opts.key.path;
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: opts.name, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } },
    ],
    users: [{ name: opts.user, user }],
    contexts: [{ name: opts.name, context: { cluster: opts.name, user: opts.user } }],
    'current-context': opts.name,
  });
}
