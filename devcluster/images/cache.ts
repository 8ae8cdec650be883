/**
 * The image cache outside the repository: `<cacheRoot>/images/<kind>-<stamp>/` holds `image.tar` (the
 * OCI archive) and `image.json` (its record). The stamp is a hash of everything the image is made of
 * (sources, Dockerfile, base image digest, Debian package hashes, tool versions), so a changed input
 * builds a new entry and an unchanged one is reused. One build per kind at a time, across processes
 * (the devcluster's mkdir lock); a few older entries per kind are kept for other worktrees.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KonductorError, konductorError } from '../../api/errors.ts';
import { cacheRootDir, withBuildLock } from '../binaries.ts';
import type { ArchiveInfo, ImageRuntimeConfig } from './oci.ts';

/** What `ensure*Image()` returns: the archive and what it is. */
export interface ImageRecord {
  /** Which image (e.g. `agent`, `node`, `cert-manager-webhook`). */
  kind: string;
  /** Normalized name it is imported under (`docker.io/konductor/agent:dev`). */
  name: string;
  /** The name as a pod spec writes it (`konductor/agent:dev`). */
  ref: string;
  stamp: string;
  /** The OCI archive (`ctr images import` input). */
  archive: string;
  manifestDigest: string;
  configDigest: string;
  archiveBytes: number;
  /** Sum of the gzip layers (what a registry would transfer). */
  compressedBytes: number;
  /** Sum of the uncompressed layers (about the unpacked size on the node). */
  uncompressedBytes: number;
  /** The image's runtime config (entrypoint, env, user...). */
  config: ImageRuntimeConfig;
  builtAt: string;
  buildSeconds: number;
  /** The inputs the stamp was computed from (readable summary). */
  inputs: Record<string, string>;
}

export interface CacheOptions {
  /** Cache root; default $KONDUCTOR_CACHE_DIR or ~/.cache/konductor. */
  cacheRoot?: string;
  log?: (line: string) => void;
  /** Interval of the "still building" lines (default 15 s). */
  heartbeatMs?: number;
}

export const defaultImageLog = (line: string) => process.stderr.write(`[images] ${line}\n`);

/** Entries kept per kind besides the current one (other worktrees build other sources). */
const KEEP_PER_KIND = 3;

export function imagesDir(cacheRoot?: string): string {
  return join(cacheRoot ?? cacheRootDir(), 'images');
}

/** sha256 over the inputs in key order (values are strings: hashes, versions, file contents). */
export function stampOf(inputs: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(inputs).sort()) h.update(`${k}=${inputs[k]}\n`);
  return h.digest('hex').slice(0, 20);
}

/**
 * A small JSON memo in the images cache (`.memo-<name>.json`): the value of `key`, computed once. Used for
 * stamp inputs that are slow to compute and keyed by what would change them (a file's size, mtime and
 * inode; apt's package lists' mtime). Concurrent writers may drop each other's entries: they are recomputed.
 */
export function memoized<T>(cacheRoot: string | undefined, name: string, key: string, compute: () => T): T {
  const file = join(imagesDir(cacheRoot), `.memo-${name}.json`);
  let memo: Record<string, T> = {};
  try {
    memo = JSON.parse(readFileSync(file, 'utf8')) as Record<string, T>;
  } catch {
    /* none yet, or being replaced */
  }
  if (Object.hasOwn(memo, key)) return memo[key] as T;
  const value = compute();
  const kept = Object.entries(memo).slice(-49);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(Object.fromEntries([...kept, [key, value]])));
  renameSync(tmp, file);
  return value;
}

/** sha256 of a file; files over 1 MiB are memoized by path, size, mtime and inode. */
export function hashFile(path: string, cacheRoot?: string): string {
  const hash = () => createHash('sha256').update(readFileSync(path)).digest('hex');
  const st = statSync(path);
  if (st.size < 1024 * 1024) return hash();
  return memoized(cacheRoot, 'file-sha256', `${path} ${st.size} ${st.mtimeMs} ${st.ino}`, hash);
}

function readRecord(dir: string): ImageRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as ImageRecord;
    return existsSync(rec.archive) && rec.config ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Removes older entries of a kind beyond KEEP_PER_KIND (never the one just built). */
async function prune(root: string, kind: string, keep: string): Promise<void> {
  const others = readdirSync(root)
    .filter((d) => d.startsWith(`${kind}-`) && d !== keep && /^[0-9a-f]{20}$/.test(d.slice(kind.length + 1)))
    .map((d) => ({ d, t: statSync(join(root, d)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { d } of others.slice(KEEP_PER_KIND)) await rm(join(root, d), { recursive: true, force: true });
}

/**
 * Returns the cached image of `kind` for these inputs, building it with `build(workDir, archivePath)`
 * when absent. The build writes the archive at `archivePath`; `workDir` is scratch space removed after.
 */
export async function cachedImage(
  kind: string,
  ref: string,
  inputs: Record<string, string>,
  build: (workDir: string, archivePath: string) => Promise<ArchiveInfo>,
  opts: CacheOptions = {},
): Promise<ImageRecord> {
  const log = opts.log ?? defaultImageLog;
  const root = imagesDir(opts.cacheRoot);
  const stamp = stampOf(inputs);
  const dir = join(root, `${kind}-${stamp}`);
  const hit = readRecord(dir);
  if (hit) return hit;
  await mkdir(root, { recursive: true });
  return withBuildLock(join(root, `.lock-${kind}`), log, opts.heartbeatMs ?? 15_000, async () => {
    const again = readRecord(dir);
    if (again) return again;
    const started = Date.now();
    log(`building image ${ref} (${kind}, stamp ${stamp})`);
    const work = join(root, `.work-${kind}-${process.pid}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const staged = join(root, `.staged-${kind}-${process.pid}`);
    try {
      await rm(staged, { recursive: true, force: true });
      await mkdir(staged);
      const info = await build(work, join(staged, 'image.tar'));
      const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
      const rec: ImageRecord = {
        kind,
        name: info.name,
        ref,
        stamp,
        archive: join(dir, 'image.tar'),
        manifestDigest: info.manifestDigest,
        configDigest: info.configDigest,
        archiveBytes: info.archiveBytes,
        compressedBytes: info.compressedBytes,
        uncompressedBytes: info.uncompressedBytes,
        config: info.config,
        builtAt: new Date().toISOString(),
        buildSeconds,
        inputs,
      };
      await writeFile(join(staged, 'image.json'), `${JSON.stringify(rec, null, 2)}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(staged, dir);
      log(
        `built ${ref} in ${buildSeconds} s: ${mib(rec.compressedBytes)} compressed, ` +
          `${mib(rec.uncompressedBytes)} unpacked, ${rec.manifestDigest.slice(0, 19)}`,
      );
      await prune(root, kind, `${kind}-${stamp}`);
      return rec;
    } catch (err) {
      if (err instanceof KonductorError) throw err;
      throw konductorError(
        'KDR_IMAGES_BUILD_FAILED',
        `building image ${ref} failed: ${(err as Error).message}`,
      ).causedBy(err);
    } finally {
      await rm(work, { recursive: true, force: true });
      await rm(staged, { recursive: true, force: true });
    }
  });
}

export const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
