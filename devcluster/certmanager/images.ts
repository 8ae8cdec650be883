/**
 * Local images of cert-manager's controller, cainjector and webhook: the static Go binaries of the
 * `cert-manager` tool set (devcluster/binaries.ts) on a tiny base (the images' /etc skeleton: passwd,
 * group, nsswitch; no shell, no libc), laid out like the upstream images (hack/containers/Containerfile.*
 * of the module): `/app/cmd/<name>/<name>` as entry point, `USER 1000`, the licence under /licenses.
 */
import { mkdirSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureGoTools } from '../binaries.ts';
import { skeletonOwner, writeSkeleton } from '../images/baseImages.ts';
import { type CacheOptions, cachedImage, hashFile, type ImageRecord } from '../images/cache.ts';
import { writeLayer, writeOciArchive } from '../images/oci.ts';
import { directoryEntries } from '../images/tar.ts';
import { CERT_MANAGER_VERSION, certManagerModuleDir } from './chart.ts';

export const CERT_MANAGER_COMPONENTS = ['controller', 'cainjector', 'webhook'] as const;
export type CertManagerComponent = (typeof CERT_MANAGER_COMPONENTS)[number];

/** `konductor/cert-manager-<component>:<version>` as pod specs and the chart values write it. */
export const certManagerImageRef = (c: CertManagerComponent) =>
  `konductor/cert-manager-${c}:${CERT_MANAGER_VERSION}`;

export type CertManagerImages = Record<CertManagerComponent, ImageRecord>;

/** The three binaries (built once by the Go tool set). */
export async function ensureCertManagerBinaries(
  opts: CacheOptions = {},
): Promise<Record<CertManagerComponent, string>> {
  const bin = await ensureGoTools('cert-manager', {
    ...(opts.cacheRoot ? { cacheRoot: opts.cacheRoot } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  return {
    controller: join(bin, 'controller'),
    cainjector: join(bin, 'cainjector'),
    webhook: join(bin, 'webhook'),
  };
}

export async function ensureCertManagerImages(opts: CacheOptions = {}): Promise<CertManagerImages> {
  const binaries = await ensureCertManagerBinaries(opts);
  const licence = join(certManagerModuleDir(), 'LICENSE');
  const out: Partial<CertManagerImages> = {};
  for (const c of CERT_MANAGER_COMPONENTS) {
    const ref = certManagerImageRef(c);
    out[c] = await cachedImage(
      `cert-manager-${c}`,
      ref,
      {
        binary: hashFile(binaries[c], opts.cacheRoot),
        licence: hashFile(licence),
        skeleton: writeSkeleton.toString(),
        format: 'v1',
      },
      async (work, archive) => {
        const base = join(work, 'base');
        writeSkeleton(base);
        const baseLayer = await writeLayer(directoryEntries(base, { owner: skeletonOwner }), work);
        const app = join(work, 'app');
        mkdirSync(join(app, 'app', 'cmd', c), { recursive: true });
        await cp(binaries[c], join(app, 'app', 'cmd', c, c));
        mkdirSync(join(app, 'licenses'));
        await cp(licence, join(app, 'licenses', 'LICENSE'));
        const appLayer = await writeLayer(directoryEntries(app, { owner: () => ({ uid: 0, gid: 0 }) }), work);
        return writeOciArchive(
          {
            name: ref,
            config: { User: '1000', Entrypoint: [`/app/cmd/${c}/${c}`] },
            layers: [baseLayer, appLayer],
            history: [
              '/etc skeleton (konductor devcluster/images)',
              `cert-manager ${c} ${CERT_MANAGER_VERSION}`,
            ],
          },
          archive,
        );
      },
      opts,
    );
  }
  return out as CertManagerImages;
}
