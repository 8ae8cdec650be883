/**
 * The Node.js 24 base image (`konductor/node:24`), assembled without a registry: the Node.js binary of the
 * `node` npm package (this repository's devDependency; debug info stripped like Debian's nodejs), the
 * libraries it links (libc6, libstdc++6, libgcc-s1 from Debian, their copyright files kept), npm (the `npm`
 * package's tarball, pinned) and the busybox image's layer (same digest: containerd stores it once) for
 * `sh`/`env`, which npm's scripts and shebangs need. It stands in for `node:24-slim` through the
 * Dockerfiles' `NODE_IMAGE` build argument. The other base images: ./baseImages.ts.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { konductorError } from '../../api/errors.ts';
import {
  BASE_IMAGE_REFS,
  cachedBaseImage,
  DEFAULT_PATH,
  debInput,
  ensureBusyboxImage,
  NPM_VERSION,
  run,
  toolVersion,
} from './baseImages.ts';
import { type CacheOptions, defaultImageLog, hashFile, type ImageRecord } from './cache.ts';
import { debCandidates, ensureHostTools, fetchDebs } from './debian.ts';
import { readOciArchive, writeLayer, writeOciArchive } from './oci.ts';
import { directoryEntries } from './tar.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

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
  return cachedBaseImage('node', inputs, opts, async (_root, work, out) => {
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
  });
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
