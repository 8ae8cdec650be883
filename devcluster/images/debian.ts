/**
 * Debian's packages as the source of the images' system files and of the build tools: which version
 * apt would take (for the cache stamps), `apt-get download` + `dpkg -x` (nothing installed on the host),
 * and tools installed with `apt-get install` when missing (as root; otherwise an error naming them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { memoized } from './cache.ts';

export interface DebInfo {
  package: string;
  version: string;
  /** SHA256 of the .deb as the archive's Packages index lists it (part of the cache stamps). */
  sha256: string;
}

type Log = (line: string) => void;

/** Other engineers' builds may hold dpkg's lock: wait for it instead of failing at once. */
const APT_LOCK_WAIT = 'DPkg::Lock::Timeout=300';

const isRoot = () => process.getuid?.() === 0;

function run(cmd: string, args: string[], opts: { cwd?: string } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    cwd: opts.cwd,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** Parses `apt-cache show --no-all-versions` output (one stanza per package). Pure. */
export function parseAptShow(text: string): DebInfo[] {
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const field = (name: string) => new RegExp(`^${name}: (.+)$`, 'm').exec(stanza)?.[1]?.trim();
      const pkg = field('Package');
      const version = field('Version');
      const sha256 = field('SHA256');
      return pkg && version && sha256 ? { package: pkg, version, sha256 } : undefined;
    })
    .filter((d): d is DebInfo => d !== undefined);
}

function aptUpdate(log: Log): void {
  if (!isRoot()) return;
  log('apt-get update (the package lists are missing or stale)');
  const r = run('apt-get', ['-o', APT_LOCK_WAIT, 'update', '-qq']);
  if (!r.ok) {
    throw konductorError('KDR_IMAGES_APT_FAILED', `apt-get update failed:\n${r.out.slice(-2000)}`);
  }
}

const APT_LISTS = '/var/lib/apt/lists';

/**
 * The version apt would install (candidate) of each package; runs `apt-get update` once if unknown.
 * Memoized in the images cache until apt's package lists change (`apt-cache` takes seconds on a busy machine).
 */
export function debCandidates(packages: string[], log: Log, cacheRoot?: string): DebInfo[] {
  if (!existsSync(APT_LISTS)) return queryDebCandidates(packages, log);
  const key = `${packages.join(' ')} ${statSync(APT_LISTS).mtimeMs}`;
  return memoized(cacheRoot, 'apt-candidates', key, () => queryDebCandidates(packages, log));
}

function queryDebCandidates(packages: string[], log: Log): DebInfo[] {
  const query = () => parseAptShow(run('apt-cache', ['show', '--no-all-versions', ...packages]).out);
  let found = query();
  if (found.length < packages.length) {
    aptUpdate(log);
    found = query();
  }
  const missing = packages.filter((p) => !found.some((d) => d.package === p));
  if (missing.length > 0) {
    throw konductorError(
      'KDR_IMAGES_DEB_UNKNOWN',
      `Debian package(s) ${missing.join(', ')} unknown to apt${isRoot() ? ' (after apt-get update)' : ''}: ` +
        'the image build takes them from the Debian archive (apt sources of Debian 12 bookworm).',
    );
  }
  return packages.map((p) => found.find((d) => d.package === p) as DebInfo);
}

/**
 * Downloads the candidate .deb of each package into `dir` (`apt-get download`) and unpacks each into
 * `<dir>/<package>/` with `dpkg -x`. Returns the unpacked directories by package name.
 */
export async function fetchDebs(packages: string[], dir: string, log: Log): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const infos = queryDebCandidates(packages, log);
  let dl = run('apt-get', ['download', '-q', ...infos.map((d) => `${d.package}=${d.version}`)], { cwd: dir });
  if (!dl.ok) {
    aptUpdate(log);
    dl = run('apt-get', ['download', '-q', ...infos.map((d) => `${d.package}=${d.version}`)], { cwd: dir });
  }
  if (!dl.ok) {
    throw konductorError(
      'KDR_IMAGES_APT_FAILED',
      `apt-get download ${packages.join(' ')} failed (is the Debian archive reachable?):\n${dl.out.slice(-2000)}`,
    );
  }
  const debs = readdirSync(dir).filter((f) => f.endsWith('.deb'));
  const out: Record<string, string> = {};
  for (const info of infos) {
    const deb = debs.find((f) => f.startsWith(`${info.package}_`));
    if (!deb)
      throw konductorError(
        'KDR_IMAGES_APT_FAILED',
        `apt-get download left no ${info.package}_*.deb in ${dir}`,
      );
    const target = join(dir, info.package);
    const x = run('dpkg', ['-x', join(dir, deb), target]);
    if (!x.ok) throw konductorError('KDR_IMAGES_APT_FAILED', `dpkg -x ${deb} failed:\n${x.out.slice(-2000)}`);
    out[info.package] = target;
  }
  return out;
}

/** A host command the build needs and the Debian package that provides it. */
export interface HostTool {
  command: string;
  package: string;
}

const onPath = (command: string) =>
  command.startsWith('/')
    ? existsSync(command)
    : (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, command)));

/**
 * Makes sure the commands exist: missing ones are installed with `apt-get install` when running as root,
 * otherwise the error names the packages to install.
 */
export function ensureHostTools(tools: HostTool[], log: Log, why: string): void {
  const missing = tools.filter((t) => !onPath(t.command));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => t.package))];
  if (!isRoot()) {
    throw konductorError(
      'KDR_IMAGES_TOOLS_MISSING',
      `${why} needs ${missing.map((t) => t.command).join(', ')}: run \`apt-get install -y ${pkgs.join(' ')}\` as root`,
    );
  }
  log(`installing Debian packages ${pkgs.join(' ')} (${why})`);
  const install = ['-o', APT_LOCK_WAIT, 'install', '-y', '-q', '--no-install-recommends', ...pkgs];
  let r = run('apt-get', install);
  if (!r.ok) {
    aptUpdate(log);
    r = run('apt-get', install);
  }
  const still = tools.filter((t) => !onPath(t.command));
  if (!r.ok || still.length > 0) {
    throw konductorError(
      'KDR_IMAGES_TOOLS_MISSING',
      `apt-get install ${pkgs.join(' ')} failed (${why}):\n${r.out.slice(-2000)}`,
    );
  }
}
