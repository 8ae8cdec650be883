/**
 * What a request to the Kubernetes API server is made of, as api/kubeClient.ts sends it: the connection
 * (server, CA, credentials), the resource a path names, the query, and the shapes of a list and a watch event.
 */
export interface KubeConnection {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** A static bearer token. */
  token?: string;
  /** A bearer token file, read at every request (prefer `credentials`, which re-reads it every minute). */
  tokenFile?: string;
  insecureSkipTLSVerify?: boolean;
  /** TLS server name to verify instead of the server URL's host (kubeconfig tls-server-name). */
  tlsServerName?: string;
  /** http://, https:// or socks5:// proxy (kubeconfig proxy-url). */
  proxyUrl?: string;
  /** Headers sent with every request (Authorization, Impersonate-User). */
  headers?: Record<string, string>;
  /** Credentials that change over time (token files, exec plugins, auth providers). */
  credentials?: CredentialSource;
  /** Default namespace of the context (kubeconfig) or of the pod (in cluster). */
  namespace?: string;
  /** The kubeconfig context it came from. */
  context?: string;
}

/** What a request carries to authenticate. */
export interface RequestCredentials {
  headers: Record<string, string>;
  /** Client certificate and key (PEM), e.g. from an exec plugin. */
  cert?: string;
  key?: string;
}

export interface CredentialSource {
  /** The credentials to use now; a promise only while they are being refreshed. */
  current(): RequestCredentials | Promise<RequestCredentials>;
  /** The API server answered 401 Unauthorized: refresh before the next request. */
  invalidate(): void;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Query;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface ListResult<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface ResourceRef {
  group?: string; // '' or undefined for the core group
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** REST path of a resource, collection or subresource. */
export function resourcePath(ref: ResourceRef): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  let p = base;
  if (ref.namespace) p += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  p += `/${ref.plural}`;
  if (ref.name) p += `/${encodeURIComponent(ref.name)}`;
  if (ref.subresource) p += `/${ref.subresource}`;
  return p;
}

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}
