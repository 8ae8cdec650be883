/**
 * A KubeConnection from a kubeconfig, with credentials that stay valid for a long-running process:
 * a token file is re-read every minute (rotating projected service-account tokens, as client-go does),
 * exec-plugin and auth-provider credentials are resolved again before they expire and after a 401.
 *
 * Resolution itself is api/kubeconfig.ts (@kubernetes/client-node). `resolveInSubprocess` runs it in a short-lived
 * process (the manager: the library's code stays out of its memory); tools pass `resolveKubeconfig` directly.
 * This module does not load the library.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isErrorCode, KonductorError, konductorError } from './errors.ts';
import type { KubeconfigSelection, ResolvedKubeconfig } from './kubeconfigTypes.ts';
import type { CredentialSource, KubeConnection, RequestCredentials } from './kubeRequest.ts';

export type KubeconfigResolver = (sel: KubeconfigSelection) => Promise<ResolvedKubeconfig>;

/** Set by scripts/build.ts in bundles: the resolver's file next to the bundle. */
declare const KONDUCTOR_KUBECONFIG_RESOLVER: string | undefined;

function resolverPath(): string {
  return fileURLToPath(
    typeof KONDUCTOR_KUBECONFIG_RESOLVER === 'string'
      ? new URL(KONDUCTOR_KUBECONFIG_RESOLVER, import.meta.url)
      : new URL('./kubeconfigResolver.ts', import.meta.url),
  );
}

/** Resolves in a short-lived node process (api/kubeconfigResolver.ts); exec plugins run as its children. */
export const resolveInSubprocess: KubeconfigResolver = (selection) =>
  new Promise((resolve, reject) => {
    // The compile cache makes every later resolution load the library's code faster (refreshes, restarts).
    const env = { NODE_COMPILE_CACHE: join(tmpdir(), 'konductor-node-compile-cache'), ...process.env };
    const child = spawn(process.execPath, [resolverPath()], { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) =>
      reject(
        konductorError(
          'KDR_KUBECONFIG_RESOLVER',
          `cannot run the kubeconfig resolver: ${e.message}`,
        ).causedBy(e),
      ),
    );
    child.on('close', (code) => {
      let msg: { ok?: ResolvedKubeconfig; error?: { code: string; message: string; statusCode?: number } } =
        {};
      try {
        msg = JSON.parse(Buffer.concat(out).toString('utf8'));
      } catch {
        const detail = Buffer.concat(err).toString('utf8').trim().split('\n').slice(-3).join(' ');
        reject(
          konductorError(
            'KDR_KUBECONFIG_RESOLVER',
            `kubeconfig resolver exited with code ${code}: ${detail}`,
          ),
        );
        return;
      }
      if (msg.ok) resolve(msg.ok);
      else {
        // rendered by the resolver process from the catalogue: kept as it is
        const code = msg.error?.code;
        reject(
          new KonductorError(
            isErrorCode(code) ? code : 'KDR_KUBECONFIG_INVALID',
            msg.error?.message ?? 'unknown error',
            msg.error?.statusCode,
          ),
        );
      }
    });
    child.stdin.end(JSON.stringify(selection));
  });

/** How often a token file is re-read (client-go: one minute). */
export const TOKEN_FILE_REREAD_MS = 60_000;
/** Auth-provider credentials without a stated expiry are resolved again this often. */
export const PROVIDER_REFRESH_MS = 5 * 60_000;
/** Refresh exec credentials this long before their expirationTimestamp. */
export const EXPIRY_MARGIN_MS = 10_000;
/** After a failed refresh, the next attempt waits at least this long (requests fail meanwhile). */
export const REFRESH_RETRY_MS = 2_000;

/** The request credentials of a resolved kubeconfig, refreshed as the kubeconfig's kind of credential needs. */
export class KubeconfigCredentials implements CredentialSource {
  private resolved: ResolvedKubeconfig;
  private creds: RequestCredentials;
  private resolvedAt: number;
  private tokenReadAt = 0;
  private stale = false;
  private refreshing: Promise<RequestCredentials> | undefined;
  private lastFailure: { at: number; err: unknown } | undefined;
  private readonly selection: KubeconfigSelection;
  private readonly resolver: KubeconfigResolver;
  private readonly now: () => number;

