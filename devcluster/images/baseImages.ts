/**
 * The base images of the real node, assembled without a registry:
 *
 * - `pause`   the pod sandbox: `pause.c` built with `gcc -Os -static` (a few hundred KiB, no libc needed);
 * - `busybox` Debian's busybox-static (`apt-get download` + `dpkg -x`), its applets as symlinks, and a
 *             minimal /etc (passwd/group with root, nobody and nonroot 65532);
 * - `node`    the Node.js 24 binary of the `node` npm package (this repository's devDependency; debug info
 *             stripped like Debian's nodejs), the libraries it links (libc6, libstdc++6, libgcc-s1 from
 *             Debian, their copyright files kept), npm (the `npm` package's tarball, pinned) and the busybox
 *             layer for `sh`/`env`, which npm's scripts and shebangs need. It stands in for `node:24-slim`
 *             through the Dockerfiles' `NODE_IMAGE` build argument.
 *
 * The node image reuses the busybox image's layer blob as its bottom layer (same digest), so containerd
 * stores it once.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { konductorError } from '../../api/errors.ts';
import { type CacheOptions, cachedImage, defaultImageLog, hashFile, type ImageRecord } from './cache.ts';
import { type DebInfo, debCandidates, ensureHostTools, fetchDebs } from './debian.ts';
import { readOciArchive, writeLayer, writeOciArchive } from './oci.ts';
import { directoryEntries } from './tar.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');

/** The npm that goes into the node image (the 11.x line ships with Node.js 24). */
export const NPM_VERSION = '11.21.2';
export const NONROOT_UID = 65532;

/** Names the images are imported under (as a pod spec writes them). */
export const BASE_IMAGE_REFS = {
  pause: 'konductor/pause:3.10',
  busybox: 'konductor/busybox:1.35',
  node: 'konductor/node:24',
} as const;

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin',
  `nonroot:x:${NONROOT_UID}:${NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin`,
  '',
].join('\n');
const GROUP = ['root:x:0:', 'nobody:x:65534:', `nonroot:x:${NONROOT_UID}:`, ''].join('\n');
// Without nsswitch.conf glibc asks DNS before /etc/hosts.
const NSSWITCH = ['passwd: files', 'group: files', 'hosts: files dns', ''].join('\n');

/**
 * A minimal root filesystem skeleton into `root`: the usual directories (/tmp sticky, /root 0700,
 * /home/nonroot for uid 65532) and /etc with passwd, group, nsswitch.conf, and empty hosts/resolv.conf
 * (runtimes mount over them). Owners are set by `skeletonOwner` when the layer is written.
 */
export function writeSkeleton(root: string): void {
  for (const d of [
    'bin',
    'dev',
    'etc',
    'home',
    'lib',
    'proc',
    'root',
    'run',
    'sbin',
    'sys',
    'tmp',
    'usr/bin',
    'usr/sbin',
    'usr/local/bin',
    'var/tmp',
  ]) {
    mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(root, 'home/nonroot'), { mode: 0o755 });
  chmodSync(join(root, 'root'), 0o700);
  chmodSync(join(root, 'tmp'), 0o1777);
  chmodSync(join(root, 'var/tmp'), 0o1777);
  const files: [string, string][] = [
    ['etc/passwd', PASSWD],
    ['etc/group', GROUP],
    ['etc/nsswitch.conf', NSSWITCH],
    ['etc/hosts', ''],
    ['etc/resolv.conf', ''],
  ];
  for (const [p, content] of files) {
    writeFileSync(join(root, p), content);
    chmodSync(join(root, p), 0o644);
  }
}

/** Everything root's, but the nonroot user's home (independent of who builds). */
export const skeletonOwner = (rel: string) =>
  rel === 'home/nonroot' ? { uid: NONROOT_UID, gid: NONROOT_UID } : { uid: 0, gid: 0 };

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw konductorError(
      'KDR_IMAGES_TOOL_FAILED',
      `${what}: \`${cmd} ${args.join(' ')}\` failed: ${r.error?.message ?? ''}${r.stderr ?? ''}`.trim(),
    );
  }
  return r.stdout;
}

function toolVersion(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n')[0]?.trim() || 'unknown';
}

const debInput = (d: DebInfo) => `${d.version} ${d.sha256}`;

