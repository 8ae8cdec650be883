/**
 * Calling the manager's agent API as an agent (or an impostor) would: a POST over TLS with a bearer token, and
 * tokens bound to a pod from the TokenRequest API — the injected projected token's audience `konductor`, or
 * none (the API server's own: an ordinary service-account token).
 */
import { request as httpsRequest } from 'node:https';
import type { KubeClient } from '../../api/kubeClient.ts';

export interface AgentAnswer {
  status: number;
  body: string;
}

/** POSTs `{}` to `url + path` trusting `ca`; `agent: false` leaves no idle keep-alive connection behind. */
export function postAgent(
  url: string,
  ca: string,
  path: string,
  token?: string,
  opts: { agent?: false; timeoutMs?: number } = {},
): Promise<AgentAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}${path}`,
      {
        method: 'POST',
        ca,
        ...(opts.agent === false ? { agent: false } : {}),
        ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end('{}');
  });
}

/** A service-account token bound to the pod (TokenRequest, default ServiceAccount), for `audiences` (none: the API server's). */
export async function mintPodToken(
  client: KubeClient,
  namespace: string,
  pod: { name: string; uid: string | undefined },
  audiences?: string[],
  expirationSeconds = 600,
): Promise<string> {
  const tr = await client.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${namespace}/serviceaccounts/default/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        ...(audiences ? { audiences } : {}),
        expirationSeconds,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid },
      },
    },
  );
  return tr.status.token;
}
