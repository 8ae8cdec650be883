/**
 * Kubeconfig resolution with @kubernetes/client-node's KubeConfig: everything a kubeconfig can say — contexts,
 * exec credential plugins (EKS, GKE, kubelogin), auth providers (oidc, gcp, azure), client certificates,
 * token files, basic auth, impersonation, proxy-url, tls-server-name — and the in-cluster service account.
 * The result is plain data (ResolvedKubeconfig) that api/kubeClient.ts's transport uses.
 *
 * What konductor adds around the library, each where it differs from kubectl (client-go's clientcmd):
 * - a KUBECONFIG of several files is merged the kubectl way: the first file that names a cluster, user or
 *   context wins, and the first current-context set wins (KubeConfig.mergeConfig throws on a duplicate
 *   name and lets the last file's current-context win); missing files are skipped;
 * - relative paths are resolved against the file that holds them for token-file and an exec command with
 *   a path separator too (the library does it for certificate files only);
 * - exec plugins get KUBERNETES_EXEC_INFO (apiVersion, interactive: false, and the cluster when
 *   provideClusterInfo is set), as kubectl passes it.
 *
 * This module loads the library (tens of MiB of code): the manager runs it in a short-lived process
 * (api/kubeconfigResolver.ts) so its memory never holds it; short-lived tools (the kubectl plugin, tests)
 * call it directly.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { ActionOnInvalid } from '@kubernetes/client-node/dist/config_types.js';
import { ExecAuth } from '@kubernetes/client-node/dist/exec_auth.js';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { konductorError } from './errors.ts';
import type { KubeconfigSelection, ResolvedKubeconfig } from './kubeconfigTypes.ts';

export type { KubeconfigSelection, ResolvedKubeconfig } from './kubeconfigTypes.ts';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

type RawDoc = {
  'current-context'?: string;
  clusters?: Named[];
  users?: Named[];
  contexts?: Named[];
};
type Named = { name?: string; [k: string]: unknown };

/** Where the configuration comes from, in the order of the selection: which files, or the pod's service account. */
export function kubeconfigSources(
  sel: KubeconfigSelection,
  env: NodeJS.ProcessEnv = process.env,
): { files: string[] } | { inCluster: true } {
  if (sel.kubeconfig) return { files: [sel.kubeconfig] };
  const fromEnv = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  if (fromEnv.length > 0) return { files: fromEnv };
  const inCluster =
    Boolean(env.KUBERNETES_SERVICE_HOST) && existsSync(`${sel.inClusterRoot ?? ''}${IN_CLUSTER_TOKEN}`);
  if (inCluster && sel.preferInCluster) return { inCluster: true };
  const home = join(env.HOME || homedir(), '.kube', 'config');
  if (existsSync(home)) return { files: [home] };
  if (inCluster) return { inCluster: true };
  throw konductorError('KDR_KUBECONFIG_MISSING');
}

/** One kubeconfig file with its relative paths made absolute (against the file's directory). */
function readKubeconfigFile(path: string): RawDoc {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw konductorError('KDR_KUBECONFIG_UNREADABLE', path, (err as Error).message).causedBy(err);
  }
  const raw = (doc ?? {}) as RawDoc;
  const dir = dirname(path);
  const abs = (p: unknown) => (typeof p === 'string' && p !== '' && !isAbsolute(p) ? join(dir, p) : p);
  for (const c of raw.clusters ?? []) {
    const cluster = c.cluster as Record<string, unknown> | undefined;
    if (cluster) cluster['certificate-authority'] = abs(cluster['certificate-authority']);
  }
  for (const u of raw.users ?? []) {
    const user = u.user as Record<string, unknown> | undefined;
    if (!user) continue;
    // kubectl's key is `tokenFile` (client-go's AuthInfo); the library reads `token-file`: accept both
    if (user.tokenFile !== undefined && user['token-file'] === undefined) user['token-file'] = user.tokenFile;
    delete user.tokenFile;
    for (const k of ['client-certificate', 'client-key', 'token-file']) user[k] = abs(user[k]);
    const exec = user.exec as { command?: string } | undefined;
    // kubectl: a command with a path separator is relative to the kubeconfig; a bare name is looked up in PATH
    if (exec?.command?.includes('/')) exec.command = abs(exec.command) as string;
  }
  return raw;
}

/** kubectl's merge: the first file that names an entry wins, and the first current-context wins. */
export function mergeKubeconfigs(docs: readonly RawDoc[]): RawDoc {
  const merged: Required<RawDoc> = { 'current-context': '', clusters: [], users: [], contexts: [] };
  for (const doc of docs) {
    if (!merged['current-context'] && doc['current-context'])
      merged['current-context'] = doc['current-context'];
    for (const key of ['clusters', 'users', 'contexts'] as const) {
      for (const entry of doc[key] ?? []) {
        if (entry?.name && !merged[key].some((e) => e.name === entry.name)) merged[key].push(entry);
      }
    }
  }
  return merged;
}

/** A KubeConfig for the selection, its current context set (throws when that context does not exist). */
export function loadKubeConfig(sel: KubeconfigSelection, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const sources = kubeconfigSources(sel, env);
  if ('inCluster' in sources) {
    kc.loadFromCluster(sel.inClusterRoot);
  } else {
    const present = sources.files.filter((f) => existsSync(f));
    if (present.length === 0) {
      throw konductorError('KDR_KUBECONFIG_MISSING', sources.files);
    }
    const merged = mergeKubeconfigs(present.map(readKubeconfigFile));
    kc.loadFromString(stringifyYaml(merged), { onInvalidEntry: ActionOnInvalid.FILTER });
  }
  if (sel.context) kc.setCurrentContext(sel.context);
  const name = kc.getCurrentContext();
  const where = 'inCluster' in sources ? 'the in-cluster configuration' : sources.files.join(', ');
  if (!name || !kc.getContextObject(name)) {
    const known = kc.getContexts().map((c) => c.name);
    throw konductorError('KDR_KUBECONFIG_CONTEXT', name, where, known);
  }
  if (!kc.getCurrentCluster()) {
    throw konductorError('KDR_KUBECONFIG_INVALID', name, where);
  }
  addExecInfo(kc);
  return kc;
}

