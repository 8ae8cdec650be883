/**
 * TEMPORARY (replaced by devcluster/images/ from the `images` branch when it is merged): the three
 * images the node itself needs, written with the host's tar as OCI archives: pause (static C),
 * busybox (Debian's busybox-static) and CoreDNS.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execOk } from './exec.ts';
import { ensureDebianPackages } from './packages.ts';

export const TEMP_IMAGE_NAMES = {
  pause: 'konductor.local/pause:temp',
  busybox: 'konductor.local/busybox:temp',
  coredns: 'konductor.local/coredns:v1.15.0',
} as const;

export interface NodeImage {
  name: string;
  archive: string;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function writeArchive(
  rootfs: string,
  name: string,
  config: Record<string, unknown>,
  out: string,
): Promise<void> {
  const work = `${out}.d`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'blobs', 'sha256'), { recursive: true });
  const layerTar = `${out}.layer.tar`;
  await execOk('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@946684800',
    '-C',
    rootfs,
    '-cf',
    layerTar,
    '.',
  ]);
  const tarBytes = await readFile(layerTar);
  const gz = gzipSync(tarBytes);
  const blob = async (b: Buffer | string) => {
    const d = sha(b);
    await writeFile(join(work, 'blobs', 'sha256', d), b);
    return { digest: `sha256:${d}`, size: Buffer.byteLength(b) };
  };
  const layer = await blob(gz);
  const cfg = await blob(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha(tarBytes)}`] },
    }),
  );
  const manifest = await blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  await writeFile(join(work, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(work, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'io.containerd.image.name': name },
        },
      ],
    }),
  );
  await execOk('tar', ['-C', work, '-cf', out, '.']);
  await rm(work, { recursive: true, force: true });
  await rm(layerTar, { force: true });
}

const PAUSE_C = `#include <signal.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, stop); signal(SIGINT, stop); for (;;) pause(); }
`;

export async function buildTempImages(
  dir: string,
  corednsBin: string,
  log: (l: string) => void,
): Promise<Record<'pause' | 'busybox' | 'coredns', NodeImage>> {
  await mkdir(dir, { recursive: true });
  const images = {
    pause: { name: TEMP_IMAGE_NAMES.pause, archive: join(dir, 'pause.tar') },
    busybox: { name: TEMP_IMAGE_NAMES.busybox, archive: join(dir, 'busybox.tar') },
    coredns: { name: TEMP_IMAGE_NAMES.coredns, archive: join(dir, 'coredns.tar') },
  };
  if (!existsSync(images.pause.archive)) {
    const root = join(dir, 'pause-rootfs');
    await mkdir(root, { recursive: true });
    await writeFile(join(dir, 'pause.c'), PAUSE_C);
    await execOk('gcc', ['-Os', '-static', '-o', join(root, 'pause'), join(dir, 'pause.c')]);
    await writeArchive(root, images.pause.name, { Entrypoint: ['/pause'] }, images.pause.archive);
  }
  if (!existsSync(images.busybox.archive)) {
    await ensureDebianPackages(log, [{ name: 'busybox-static', provides: ['/bin/busybox'] }]);
    const root = join(dir, 'busybox-rootfs');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'etc'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    await copyFile('/bin/busybox', join(root, 'bin', 'busybox'));
    const applets = (await execOk('/bin/busybox', ['--list'])).split('\n').filter(Boolean);
    for (const a of applets) {
      if (a !== 'busybox') await symlink('busybox', join(root, 'bin', a)).catch(() => {});
    }
    await writeFile(
      join(root, 'etc', 'passwd'),
      'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n',
    );
    await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n');
    await writeArchive(
      root,
      images.busybox.name,
      { Cmd: ['sh'], Env: ['PATH=/bin'] },
      images.busybox.archive,
    );
  }
  if (!existsSync(images.coredns.archive)) {
    const root = join(dir, 'coredns-rootfs');
    await mkdir(root, { recursive: true });
    await copyFile(corednsBin, join(root, 'coredns'));
    await writeArchive(root, images.coredns.name, { Entrypoint: ['/coredns'] }, images.coredns.archive);
  }
  return images;
}
