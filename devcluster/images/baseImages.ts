/**
 * The base images of the real node, assembled without a registry:
 *
 * - `pause`   the pod sandbox: `pause.c` built with `gcc -Os -static` (a few hundred KiB, no libc needed);
 * - `busybox` Debian's busybox-static (`apt-get download` + `dpkg -x`), its applets as symlinks, and a
 *             minimal /etc (passwd/group with root, nobody and nonroot 65532);
 * - `node`    Node.js 24 with npm on the busybox layer: ./nodeImage.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { konductorError } from '../../api/errors.ts';
import { type CacheOptions, cachedImage, defaultImageLog, hashFile, type ImageRecord } from './cache.ts';
import { type DebInfo, debCandidates, ensureHostTools, fetchDebs } from './debian.ts';
import { type ArchiveInfo, writeLayer, writeOciArchive } from './oci.ts';
import { directoryEntries } from './tar.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

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

export function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw konductorError(
      'KDR_IMAGES_TOOL_FAILED',
      `${what}: \`${cmd} ${args.join(' ')}\` failed: ${r.error?.message ?? ''}${r.stderr ?? ''}`.trim(),
    );
  }
  return r.stdout;
}

export function toolVersion(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n')[0]?.trim() || 'unknown';
}

export const debInput = (d: DebInfo) => `${d.version} ${d.sha256}`;

/** One base image from the cache, or built by `build` from an empty root filesystem directory `root`. */
export function cachedBaseImage(
  name: keyof typeof BASE_IMAGE_REFS,
  inputs: Record<string, string>,
  opts: CacheOptions,
  build: (root: string, work: string, out: string) => Promise<ArchiveInfo>,
): Promise<ImageRecord> {
  return cachedImage(
    name,
    BASE_IMAGE_REFS[name],
    inputs,
    (work, out) => {
      const root = join(work, 'rootfs');
      mkdirSync(root, { recursive: true });
      return build(root, work, out);
    },
    opts,
  );
}

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
  return cachedBaseImage('pause', inputs, opts, async (root, work, out) => {
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
  });
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
  return cachedBaseImage('busybox', inputs, opts, async (root, work, out) => {
    const debs = await fetchDebs(['busybox-static'], join(work, 'debs'), log);
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
  });
}
