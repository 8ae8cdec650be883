/**
 * The image the campaign's workload runs on a real node (`--node real`): a shell whose `date` has `%N`.
 * The workload stamps its containers' start and end with `date +%s%N` (campaign/workload.ts); the node's
 * busybox image (Debian's busybox-static) prints `%N` literally. So: the layers of the devcluster's Node.js
 * base image (busybox for `sh`/`sleep`/`grep`, and the C libraries) plus GNU coreutils' `date` from this host
 * at STAMP_DATE (/usr/bin/date), where this host has it too: the workload calls it by that path, since
 * Debian's busybox `sh` runs its own applet for a bare `date` whatever PATH says (its applet is /bin/date,
 * a path of its own in this image). Cached like the other local images
 * (devcluster/images/cache.ts): rebuilt only when the base image or the `date` binary changes.
 */
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { konductorError } from '../api/errors.ts';
import { hashFile } from '../devcluster/images/cache.ts';
import {
  type CacheOptions,
  cachedImage,
  DEFAULT_PATH,
  directoryEntries,
  ensureNodeImage,
  type ImageRecord,
  readOciArchive,
  writeLayer,
  writeOciArchive,
} from '../devcluster/images/index.ts';
import { STAMP_DATE } from './workload.ts';

export const CAMPAIGN_SHELL_IMAGE_REF = 'konductor/campaign-shell:1';
/** GNU coreutils' `date` on this host (dynamically linked against libc only, which the base image has). */
const HOST_DATE = '/usr/bin/date';

export async function ensureCampaignShellImage(opts: CacheOptions = {}): Promise<ImageRecord> {
  const base = await ensureNodeImage(opts);
  let dateHash: string;
  try {
    dateHash = hashFile(HOST_DATE, opts.cacheRoot);
  } catch (err) {
    throw konductorError(
      'KDR_CAMPAIGN_NODE_UNAVAILABLE',
      'real',
      `the campaign's shell image needs GNU date at ${HOST_DATE} (Debian package coreutils)`,
    ).causedBy(err);
  }
  return cachedImage(
    'campaign-shell',
    CAMPAIGN_SHELL_IMAGE_REF,
    { base: base.manifestDigest, date: dateHash, at: STAMP_DATE, format: 'v1' },
    async (work, out) => {
      const { layers } = await readOciArchive(base.archive);
      const root = join(work, 'rootfs');
      const date = join(root, STAMP_DATE);
      mkdirSync(dirname(date), { recursive: true });
      copyFileSync(HOST_DATE, date);
      chmodSync(date, 0o755);
      const dateLayer = await writeLayer(directoryEntries(root, { owner: () => ({ uid: 0, gid: 0 }) }), work);
      return writeOciArchive(
        {
          name: CAMPAIGN_SHELL_IMAGE_REF,
          config: { Env: [DEFAULT_PATH], Cmd: ['sh'] },
          layers: [...layers, dateLayer],
          history: [
            ...layers.map((_, i) => `${base.ref} layer ${i + 1}`),
            `GNU date from ${HOST_DATE} at ${STAMP_DATE}`,
          ],
        },
        out,
      );
    },
    opts,
  );
}