/** KUBERNETES_EXEC_INFO for the current user's exec plugin, as kubectl sets it (non-interactive). */
function addExecInfo(kc: KubeConfig): void {
  const user = kc.getCurrentUser() as { exec?: ExecConfig } | null;
  const exec = user?.exec;
  if (!exec) return;
  const cluster = kc.getCurrentCluster();
  const spec: Record<string, unknown> = { interactive: false };
  if (exec.provideClusterInfo && cluster) {
    spec.cluster = {
      server: cluster.server,
      'tls-server-name': cluster.tlsServerName,
      'insecure-skip-tls-verify': cluster.skipTLSVerify,
      'certificate-authority-data': cluster.caData ?? (cluster.caFile ? readB64(cluster.caFile) : undefined),
      'proxy-url': cluster.proxyUrl,
    };
  }
  const info = { apiVersion: exec.apiVersion, kind: 'ExecCredential', spec };
  // ExecAuth copies process.env and applies exec.env on top; it does not pass KUBERNETES_EXEC_INFO itself.
  exec.env = [
    ...(exec.env ?? []).filter((e) => e.name !== 'KUBERNETES_EXEC_INFO'),
    { name: 'KUBERNETES_EXEC_INFO', value: JSON.stringify(info) },
  ];
}

interface ExecConfig {
  apiVersion?: string;
  command?: string;
  env?: { name: string; value: string }[];
  provideClusterInfo?: boolean;
}

const readB64 = (path: string) => readFileSync(path).toString('base64');

const text = (v: unknown): string | undefined =>
  v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);

/**
 * Resolves the selection into what a request needs: server, TLS material and the headers of the current
 * credentials (running an exec plugin or refreshing an auth provider when the library decides to).
 */
export async function resolveKubeconfig(
  sel: KubeconfigSelection,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedKubeconfig> {
  const kc = loadKubeConfig(sel, env);
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser();
  const context = kc.getContextObject(kc.getCurrentContext())!;
  const opts: RequestOptions = {};
  try {
    await kc.applyToHTTPSOptions(opts);
  } catch (err) {
    const reason = String((err as Error).message ?? err).trim();
    throw konductorError('KDR_KUBECONFIG_CREDENTIALS', context.name, reason).causedBy(err);
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((opts.headers ?? {}) as Record<string, unknown>)) {
    if (v !== undefined) headers[k] = String(v);
  }
  if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
  const out: ResolvedKubeconfig = { context: context.name, server: cluster.server, headers };
  if (context.namespace) out.namespace = context.namespace;
  const ca = text(opts.ca);
  if (ca) out.ca = ca;
  const cert = text(opts.cert);
  if (cert) out.cert = cert;
  const key = text(opts.key);
  if (key) out.key = key;
  if (cluster.skipTLSVerify) out.insecureSkipTLSVerify = true;
  if (cluster.tlsServerName) out.tlsServerName = cluster.tlsServerName;
  if (cluster.proxyUrl) out.proxyUrl = cluster.proxyUrl;
  // A token file (a rotating projected service-account token) is re-read by the transport, as kubectl does.
  const tokenFile =
    (user?.authProvider as { config?: { tokenFile?: string } } | undefined)?.config?.tokenFile ??
    rawTokenFile(sel, env, user?.name);
  if (tokenFile) {
    out.tokenFile = tokenFile;
    // client-go trims the file's content (the library sends it as it is, newline included)
    const token = readFileSync(tokenFile, 'utf8').trim();
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  if (user?.exec || (user?.authProvider && !tokenFile)) {
    out.refresh = { kind: user.exec ? 'exec' : 'provider' };
    const expiresAt = execExpiry(kc, user.name);
    if (expiresAt !== undefined) out.refresh.expiresAt = expiresAt;
  }
  return out;
}

/** The user's token-file (the library reads it once, at load). */
function rawTokenFile(
  sel: KubeconfigSelection,
  env: NodeJS.ProcessEnv,
  userName: string | undefined,
): string | undefined {
  if (!userName) return undefined;
  const sources = kubeconfigSources(sel, env);
  if (!('files' in sources)) return undefined;
  const docs = sources.files.filter((f) => existsSync(f)).map(readKubeconfigFile);
  const entry = mergeKubeconfigs(docs).users?.find((u) => u.name === userName);
  const file = (entry?.user as Record<string, unknown> | undefined)?.['token-file'];
  return typeof file === 'string' && file !== '' ? file : undefined;
}

/** expirationTimestamp of the exec credential the library just cached for this user (ms), if it says one. */
function execExpiry(kc: KubeConfig, userName: string): number | undefined {
  const authenticators = (kc as unknown as { authenticators?: unknown[] }).authenticators ?? [];
  // ExecAuth's credential cache is not public API; a test (test/unit/kubeconfig.test.ts) pins this.
  const exec = authenticators.find((a) => a instanceof ExecAuth) as
    | { tokenCache?: Record<string, { status?: { expirationTimestamp?: string } } | null> }
    | undefined;
  const stamp = exec?.tokenCache?.[userName]?.status?.expirationTimestamp;
  const ms = stamp ? Date.parse(stamp) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
}