/** The pod sandbox image: a static pause binary, run as 65535 like the upstream one. */
export async function ensurePauseImage(opts: CacheOptions = {}): Promise<ImageRecord> {
  const log = opts.log ?? defaultImageLog;
  const source = join(HERE, 'pause.c');
  ensureHostTools(
    [
      { command: 'gcc', package: 'gcc' },
      { command: 'strip', package: 'binutils' },
      { command: '/usr/lib/x86_64-linux-gnu/libc.a', package: 'libc6-dev' },
    ],
    log,
    'the pause image (gcc -static)',
  );
  const flags = ['-Os', '-static', '-Wall', '-Werror'];
  const inputs = {
    'pause.c': hashFile(source),
    gcc: toolVersion('gcc', ['-dumpfullversion']),
    libc: debCandidates(['libc6-dev'], log, opts.cacheRoot).map(debInput).join(),
    flags: flags.join(' '),
    format: 'v1',
  };
  return cachedImage(
    'pause',
    BASE_IMAGE_REFS.pause,
    inputs,
    async (work, out) => {
      const root = join(work, 'rootfs');
      mkdirSync(root);
      run('gcc', [...flags, '-o', join(root, 'pause'), source], 'compiling pause.c');
      run('strip', [join(root, 'pause')], 'stripping pause');
      chmodSync(join(root, 'pause'), 0o755);
      const layer = await writeLayer(directoryEntries(root, { owner: () => ({ uid: 0, gid: 0 }) }), work);
      return writeOciArchive(
        {
          name: BASE_IMAGE_REFS.pause,
          config: { User: '65535:65535', Entrypoint: ['/pause'] },
          layers: [layer],
          history: ['pause.c built with gcc -Os -static'],
        },
        out,
      );
    },
    opts,
  );
}

/** busybox-static + applet symlinks + the skeleton /etc. The node image's bottom layer too. */
export async function ensureBusyboxImage(opts: CacheOptions = {}): Promise<ImageRecord> {
  const log = opts.log ?? defaultImageLog;
  const [deb] = debCandidates(['busybox-static'], log, opts.cacheRoot);
  const inputs = {
    'busybox-static': debInput(deb as DebInfo),
    skeleton: `${PASSWD}${GROUP}${NSSWITCH}${writeSkeleton.toString()}`,
    format: 'v1',
  };
  return cachedImage(
    'busybox',
    BASE_IMAGE_REFS.busybox,
    inputs,
    async (work, out) => {
      const debs = await fetchDebs(['busybox-static'], join(work, 'debs'), log);
      const root = join(work, 'rootfs');
      writeSkeleton(root);
      const busybox = join(root, 'bin/busybox');
      cpSync(join(debs['busybox-static'] as string, 'bin/busybox'), busybox);
      chmodSync(busybox, 0o755);
      const applets = run(busybox, ['--list-full'], 'listing the busybox applets')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.includes('/') && !l.includes('..') && l !== 'bin/busybox');
      for (const a of applets) {
        const p = join(root, a);
        if (existsSync(p)) continue;
        mkdirSync(dirname(p), { recursive: true });
        symlinkSync('/bin/busybox', p);
      }
      const copyright = join(debs['busybox-static'] as string, 'usr/share/doc/busybox-static/copyright');
      if (existsSync(copyright)) {
        mkdirSync(join(root, 'usr/share/doc/busybox-static'), { recursive: true });
        cpSync(copyright, join(root, 'usr/share/doc/busybox-static/copyright'));
      }
      const layer = await writeLayer(directoryEntries(root, { owner: skeletonOwner }), work);
      log(`busybox: ${applets.length} applets`);
      return writeOciArchive(
        {
          name: BASE_IMAGE_REFS.busybox,
          config: { Env: [DEFAULT_PATH], Cmd: ['sh'] },
          layers: [layer],
          history: [`busybox-static ${deb?.version} + applet symlinks + /etc`],
        },
        out,
      );
    },
    opts,
  );
}

/** The Node.js binary of the `node` npm package this repository installs (node_modules/node). */
export function nodePackageBinary(): { path: string; version: string } {
  const require = createRequire(join(REPO, 'package.json'));
  let pkgJson: string;
  try {
    pkgJson = require.resolve('node/package.json');
  } catch {
    throw konductorError(
      'KDR_IMAGES_NODE_MISSING',
      'the `node` npm package is not installed (devDependency of this repository): run `npm ci`',
    );
  }
  const version = (require(pkgJson) as { version: string }).version;
  const bin = realpathSync(join(dirname(pkgJson), 'bin', 'node'));
  if (!existsSync(bin)) {
    throw konductorError(
      'KDR_IMAGES_NODE_MISSING',
      `${bin} is missing: run \`npm ci\` (its install script fetches it)`,
    );
  }
  return { path: bin, version };
}

const LIB_DEBS = ['libc6', 'libstdc++6', 'libgcc-s1'] as const;

/**
 * From the unpacked library packages, only what a dynamically linked program needs at run time:
 * /lib, /lib64, /etc/ld.so.conf.d, the shared objects in /usr/lib/x86_64-linux-gnu (not gconv, not
 * gdb or python helpers) and each package's copyright file.
 */
