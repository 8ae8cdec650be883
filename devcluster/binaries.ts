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
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type KonductorError, konductorError } from '../api/errors.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** One Go module of ours that builds a set of commands into one bin directory. */
export interface GoToolset {
  id: string;
  /** Version of the cache directory (the upstream release the module pins). */
  version: string;
  /** Absolute path of the Go module. */
  moduleDir: string;
  /** `go build` targets (package paths or ./relative dirs). */
  packages: string[];
  /** Names of the executables the build must produce. */
  binaries: string[];
  ldflags: string;
  /** Extra environment for `go build` (hashed into the stamp). */
  env?: Record<string, string>;
  /** Go build tags (`-tags`), hashed into the stamp. */
  tags?: string[];
  /** Minimum Go version (major.minor). */
  minGo: string;
}

export const K8S_VERSION = 'v1.37.2';
const k8sMinor = K8S_VERSION.split('.')[1] ?? '';

/**
 * The table of tool sets. Add an entry per Go module (e.g. `chart-tools`: helm + kubeconform) and
 * call `ensureGoTools(id)`.
 */
export const GO_TOOLSETS: Readonly<Record<string, GoToolset>> = {
  k8s: {
    id: 'k8s',
    version: K8S_VERSION,
    moduleDir: join(HERE, 'k8s-tools'),
    packages: [
      './etcd',
      'k8s.io/kubernetes/cmd/kube-apiserver',
      'k8s.io/kubernetes/cmd/kube-controller-manager',
      'k8s.io/kubernetes/cmd/kubectl',
      // The real node (devcluster/realnode/): built in the same `go build` so they share its work.
      'k8s.io/kubernetes/cmd/kubelet',
      'k8s.io/kubernetes/cmd/kube-proxy',
      'k8s.io/kubernetes/cmd/kube-scheduler',
    ],
    binaries: [
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kubectl',
      'kubelet',
      'kube-proxy',
      'kube-scheduler',
    ],
    ldflags: [
      '-s -w',
      `-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}`,
      '-X k8s.io/component-base/version.gitMajor=1',
      `-X k8s.io/component-base/version.gitMinor=${k8sMinor}`,
      `-X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}`,
      '-X k8s.io/client-go/pkg/version.gitMajor=1',
      `-X k8s.io/client-go/pkg/version.gitMinor=${k8sMinor}`,
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  /** helm and kubeconform for the chart tests, and models-schema for offline Kubernetes schemas. */
  'chart-tools': {
    id: 'chart-tools',
    version: 'v3.22.0',
    moduleDir: join(HERE, 'chart-tools'),
    packages: [
      'helm.sh/helm/v3/cmd/helm',
      'github.com/yannh/kubeconform/cmd/kubeconform',
      'k8s.io/kubernetes/pkg/generated/openapi/cmd/models-schema',
    ],
    binaries: ['helm', 'kubeconform', 'models-schema'],
    // Without the k8sVersion flags helm assumes Kubernetes 1.20 and rejects the chart's kubeVersion floor.
    ldflags: [
      '-s -w',
      '-X helm.sh/helm/v3/internal/version.version=v3.22.0',
      '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8sMinor}`,
      '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8sMinor}`,
      '-X main.version=v0.8.0',
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  /** containerd 2.x, its runc shim and ctr for the real node (REAL-NODE.md: static, no cgo). */
  containerd: {
    id: 'containerd',
    version: 'v2.4.2',
    moduleDir: join(HERE, 'containerd-tools'),
    packages: [
      'github.com/containerd/containerd/v2/cmd/containerd',
      'github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2',
      'github.com/containerd/containerd/v2/cmd/ctr',
    ],
    binaries: ['containerd', 'containerd-shim-runc-v2', 'ctr'],
    ldflags: [
      '-s -w',
      '-X github.com/containerd/containerd/v2/version.Version=v2.4.2',
      '-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2',
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    tags: ['no_btrfs', 'no_devmapper', 'no_zfs'],
    minGo: '1.26',
  },
  /** CoreDNS with the plugins the kube-dns Service needs (coredns-tools/coredns/main.go). */
  coredns: {
    id: 'coredns',
    version: 'v1.15.0',
    moduleDir: join(HERE, 'coredns-tools'),
    packages: ['./coredns'],
    binaries: ['coredns'],
    ldflags: '-s -w',
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  // cert-manager's own commands for the real node's local images (devcluster/certmanager/). v1.11.5 is
  // the newest release whose root module still holds cmd/ (docs/decisions.md).
  'cert-manager': {
    id: 'cert-manager',
    version: 'v1.11.5',
    moduleDir: join(HERE, 'certmanager', 'cert-manager-tools'),
    packages: [
      'github.com/cert-manager/cert-manager/cmd/controller',
      'github.com/cert-manager/cert-manager/cmd/cainjector',
      'github.com/cert-manager/cert-manager/cmd/webhook',
    ],
    binaries: ['controller', 'cainjector', 'webhook'],
    ldflags: '-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=v1.11.5',
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
};

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

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mkdir-based lock with the owner's PID; waits for a live owner, takes over from a dead one. */
export async function withBuildLock<T>(
  lockDir: string,
  log: (l: string) => void,
  heartbeatMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  const ownerFile = join(lockDir, 'owner.json');
  const started = Date.now();
  let lastNote = 0;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(ownerFile, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: { pid?: number } = {};
    try {
      owner = JSON.parse(await readFile(ownerFile, 'utf8')) as { pid?: number };
    } catch {
      /* the owner is between mkdir and writeFile, or crashed there */
    }
    const ownerGone = owner.pid !== undefined ? !isAlive(owner.pid) : Date.now() - started > 10_000;
    if (ownerGone) {
      log(`removing stale build lock ${lockDir} (owner pid ${owner.pid ?? '?'} is gone)`);
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() - lastNote >= heartbeatMs) {
      lastNote = Date.now();
      log(
        `waiting for another build (pid ${owner.pid}) to finish: ${Math.round((Date.now() - started) / 1000)} s`,
      );
    }
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

interface GoRunResult {
  code: number;
  tail: string[];
}

/** Runs `go <args>` in the module; every output line goes to onLine; a heartbeat line every heartbeatMs. */
async function runGo(
  toolset: GoToolset,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: (l: string) => void,
  heartbeatMs: number,
  onLine: (line: string) => boolean,
  heartbeat: (elapsedSeconds: number) => string,
): Promise<GoRunResult> {
  const tail: string[] = [];
  const started = Date.now();
  const child = spawn('go', args, {
    cwd: toolset.moduleDir,
    env: { ...env, ...toolset.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (() => {
    let buf = '';
    return (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        // onLine returns true for progress lines (package paths); the rest is kept for errors.
        if (onLine(line) || !line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    };
  })();
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setInterval(
    () => log(`  ... ${heartbeat(Math.round((Date.now() - started) / 1000))}`),
    heartbeatMs,
  );
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  }).finally(() => clearInterval(timer));
  return { code, tail };
}

const isPackageLine = (line: string) => /^[\w.\-/~]+$/.test(line.trim());

function buildFailed(toolset: GoToolset, args: string[], res: GoRunResult): KonductorError {
  return konductorError(
    'KDR_DEVCLUSTER_BUILD_FAILED',
    [
      `building the ${toolset.id} tools (${toolset.binaries.join(', ')}) with Go failed (exit ${res.code}).`,
      `Last output of \`go ${args.slice(0, 2).join(' ')} ...\` in ${toolset.moduleDir}:`,
      ...res.tail.map((l) => `  ${l}`),
      'What to do: check network access to the Go module proxy (GOPROXY) and disk space, then re-run;',
      'or point KUBEBUILDER_ASSETS / KONDUCTOR_K8S_BIN at a directory with prebuilt binaries.',
    ].join('\n'),
  );
}

/** Phase 1: resolve (download) the modules and count the packages; phase 2: compile and link. */
async function runGoBuild(
  toolset: GoToolset,
  outDir: string,
  log: (l: string) => void,
  heartbeatMs: number,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  log(`  phase 1/3: resolving Go modules (downloaded on first use) in ${toolset.moduleDir}`);
  let total = 0;
  let downloaded = 0;
  const listArgs = [
    'list',
    '-deps',
    ...(toolset.tags?.length ? ['-tags', toolset.tags.join(',')] : []),
    ...toolset.packages,
  ];
  const listed = await runGo(
    toolset,
    listArgs,
    env,
    log,
    heartbeatMs,
    (line) => {
      if (isPackageLine(line)) {
        total++;
        return true;
      }
      if (line.startsWith('go: downloading ')) downloaded++;
      return false;
    },
    (s) => `${s} s: ${downloaded} modules downloaded`,
  );
  if (listed.code !== 0) throw buildFailed(toolset, listArgs, listed);

  log(`  phase 2/3: compiling up to ${total} packages and linking ${toolset.binaries.length} binaries`);
  let compiled = 0;
  const buildArgs = [
    'build',
    '-v',
    '-trimpath',
    ...(toolset.tags?.length ? ['-tags', toolset.tags.join(',')] : []),
    '-ldflags',
    toolset.ldflags,
    '-o',
    `${outDir}/`,
    ...toolset.packages,
  ];
  const built = await runGo(
    toolset,
    buildArgs,
    env,
    log,
    heartbeatMs,
    (line) => {
      if (!isPackageLine(line)) return false;
      compiled++;
      return true;
    },
    (s) =>
      compiled < total
        ? `${s} s: ${compiled}/${total} packages compiled`
        : `${s} s: ${compiled} packages compiled, linking`,
  );
  if (built.code !== 0) throw buildFailed(toolset, buildArgs, built);
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
