/**
 * The images the node itself runs: pause (the sandbox image containerd is pinned to) and busybox from
 * devcluster/images/, and CoreDNS: the binary of the `coredns` tool set alone in one layer, written
 * with the same OCI writer and image cache.
 */

import { hashFile } from '../images/cache.ts';
import {
  type CacheOptions,
  cachedImage,
  ensureBusyboxImage,
  ensurePauseImage,
  type ImageRecord,
  writeLayer,
  writeOciArchive,
} from '../images/index.ts';
import { fileEntry } from '../images/tar.ts';

export const COREDNS_IMAGE_REF = 'konductor/coredns:1.15.0';

/**
 * Names the busybox image also answers to, so the repository's examples (`image: busybox:1.37`) run as
 * written with no registry (the content is Debian's busybox-static).
 */
export const BUSYBOX_ALIASES = ['docker.io/library/busybox:1.37'];

export interface NodeImages {
  pause: ImageRecord;
  busybox: ImageRecord;
  coredns: ImageRecord;
}

export async function ensureCorednsImage(corednsBin: string, opts: CacheOptions = {}): Promise<ImageRecord> {
  return cachedImage(
    'coredns',
    COREDNS_IMAGE_REF,
    { coredns: hashFile(corednsBin), format: 'v1' },
    async (work, out) => {
      const layer = await writeLayer(
        [{ ...fileEntry(corednsBin, 'coredns'), mode: 0o755, uid: 0, gid: 0 }],
        work,
      );
      return writeOciArchive(
        {
          name: COREDNS_IMAGE_REF,
          config: { Entrypoint: ['/coredns'], ExposedPorts: { '53/udp': {}, '53/tcp': {} } },
          layers: [layer],
          history: ['coredns (devcluster/coredns-tools)'],
        },
        out,
      );
    },
    opts,
  );
}

export async function ensureNodeImages(corednsBin: string, opts: CacheOptions = {}): Promise<NodeImages> {
  const pause = await ensurePauseImage(opts);
  const busybox = await ensureBusyboxImage(opts);
  const coredns = await ensureCorednsImage(corednsBin, opts);
  return { pause, busybox, coredns };
}
