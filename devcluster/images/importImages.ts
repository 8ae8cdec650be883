/**
 * Loads image archives into a given containerd (`ctr images import`, unpacked for its snapshotter) and
 * checks that each name now points at the archive's manifest. The containerd is the caller's: its
 * socket address is always given, never a default (`/run/containerd` may belong to someone else).
 */
import { konductorError } from '../../api/errors.ts';
import { exec } from '../exec.ts';
import type { ImageRecord } from './cache.ts';
import { defaultImageLog } from './cache.ts';
import { readOciArchive } from './ociArchiveReader.ts';

export interface ImportImagesOptions {
  /** Path of the `ctr` binary. */
  ctr: string;
  /** containerd's socket (`--address`). */
  address: string;
  /** containerd namespace; the CRI (the kubelet's images) uses `k8s.io`. */
  namespace?: string;
  /** Image records (from `ensureImages()`) or archive paths. */
  archives: (ImageRecord | string)[];
  /** Import even when containerd already has the name at the archive's manifest (default: skip those). */
  force?: boolean;
  /** Snapshotter to unpack for (ctr's default: overlayfs). */
  snapshotter?: string;
  log?: (line: string) => void;
}

export interface ImportedImage {
  name: string;
  digest: string;
  archive: string;
}

async function ctr(opts: ImportImagesOptions, args: string[]): Promise<string> {
  const full = ['--address', opts.address, '--namespace', opts.namespace ?? 'k8s.io', ...args];
  // No timeout: importing a large image takes what it takes.
  const r = await exec(opts.ctr, full, { timeoutMs: 0 });
  if (r.code === 0) return r.stdout;
  throw konductorError(
    'KDR_IMAGES_IMPORT_FAILED',
    `\`ctr ${full.join(' ')}\` exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}`,
  );
}

/** `ctr images ls` rows: name -> manifest digest (the columns are REF TYPE DIGEST ...). Pure. */
export function parseCtrImageList(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const digest = cols.find((c) => c.startsWith('sha256:'));
    if (cols[0] && digest) out.set(cols[0], digest);
  }
  return out;
}

/**
 * Imports each archive whose name containerd does not already hold at the archive's manifest digest
 * (all of them with `force`), then verifies every name. Re-importing the same archive is harmless (the
 * name is updated to the same manifest). Returns what containerd now holds for each image.
 */
export async function importImages(opts: ImportImagesOptions): Promise<ImportedImage[]> {
  const log = opts.log ?? defaultImageLog;
  const expected: ImportedImage[] = [];
  for (const a of opts.archives) {
    if (typeof a !== 'string') expected.push({ name: a.name, digest: a.manifestDigest, archive: a.archive });
    else {
      const parsed = await readOciArchive(a);
      expected.push({ name: parsed.name, digest: parsed.index.manifests[0]?.digest as string, archive: a });
    }
  }
  const present = parseCtrImageList(await ctr(opts, ['images', 'ls']));
  for (const e of expected) {
    if (opts.force !== true && present.get(e.name) === e.digest) {
      log(`${e.name} already at ${e.digest.slice(0, 19)}: not imported again`);
      continue;
    }
    const started = Date.now();
    const out = await ctr(opts, [
      'images',
      'import',
      ...(opts.snapshotter ? ['--snapshotter', opts.snapshotter] : []),
      e.archive,
    ]);
    log(
      `imported ${e.archive} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${out.trim().split('\n').join('; ')}`,
    );
  }
  const listed = parseCtrImageList(await ctr(opts, ['images', 'ls']));
  for (const e of expected) {
    const got = listed.get(e.name);
    if (got !== e.digest) {
      throw konductorError(
        'KDR_IMAGES_IMPORT_FAILED',
        `after importing ${e.archive}, containerd (${opts.address}, namespace ${opts.namespace ?? 'k8s.io'}) has ` +
          `${e.name} at ${got ?? 'nothing'}, expected ${e.digest}`,
      );
    }
  }
  return expected;
}
