/**
 * A small Kubernetes REST client over node:https with keep-alive.
 *
 * Why not @kubernetes/client-node: konductor needs a handful of verbs, watches that resume by
 * resourceVersion, and low per-request overhead (the handoff budget is milliseconds). This client is
 * the one every part shares (controller, certs, devcluster, tests); it lives in api/ because api/
 * imports nothing of ours.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KonductorError } from './errors.ts';

export interface KubeConnection {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  tokenFile?: string;
  insecureSkipTLSVerify?: boolean;
  /** Default namespace of the context (kubeconfig) or of the pod (in cluster). */
  namespace?: string;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      'certificate-authority-data'?: string;
      'certificate-authority'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }[];
  users?: {
    name: string;
    user: {
      'client-certificate-data'?: string;
      'client-key-data'?: string;
      'client-certificate'?: string;
      'client-key'?: string;
      token?: string;
      tokenFile?: string;
    };
  }[];
}

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** Reads a kubeconfig file (its current context) into a connection. */
export function connectionFromKubeconfig(path: string, contextName?: string): KubeConnection {
  let doc: KubeconfigFile;
  try {
    doc = parseYaml(readFileSync(path, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new KonductorError(
      'KDR_KUBECONFIG_UNREADABLE',
      `cannot read kubeconfig ${path}: ${(err as Error).message}`,
      500,
      {
        cause: err,
      },
    );
  }
  const ctxName = contextName ?? doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  const cluster = doc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx?.user)?.user ?? {};
  if (!ctx || !cluster) {
    throw new KonductorError(
      'KDR_KUBECONFIG_INVALID',
      `kubeconfig ${path} has no usable context "${ctxName ?? ''}"`,
    );
  }
  const conn: KubeConnection = { server: cluster.server.replace(/\/$/, '') };
  if (cluster['certificate-authority-data']) conn.ca = b64(cluster['certificate-authority-data']);
  else if (cluster['certificate-authority']) conn.ca = readFileSync(cluster['certificate-authority'], 'utf8');
  if (cluster['insecure-skip-tls-verify']) conn.insecureSkipTLSVerify = true;
  if (user['client-certificate-data']) conn.cert = b64(user['client-certificate-data']);
  else if (user['client-certificate']) conn.cert = readFileSync(user['client-certificate'], 'utf8');
  if (user['client-key-data']) conn.key = b64(user['client-key-data']);
  else if (user['client-key']) conn.key = readFileSync(user['client-key'], 'utf8');
  if (user.token) conn.token = user.token;
  if (user.tokenFile) conn.tokenFile = user.tokenFile;
  if (ctx.namespace) conn.namespace = ctx.namespace;
  return conn;
}

/** In-cluster connection from the pod's service account (KUBERNETES_SERVICE_HOST/PORT). */
export function inClusterConnection(): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host)
    throw new KonductorError('KDR_KUBECONFIG_MISSING', 'not running in a cluster and no kubeconfig given');
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    server: `https://${h}:${port}`,
    ca: readFileSync(join(IN_CLUSTER_DIR, 'ca.crt'), 'utf8'),
    tokenFile: join(IN_CLUSTER_DIR, 'token'),
    namespace: readFileSync(join(IN_CLUSTER_DIR, 'namespace'), 'utf8').trim(),
  };
}

/** --kubeconfig, then $KUBECONFIG, then in-cluster, then ~/.kube/config. */
export function resolveConnection(kubeconfigPath?: string): KubeConnection {
  const path = kubeconfigPath || process.env.KUBECONFIG?.split(':')[0];
  if (path) return connectionFromKubeconfig(path);
  if (process.env.KUBERNETES_SERVICE_HOST) return inClusterConnection();
  return connectionFromKubeconfig(join(homedir(), '.kube', 'config'));
}

/** A Status returned by the API server, or a transport failure (statusCode 0). */
export class KubeApiError extends KonductorError {
  readonly reason: string;
  readonly body: unknown;
  constructor(statusCode: number, reason: string, message: string, body?: unknown) {
    super(`KDR_KUBE_${reason ? reason.toUpperCase() : 'HTTP'}`, message, statusCode);
    this.name = 'KubeApiError';
    this.reason = reason;
    this.body = body;
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.statusCode === 404;
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.statusCode === 409;
export const isAlreadyExists = (err: unknown) =>
  err instanceof KubeApiError && err.reason === 'AlreadyExists';
export const isGone = (err: unknown) => err instanceof KubeApiError && err.statusCode === 410;

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

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

export class KubeClient {
  readonly connection: KubeConnection;
  private readonly agent: Agent;
  private readonly url: URL;

  constructor(connection: KubeConnection) {
    this.connection = connection;
    this.url = new URL(connection.server);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: Number.POSITIVE_INFINITY,
      maxFreeSockets: 64,
      ca: connection.ca,
      cert: connection.cert,
      key: connection.key,
      rejectUnauthorized: !connection.insecureSkipTLSVerify,
    });
  }

