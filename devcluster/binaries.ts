/**
 * Resolves the upstream binaries the devcluster runs (etcd, kube-apiserver, kube-controller-manager,
 * kubectl) and, generically, any "Go tool set": a small Go module of ours under devcluster/ whose
 * packages are built once with `go build` into a per-version cache outside the repo and reused.
 *
 * Order for the Kubernetes binaries (DESIGN §7): KUBEBUILDER_ASSETS (envtest layout), then
 * KONDUCTOR_K8S_BIN, then the build cache (~/.cache/konductor/k8s/<version>/bin, root overridable
 * with KONDUCTOR_CACHE_DIR). A stamp file holds a hash of the module (go.mod, go.sum, *.go) and the
 * build flags, so a changed module rebuilds. A mkdir lock with the owner's PID makes concurrent
 * builds wait for each other; a lock whose owner is dead is taken over.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { konductorError } from '../api/errors.ts';
import { withBuildLock } from './buildLock.ts';
import { runGoBuild } from './goBuild.ts';
import { GO_TOOLSETS, type GoToolset } from './goToolsets.ts';

export interface EnsureOptions {
  /** Cache root; default $KONDUCTOR_CACHE_DIR or ~/.cache/konductor. */
  cacheRoot?: string;
  /** Progress sink (default: stderr). */
  log?: (line: string) => void;
  /** Heartbeat interval while building (default 15 s). */
  heartbeatMs?: number;
  /** Environment to resolve from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface K8sBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  /** Where each came from, for messages. */
  source: string;
}

const defaultLog = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

export function cacheRootDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KONDUCTOR_CACHE_DIR || join(homedir(), '.cache', 'konductor');
}

/**
 * Directory of a tool set's cache: <root>/<id>/<version>-<hash prefix>; its binaries live in ./bin.
 * The hash in the name lets checkouts with different modules (branches) share one cache root
 * without rebuilding over each other's binaries.
 */
export function toolsetDir(toolset: GoToolset, cacheRoot: string): string {
  return join(cacheRoot, toolset.id, `${toolset.version}-${toolsetHash(toolset).slice(0, 12)}`);
}

function listModuleGoFiles(dir: string, root = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listModuleGoFiles(p, root));
    else if (e.name.endsWith('.go')) out.push(relative(root, p));
  }
  return out.sort();
}

/** Hash of everything that determines the build output: module files, targets, flags, env. */
export function toolsetHash(toolset: GoToolset): string {
  const h = createHash('sha256');
  const files = ['go.mod', 'go.sum', ...listModuleGoFiles(toolset.moduleDir)];
  for (const f of files) {
    h.update(`file:${f}\n`);
    h.update(readFileSync(join(toolset.moduleDir, f)));
  }
  h.update(`packages:${toolset.packages.join(' ')}\n`);
  h.update(`ldflags:${toolset.ldflags}\n`);
  h.update(`env:${JSON.stringify(toolset.env ?? {})}\n`);
  if (toolset.tags?.length) h.update(`tags:${toolset.tags.join(',')}\n`);
  h.update('flags:-trimpath\n');
  return h.digest('hex');
}

interface Stamp {
  hash: string;
  version: string;
  builtAt: string;
  goVersion: string;
  buildSeconds: number;
}

function stampValid(dir: string, toolset: GoToolset, hash: string): boolean {
  try {
    const stamp = JSON.parse(readFileSync(join(dir, 'stamp.json'), 'utf8')) as Stamp;
    return stamp.hash === hash && toolset.binaries.every((b) => existsSync(join(dir, 'bin', b)));
  } catch {
    return false;
  }
}

/** Returns `go version`'s x.y.z, or undefined when go is not on PATH. */
export function goVersion(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.trim().replace(/^go/, '');
}

