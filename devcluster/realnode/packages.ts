/**
 * The few Debian packages the real node runs from the host: runc, the CNI plugins, iptables and
 * conntrack (kube-proxy), iproute2. Each is probed by a file it installs; what is missing is
 * installed with apt-get when we are root, or named in a clear error otherwise.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';

export interface DebianPackage {
  name: string;
  /** Executables (searched in the PATH and the sbin directories) or absolute paths it provides. */
  provides: string[];
}

export const CNI_BIN_DIR = '/usr/lib/cni';

export const REAL_NODE_PACKAGES: readonly DebianPackage[] = [
  { name: 'runc', provides: ['runc'] },
  {
    name: 'containernetworking-plugins',
    provides: ['bridge', 'host-local', 'loopback'].map((p) => join(CNI_BIN_DIR, p)),
  },
  { name: 'iptables', provides: ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables'] },
  { name: 'conntrack', provides: ['conntrack'] },
  { name: 'iproute2', provides: ['ip'] },
];

const SBIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of an executable (PATH first, then the sbin directories), or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.startsWith('/')) return existsSync(name) ? name : undefined;
  const dirs = [...(env.PATH ?? '').split(':').filter(Boolean), ...SBIN_DIRS];
  for (const d of dirs) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function missingPackages(
  packages: readonly DebianPackage[] = REAL_NODE_PACKAGES,
  exists: (file: string) => boolean = (f) => findExecutable(f) !== undefined,
): DebianPackage[] {
  return packages.filter((p) => !p.provides.every(exists));
}

function aptGet(args: string[], log: (l: string) => void): Promise<{ code: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (c: Buffer) => {
      out = (out + c.toString('utf8')).slice(-8000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => log(`  ... apt-get ${args[0]} still running`), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({ code: code ?? 1, tail: out.trimEnd().split('\n').slice(-15).join('\n') });
    });
  });
}

/**
 * Installs the missing packages with apt-get (root only; `apt-get update` first when the package
 * lists are stale). Throws KDR_REALNODE_PACKAGES_MISSING with the command to run otherwise.
 */
export async function ensureDebianPackages(
  log: (line: string) => void,
  packages: readonly DebianPackage[] = REAL_NODE_PACKAGES,
): Promise<void> {
  const missing = missingPackages(packages);
  if (!missing.length) return;
  const names = missing.map((p) => p.name);
  const command = `apt-get install -y --no-install-recommends ${names.join(' ')}`;
  if (process.getuid?.() !== 0 || !findExecutable('apt-get')) {
    throw konductorError(
      'KDR_REALNODE_PACKAGES_MISSING',
      `the real node needs these Debian packages: ${names.join(', ')}. Install them (as root): ${command}`,
    );
  }
  log(`installing Debian packages: ${names.join(' ')}`);
  const started = Date.now();
  const install = ['install', '-y', '--no-install-recommends', ...names];
  let res = await aptGet(install, log);
  if (res.code !== 0) {
    log('  apt-get install failed; running apt-get update and trying again');
    await aptGet(['update'], log);
    res = await aptGet(install, log);
  }
  const still = missingPackages(packages);
  if (res.code !== 0 || still.length) {
    throw konductorError(
      'KDR_REALNODE_PACKAGES_MISSING',
      `installing ${names.join(', ')} with apt-get failed (exit ${res.code}); run \`${command}\` and retry.\n${res.tail}`,
    );
  }
  log(`  installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
