/**
 * A small Kubernetes REST client over node:https with keep-alive: the transport every part shares
 * (controller, certs, devcluster, tests, the kubectl plugin). It lives in api/ because api/ imports
 * nothing of ours.
 *
 * What a kubeconfig says (contexts, exec plugins, auth providers, token files, proxy-url, tls-server-name,
 * in-cluster) is resolved by @kubernetes/client-node's KubeConfig (api/kubeconfig.ts,
 * api/kubeconfigSource.ts); this transport only sends requests with the result. Why not the library's own
 * request layer: konductor needs a handful of verbs, watches that resume by resourceVersion, and low
 * per-request overhead (the handoff budget is milliseconds, the memory budget 150 MiB; docs/decisions.md).
 */
import { readFileSync } from 'node:fs';
import { type Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { ERRORS, KonductorError } from './errors.ts';
import type { KubeconfigSelection } from './kubeconfigTypes.ts';
import {
  type KubeConnection,
  type ListResult,
  type Query,
  type RequestOptions,
  type WatchEvent,
  withQuery,
} from './kubeRequest.ts';
/** A Status returned by the API server, or a transport failure (statusCode 0). */
export class KubeApiError extends KonductorError {
  readonly reason: string;
  readonly body: unknown;
  /** `request` e.g. `GET /api/v1/pods`; `detail` what came back (or what failed); `reason` the Status reason. */
  constructor(statusCode: number, reason: string, request: string, detail: string, body?: unknown) {
    super('KDR_KUBE_API', ERRORS.KDR_KUBE_API.message(request, detail), statusCode);
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

export class KubeClient {
  private conn: KubeConnection | undefined;
  private readonly pending: Promise<KubeConnection> | undefined;
  private agent: Agent | HttpAgent | undefined;
  private agentTls: string | undefined;
  private url!: URL;
  private closed = false;

  /** A connection, or a promise of one (requests wait for it). */
  constructor(connection: KubeConnection | Promise<KubeConnection>) {
    if (connection instanceof Promise) {
      this.pending = connection.then((c) => this.use(c));
      this.pending.catch(() => undefined); // surfaced by the first request
    } else {
      this.use(connection);
    }
  }

  /**
   * A client for a kubeconfig (kubectl's rules: --kubeconfig, $KUBECONFIG merged, ~/.kube/config, in-cluster),
   * resolved in a short-lived process (api/kubeconfigResolver.ts); requests wait until it is resolved.
   */
  static fromKubeconfig(path?: string, context?: string): KubeClient {
    const selection: KubeconfigSelection = { kubeconfig: path, context, preferInCluster: true };
    return new KubeClient(import('./kubeconfigSource.ts').then((m) => m.connectKubeconfig(selection)));
  }

  /** The connection (undefined until a pending one is resolved). */
  get connection(): KubeConnection | undefined {
    return this.conn;
  }

  /** Resolves with the connection once it is known (rejects when it cannot be resolved). */
  async connected(): Promise<KubeConnection> {
    return this.conn ?? (await this.pending!);
  }

  private use(connection: KubeConnection): KubeConnection {
    this.conn = connection;
    this.url = new URL(connection.server);
    return connection;
  }

  /** Closes idle keep-alive sockets (watches end on their own when aborted). */
  close(): void {
    this.closed = true;
    this.agent?.destroy();
  }

  /** The keep-alive agent for this client certificate (rebuilt when exec credentials rotate it). */
  private async agentFor(conn: KubeConnection, cert?: string, key?: string): Promise<Agent | HttpAgent> {
    const tlsKey = `${cert ?? conn.cert ?? ''}|${key ?? conn.key ?? ''}`;
    if (this.agent && this.agentTls === tlsKey) return this.agent;
    const old = this.agent;
    const options = {
      keepAlive: true,
      maxSockets: Number.POSITIVE_INFINITY,
      maxFreeSockets: 64,
      ca: conn.ca,
      cert: cert ?? conn.cert,
      key: key ?? conn.key,
      rejectUnauthorized: !conn.insecureSkipTLSVerify,
      ...(conn.tlsServerName ? { servername: conn.tlsServerName } : {}),
    };
    this.agent = conn.proxyUrl ? await proxyAgent(conn.proxyUrl, this.url, options) : new Agent(options);
    this.agentTls = tlsKey;
    if (this.closed) this.agent.destroy();
    old?.destroy();
    return this.agent;
  }

  private async headers(
    conn: KubeConnection,
    contentType?: string,
  ): Promise<{ headers: Record<string, string>; agent: Agent | HttpAgent }> {
    const h: Record<string, string> = { Accept: 'application/json', ...conn.headers };
    if (contentType) h['Content-Type'] = contentType;
    const token = conn.tokenFile ? readFileSync(conn.tokenFile, 'utf8').trim() : conn.token;
    if (token) h.Authorization = `Bearer ${token}`;
    let cert: string | undefined;
    let key: string | undefined;
    if (conn.credentials) {
      const c = conn.credentials.current();
      const creds = c instanceof Promise ? await c : c;
      Object.assign(h, creds.headers);
      cert = creds.cert;
      key = creds.key;
    }
    const agent = this.agent && !conn.credentials ? this.agent : await this.agentFor(conn, cert, key);
    return { headers: h, agent };
  }

  /** Opens a request and resolves with the response once its headers arrive. */
  private async open(method: string, path: string, opts: RequestOptions): Promise<IncomingMessage> {
    const conn = this.conn ?? (await this.pending!);
    const payload =
      opts.body === undefined
        ? undefined
        : typeof opts.body === 'string'
          ? opts.body
          : JSON.stringify(opts.body);
    const { headers, agent } = await this.headers(
      conn,
      payload === undefined ? undefined : (opts.contentType ?? 'application/json'),
    );
    if (payload !== undefined) headers['Content-Length'] = String(Buffer.byteLength(payload));
    const send = this.url.protocol === 'http:' ? httpRequest : httpsRequest;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port || (this.url.protocol === 'http:' ? 80 : 443),
          path: withQuery(`${this.url.pathname.replace(/\/$/, '')}${path}`, opts.query),
          method,
          headers,
          agent,
          signal: opts.signal,
          timeout: opts.timeoutMs,
          ...(conn.tlsServerName ? { servername: conn.tlsServerName } : {}),
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`request timed out after ${opts.timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(
          err.name === 'AbortError'
            ? err
            : new KubeApiError(0, '', `${method} ${path}`, `request failed: ${(err as Error).message}`),
        ),
      );
      req.end(payload);
    });
    // Expired or revoked credentials: the next request refreshes them (exec plugin, token file), as client-go does.
    if (res.statusCode === 401) conn.credentials?.invalidate();
    return res;
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
        `${method} ${path}`,
        `${status} ${st?.message ?? text}`,
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
        throw new KubeApiError(res.statusCode ?? 0, '', `GET ${path}`, Buffer.concat(chunks).toString());
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
      throw new KubeApiError(res.statusCode ?? 0, reason, `watch ${path}`, `${res.statusCode} ${text}`);
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
              `watch ${path}`,
              st.message ?? 'error event',
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

/** A keep-alive agent through kubeconfig's proxy-url (the agents @kubernetes/client-node uses: hpagent, socks-proxy-agent). */
async function proxyAgent(
  proxyUrl: string,
  server: URL,
  options: Record<string, unknown>,
): Promise<Agent | HttpAgent> {
  if (proxyUrl.startsWith('socks')) {
    const { SocksProxyAgent } = await import('socks-proxy-agent');
    return new SocksProxyAgent(proxyUrl, options) as unknown as Agent;
  }
  const { HttpsProxyAgent, HttpProxyAgent } = await import('hpagent');
  return server.protocol === 'http:'
    ? new HttpProxyAgent({ ...options, proxy: proxyUrl })
    : new HttpsProxyAgent({ ...options, proxy: proxyUrl });
}