  constructor(
    resolved: ResolvedKubeconfig,
    selection: KubeconfigSelection,
    resolver: KubeconfigResolver,
    now: () => number = Date.now,
  ) {
    this.selection = selection;
    this.resolver = resolver;
    this.now = now;
    this.resolved = resolved;
    this.resolvedAt = now();
    this.creds = credentialsOf(resolved);
  }

  /** True when the credentials never change (no token file, no exec plugin, no auth provider). */
  get isStatic(): boolean {
    return !this.resolved.tokenFile && !this.resolved.refresh;
  }

  current(): RequestCredentials | Promise<RequestCredentials> {
    if (this.refreshing) return this.refreshing;
    const now = this.now();
    if (this.needsRefresh(now)) return this.refresh(now);
    if (this.resolved.tokenFile && now - this.tokenReadAt >= TOKEN_FILE_REREAD_MS) this.readTokenFile(now);
    return this.creds;
  }

  invalidate(): void {
    if (this.resolved.refresh) this.stale = true;
    this.tokenReadAt = 0; // a token file is read again at the next request
  }

  private needsRefresh(now: number): boolean {
    const r = this.resolved.refresh;
    if (!r) return false;
    if (this.lastFailure && now - this.lastFailure.at < REFRESH_RETRY_MS) return false;
    if (this.stale) return true;
    if (r.expiresAt !== undefined) return now >= r.expiresAt - EXPIRY_MARGIN_MS;
    return r.kind === 'provider' && now - this.resolvedAt >= PROVIDER_REFRESH_MS;
  }

  private refresh(now: number): Promise<RequestCredentials> {
    if (this.lastFailure && now - this.lastFailure.at < REFRESH_RETRY_MS)
      return Promise.reject(this.lastFailure.err);
    this.refreshing = this.resolver(this.selection).then(
      (resolved) => {
        this.resolved = resolved;
        this.resolvedAt = this.now();
        this.stale = false;
        this.lastFailure = undefined;
        this.creds = credentialsOf(resolved);
        this.refreshing = undefined;
        return this.creds;
      },
      (err: unknown) => {
        this.lastFailure = { at: this.now(), err };
        this.refreshing = undefined;
        throw err;
      },
    );
    return this.refreshing;
  }

  private readTokenFile(now: number): void {
    this.tokenReadAt = now;
    try {
      const token = readFileSync(this.resolved.tokenFile!, 'utf8').trim();
      if (token)
        this.creds = { ...this.creds, headers: { ...this.creds.headers, Authorization: `Bearer ${token}` } };
    } catch {
      // keep the last token: the kubelet rewrites the file atomically, a read error is transient
    }
  }
}

function credentialsOf(r: ResolvedKubeconfig): RequestCredentials {
  const c: RequestCredentials = { headers: { ...r.headers } };
  if (r.cert) c.cert = r.cert;
  if (r.key) c.key = r.key;
  return c;
}

/** A connection for the selection. `resolver`: resolveInSubprocess (default) or api/kubeconfig.ts resolveKubeconfig. */
export async function connectKubeconfig(
  selection: KubeconfigSelection,
  resolver: KubeconfigResolver = resolveInSubprocess,
): Promise<KubeConnection> {
  const resolved = await resolver(selection);
  const conn: KubeConnection = { server: resolved.server, context: resolved.context };
  if (resolved.namespace) conn.namespace = resolved.namespace;
  if (resolved.ca) conn.ca = resolved.ca;
  if (resolved.insecureSkipTLSVerify) conn.insecureSkipTLSVerify = true;
  if (resolved.tlsServerName) conn.tlsServerName = resolved.tlsServerName;
  if (resolved.proxyUrl) conn.proxyUrl = resolved.proxyUrl;
  const credentials = new KubeconfigCredentials(resolved, selection, resolver);
  if (credentials.isStatic) {
    if (resolved.cert) conn.cert = resolved.cert;
    if (resolved.key) conn.key = resolved.key;
    conn.headers = { ...resolved.headers };
  } else {
    conn.credentials = credentials;
  }
  return conn;
}