export function isRuntimeLibraryPath(rel: string, pkg: string): boolean {
  if (rel === '' || rel === 'usr' || rel === 'usr/lib' || rel === 'usr/share' || rel === 'usr/share/doc')
    return true;
  if (/^(lib|lib64|etc\/ld\.so\.conf\.d|etc)(\/|$)/.test(rel)) return true;
  if (rel === 'usr/lib/x86_64-linux-gnu') return true;
  if (/^usr\/lib\/x86_64-linux-gnu\/[^/]+\.so(\.[\d.]+)?$/.test(rel)) return true;
  if (rel === `usr/share/doc/${pkg}` || rel === `usr/share/doc/${pkg}/copyright`) return true;
  return false;
}

/**
 * The Node.js 24 base image (`konductor/node:24`): root user like node:24-slim, PATH with
 * /usr/local/bin, node at /usr/local/bin/node, npm under /usr/local/lib/node_modules/npm.
 */
export async function ensureNodeImage(opts: CacheOptions = {}): Promise<ImageRecord> {
  const log = opts.log ?? defaultImageLog;
  ensureHostTools([{ command: 'strip', package: 'binutils' }], log, 'the node image (strip)');
  const busybox = await ensureBusyboxImage(opts);
  const node = nodePackageBinary();
  const libs = debCandidates([...LIB_DEBS], log, opts.cacheRoot);
  const inputs: Record<string, string> = {
    busybox: busybox.manifestDigest,
    node: `${node.version} ${hashFile(node.path, opts.cacheRoot)}`,
    npm: NPM_VERSION,
    strip: toolVersion('strip', ['--version']),
    libraries: isRuntimeLibraryPath.toString(),
    format: 'v1',
  };
  for (const d of libs) inputs[d.package] = debInput(d);
  return cachedImage(
    'node',
    BASE_IMAGE_REFS.node,
    inputs,
    async (work, out) => {
      const base = await readOciArchive(busybox.archive);
      const owner = () => ({ uid: 0, gid: 0 });

      const debs = await fetchDebs([...LIB_DEBS], join(work, 'debs'), log);
      const libRoot = join(work, 'libs');
      mkdirSync(libRoot);
      for (const pkg of LIB_DEBS) {
        const from = debs[pkg] as string;
        cpSync(from, libRoot, {
          recursive: true,
          verbatimSymlinks: true,
          filter: (src) => isRuntimeLibraryPath(src.slice(from.length + 1), pkg),
        });
      }
      const libLayer = await writeLayer(directoryEntries(libRoot, { owner }), work);

      const nodeRoot = join(work, 'node');
      mkdirSync(join(nodeRoot, 'usr/local/bin'), { recursive: true });
      const nodeBin = join(nodeRoot, 'usr/local/bin/node');
      log(`node ${node.version}: stripping debug info from ${node.path}`);
      run('strip', ['-o', nodeBin, node.path], 'stripping node');
      chmodSync(nodeBin, 0o755);
      const licence = join(dirname(node.path), '..', 'LICENSE');
      if (existsSync(licence)) {
        mkdirSync(join(nodeRoot, 'usr/local/share/doc/node'), { recursive: true });
        cpSync(licence, join(nodeRoot, 'usr/local/share/doc/node/LICENSE'));
      }
      const nodeLayer = await writeLayer(directoryEntries(nodeRoot, { owner }), work);

      const npmRoot = join(work, 'npm');
      await unpackNpm(npmRoot, join(work, 'npm-pack'), log);
      const npmLayer = await writeLayer(directoryEntries(npmRoot, { owner }), work);

      return writeOciArchive(
        {
          name: BASE_IMAGE_REFS.node,
          config: { Env: [DEFAULT_PATH, `NODE_VERSION=${node.version}`], Cmd: ['node'] },
          layers: [...base.layers, libLayer, nodeLayer, npmLayer],
          history: [
            'busybox + /etc (konductor/busybox)',
            `${libs.map((d) => `${d.package} ${d.version}`).join(', ')} (runtime libraries)`,
            `node ${node.version} from the node npm package (stripped)`,
            `npm ${NPM_VERSION}`,
          ],
        },
        out,
      );
    },
    opts,
  );
}

/** npm from its registry tarball (`npm pack`, integrity checked by npm) into usr/local/lib/node_modules/npm. */
async function unpackNpm(root: string, packDir: string, log: (l: string) => void): Promise<void> {
  mkdirSync(packDir, { recursive: true });
  log(`npm ${NPM_VERSION}: npm pack`);
  run('npm', ['pack', `npm@${NPM_VERSION}`, '--pack-destination', packDir, '--silent'], 'fetching npm');
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw konductorError('KDR_IMAGES_TOOL_FAILED', `npm pack left no tarball in ${packDir}`);
  const dest = join(root, 'usr/local/lib/node_modules/npm');
  mkdirSync(dest, { recursive: true });
  run(
    'tar',
    ['-xzf', join(packDir, tgz), '-C', dest, '--strip-components=1', '--no-same-owner'],
    'unpacking npm',
  );
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
  for (const f of ['npm-cli.js', 'npx-cli.js']) chmodSync(join(dest, 'bin', f), 0o755);
}