  static fromKubeconfig(path?: string): KubeClient {
    return new KubeClient(resolveConnection(path));
  }

  /** Closes idle keep-alive sockets (watches end on their own when aborted). */
  close(): void {
    this.agent.destroy();
  }

  private headers(contentType?: string): Record<string, string> {
    const h: Record<string, string> = { Accept: 'application/json' };
    if (contentType) h['Content-Type'] = contentType;
    const token = this.connection.tokenFile
      ? readFileSync(this.connection.tokenFile, 'utf8').trim()
      : this.connection.token;
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  /** Opens a request and resolves with the response once its headers arrive. */
  private open(method: string, path: string, opts: RequestOptions): Promise<IncomingMessage> {
    const payload =
      opts.body === undefined
        ? undefined
        : typeof opts.body === 'string'
          ? opts.body
          : JSON.stringify(opts.body);
    const headers = this.headers(
      payload === undefined ? undefined : (opts.contentType ?? 'application/json'),
    );
    if (payload !== undefined) headers['Content-Length'] = String(Buffer.byteLength(payload));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port || 443,
          path: withQuery(path, opts.query),
          method,
          headers,
          agent: this.agent,
          signal: opts.signal,
          timeout: opts.timeoutMs,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`request timed out after ${opts.timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(
          err.name === 'AbortError'
            ? err
            : new KubeApiError(0, '', `${method} ${path} failed: ${(err as Error).message}`, undefined),
        ),
      );
      req.end(payload);
    });
  }

  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.open(method, path, { timeoutMs: 60_000, ...opts });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    let body: unknown = text;
    if ((res.headers['content-type'] ?? '').includes('json') && text) {
      try {
        body = JSON.parse(text);
      } catch {
        /* keep text */
      }
    }
    if (status >= 400) {
      const st = body as { reason?: string; message?: string };
      throw new KubeApiError(
        status,
        st?.reason ?? '',
        `${method} ${path}: ${status} ${st?.message ?? text}`,
        body,
      );
    }
    return body as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
  }
  list<T>(path: string, query?: Query): Promise<ListResult<T>> {
    return this.request<ListResult<T>>('GET', path, { query });
  }
  create<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>('POST', path, { body, query });
  }
  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }
  patchMerge<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: 'application/merge-patch+json' });
  }
  patchJson<T>(path: string, ops: unknown[]): Promise<T> {
    return this.request<T>('PATCH', path, { body: ops, contentType: 'application/json-patch+json' });
  }
  patchStrategic<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: 'application/strategic-merge-patch+json' });
  }
  /** Server-side apply. */
  apply<T>(path: string, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.request<T>('PATCH', path, {
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager, force },
    });
  }
  delete<T>(path: string, body?: unknown, query?: Query): Promise<T> {
    return this.request<T>('DELETE', path, { body, query });
  }

  /** A raw streaming GET (logs). The caller consumes and closes the response. */
  stream(path: string, query?: Query, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.open('GET', path, { query, signal }).then(async (res) => {
      if ((res.statusCode ?? 0) >= 400) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        throw new KubeApiError(res.statusCode ?? 0, '', `GET ${path}: ${Buffer.concat(chunks).toString()}`);
      }
      return res;
    });
  }

  /**
   * One watch request. Calls onEvent for every event, resolves when the server ends the stream
   * (normal timeout) or the signal aborts, rejects on transport errors and on HTTP errors
   * (410 Gone included: the caller re-lists). An ERROR event is thrown as KubeApiError.
   */
  async watch<T>(
    path: string,
    query: Query,
    onEvent: (ev: WatchEvent<T>) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    let res: IncomingMessage;
    try {
      res = await this.open('GET', path, { query: { ...query, watch: true }, signal });
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString();
      let reason = '';
      try {
        reason = (JSON.parse(text) as { reason?: string }).reason ?? '';
      } catch {
        /* not JSON */
      }
      throw new KubeApiError(res.statusCode ?? 0, reason, `watch ${path}: ${res.statusCode} ${text}`);
    }
    let buf = '';
    try {
      for await (const chunk of res) {
        buf += (chunk as Buffer).toString('utf8');
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf('\n');
          if (!line.trim()) continue;
          const ev = JSON.parse(line) as WatchEvent<T>;
          if (ev.type === 'ERROR') {
            const st = ev.object as { code?: number; reason?: string; message?: string };
            throw new KubeApiError(
              st.code ?? 500,
              st.reason ?? '',
              `watch ${path}: ${st.message ?? 'error event'}`,
              st,
            );
          }
          onEvent(ev);
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
  }
}