function versionAtLeast(have: string, want: string): boolean {
  const a = have.split(/[.a-z]/).map((x) => Number.parseInt(x, 10) || 0);
  const b = want.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

export function missingGoMessage(toolset: GoToolset, found?: string): string {
  const what =
    toolset.id === 'k8s'
      ? 'the Kubernetes binaries'
      : `the ${toolset.id} tools (${toolset.binaries.join(', ')})`;
  const hint =
    toolset.id === 'k8s'
      ? '; install it or set KUBEBUILDER_ASSETS / KONDUCTOR_K8S_BIN'
      : '; install it (https://go.dev/dl/)';
  const foundText = found ? ` (found go ${found})` : ' (no `go` on PATH)';
  return `Go >= ${toolset.minGo} is needed once to build ${what}${hint}${foundText}`;
}

/**
 * Ensures the tool set is built in the cache and returns its bin directory. Builds at most once per
 * module hash; concurrent callers (other processes) wait on the lock.
 */
export async function ensureGoTools(toolsetId: string, opts: EnsureOptions = {}): Promise<string> {
  const toolset = GO_TOOLSETS[toolsetId];
  if (!toolset) {
    throw konductorError('KDR_DEVCLUSTER_UNKNOWN_TOOLSET', toolsetId);
  }
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const dir = toolsetDir(toolset, opts.cacheRoot ?? cacheRootDir(env));
  const binDir = join(dir, 'bin');
  const hash = toolsetHash(toolset);
  if (stampValid(dir, toolset, hash)) return binDir;

  await mkdir(dir, { recursive: true });
  return withBuildLock(join(dir, '.lock'), log, heartbeatMs, async () => {
    if (stampValid(dir, toolset, hash)) return binDir; // another process built it meanwhile
    const gov = goVersion(env);
    if (!gov || !versionAtLeast(gov, toolset.minGo)) {
      throw konductorError('KDR_DEVCLUSTER_GO_MISSING', missingGoMessage(toolset, gov));
    }
    const started = Date.now();
    log(
      `building ${toolset.binaries.join(', ')} ${toolset.version} with go ${gov} into ${binDir} ` +
        '(once; takes several minutes the first time)',
    );
    const tmp = join(dir, `bin.tmp-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      await runGoBuild(toolset, tmp, log, heartbeatMs, env);
      for (const b of toolset.binaries) {
        if (!existsSync(join(tmp, b))) {
          throw konductorError(
            'KDR_DEVCLUSTER_BUILD_FAILED',
            `go build finished but ${b} is missing in ${tmp}; check GO_TOOLSETS.${toolset.id}.packages`,
          );
        }
      }
      log('  phase 3/3: installing into the cache');
      await rm(binDir, { recursive: true, force: true });
      await rename(tmp, binDir);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
    const stamp: Stamp = {
      hash,
      version: toolset.version,
      builtAt: new Date().toISOString(),
      goVersion: gov,
      buildSeconds,
    };
    await writeFile(join(dir, 'stamp.json'), `${JSON.stringify(stamp, null, 2)}\n`);
    log(`built ${toolset.id} tools in ${buildSeconds} s`);
    return binDir;
  });
}

const K8S_NAMES = {
  etcd: 'etcd',
  kubeApiserver: 'kube-apiserver',
  kubeControllerManager: 'kube-controller-manager',
  kubectl: 'kubectl',
} as const;
type K8sKey = keyof typeof K8S_NAMES;

function fromDir(dir: string | undefined): Partial<Record<K8sKey, string>> {
  const found: Partial<Record<K8sKey, string>> = {};
  if (!dir) return found;
  for (const [key, name] of Object.entries(K8S_NAMES) as [K8sKey, string][]) {
    const p = join(dir, name);
    if (existsSync(p)) found[key] = p;
  }
  return found;
}

/**
 * The four Kubernetes binaries: each from KUBEBUILDER_ASSETS, else KONDUCTOR_K8S_BIN, else the
 * build cache (built on demand only when something is still missing).
 */
export async function ensureK8sBinaries(opts: EnsureOptions = {}): Promise<K8sBinaries> {
  const env = opts.env ?? process.env;
  const sources: string[] = [];
  const assets = fromDir(env.KUBEBUILDER_ASSETS);
  const bin = fromDir(env.KONDUCTOR_K8S_BIN);
  for (const [label, dir] of [
    ['KUBEBUILDER_ASSETS', env.KUBEBUILDER_ASSETS],
    ['KONDUCTOR_K8S_BIN', env.KONDUCTOR_K8S_BIN],
  ] as const) {
    if (dir && !existsSync(dir)) {
      throw konductorError('KDR_DEVCLUSTER_BIN_DIR_MISSING', label, dir);
    }
  }
  const merged: Partial<Record<K8sKey, string>> = { ...bin, ...assets };
  if (Object.keys(assets).length) sources.push(`KUBEBUILDER_ASSETS=${env.KUBEBUILDER_ASSETS}`);
  if (Object.keys(bin).length) sources.push(`KONDUCTOR_K8S_BIN=${env.KONDUCTOR_K8S_BIN}`);
  const keys = Object.keys(K8S_NAMES) as K8sKey[];
  if (keys.some((k) => !merged[k])) {
    const built = fromDir(await ensureGoTools('k8s', opts));
    for (const k of keys) merged[k] ??= built[k];
    sources.push(`build cache ${cacheRootDir(env)}`);
  }
  return {
    etcd: merged.etcd!,
    kubeApiserver: merged.kubeApiserver!,
    kubeControllerManager: merged.kubeControllerManager!,
    kubectl: merged.kubectl!,
    source: sources.join(' + '),
  };
}
