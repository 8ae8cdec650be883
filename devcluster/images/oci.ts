/**
 * OCI image archives without a registry or a Docker engine: gzip layers from tar entries, an image
 * config, a manifest and an `index.json`, written as one tar (`oci-layout`, `index.json`,
 * `blobs/sha256/...`) that `ctr -n k8s.io images import` loads.
 *
 * Deterministic: layers come from `tar.ts` (fixed mtimes, given order), the JSON documents are built
 * with a fixed key order and a fixed `created`, and the archive's own entries are sorted, so the same
 * inputs give the same digests (with the same zlib: gzip bytes may differ between Node.js versions).
 *
 * The image name goes into the index entry twice, as containerd's importer reads it
 * (containerd `client/import.go` `imageName()`): `io.containerd.image.name` with the full, normalized
 * reference (used as is: `docker.io/konductor/agent:dev`), and `org.opencontainers.image.ref.name` with
 * the tag (the OCI image-layout convention; containerd only falls back to it, prefixed with ctr's
 * `--base-name`, when the first is absent). The kubelet asks the CRI for `konductor/agent:dev`, which
 * the CRI normalizes to the same `docker.io/...` name.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync, constants as zlibConstants } from 'node:zlib';
import { konductorError } from '../../api/errors.ts';
import {
  entryHeader,
  FIXED_EPOCH_SECONDS,
  type ParsedTarEntry,
  parseTar,
  type TarEntry,
  tarChunks,
} from './tar.ts';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const CREATED = new Date(FIXED_EPOCH_SECONDS * 1000).toISOString().replace('.000Z', 'Z');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** A gzip layer blob: where its bytes are (a file, or a range of one), its digest and its diff ID. */
export interface LayerBlob extends Descriptor {
  /** sha256 of the uncompressed tar (the config's `rootfs.diff_ids`). */
  diffId: string;
  /** Size of the uncompressed tar. */
  uncompressedSize: number;
  /** File holding the blob, from `offset` (default 0) for `size` bytes. */
  file: string;
  offset?: number;
}

/** The runtime part of an image config (the OCI `config` object; Docker's names). */
export interface ImageRuntimeConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

export interface ImageSpec {
  /** Full or short reference; normalized like the CRI does (`konductor/agent:dev` -> `docker.io/konductor/agent:dev`). */
  name: string;
  config: ImageRuntimeConfig;
  /** Bottom first. */
  layers: LayerBlob[];
  /** One line per layer for `history` (optional, e.g. the Dockerfile instruction). */
  history?: string[];
}

export interface ArchiveInfo {
  path: string;
  /** Normalized image name, as containerd stores it. */
  name: string;
  /** Digest of the manifest (what `ctr images ls` shows). */
  manifestDigest: string;
  configDigest: string;
  /** Size of the archive file. */
  archiveBytes: number;
  /** Sum of the compressed layers. */
  compressedBytes: number;
  /** Sum of the uncompressed layers (the unpacked image's size, about). */
  uncompressedBytes: number;
  layers: LayerBlob[];
  config: ImageRuntimeConfig;
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const descriptor = (mediaType: string, bytes: Buffer): Descriptor => ({
  mediaType,
  digest: sha256(bytes),
  size: bytes.length,
});

/**
 * Normalizes an image reference the way the CRI (docker reference rules) does: a missing registry is
 * `docker.io`, a single-segment Docker Hub name gets `library/`, a missing tag is `latest`.
 */
export function normalizeImageName(ref: string): string {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at) : '';
  let rest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let domain = 'docker.io';
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost')) {
    domain = first;
    rest = rest.slice(slash + 1);
  }
  if (domain === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  const lastSlash = rest.lastIndexOf('/');
  if (!digest && !rest.slice(lastSlash + 1).includes(':')) rest += ':latest';
  if (
    !/^[a-z0-9]+(?:[._-][a-z0-9]+|__)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+|__)*)*(?::[\w][\w.-]{0,127})?$/.test(
      rest,
    )
  ) {
    throw konductorError('KDR_IMAGES_BAD_NAME', `invalid image reference "${ref}"`);
  }
  return `${domain}/${rest}${digest}`;
}

/** The tag of a normalized reference (`dev` of `docker.io/konductor/agent:dev`), or '' with a digest only. */
export function imageTag(name: string): string {
  const noDigest = name.split('@')[0] as string;
  const last = noDigest.slice(noDigest.lastIndexOf('/') + 1);
  return last.includes(':') ? (last.split(':')[1] as string) : '';
}

/** Passes bytes through while hashing them and counting them. */
function hashing(): { stream: Transform; digest: () => string; bytes: () => number } {
  const h = createHash('sha256');
  let n = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, digest: () => `sha256:${h.digest('hex')}`, bytes: () => n };
}

/**
 * Writes the entries as a gzip tar layer into `dir` (file named after its digest) and returns it.
 * gzip level 6 (zlib's default): level 9 costs twice the time for ~1% on the Node.js binary.
 */
export async function writeLayer(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
  dir: string,
): Promise<LayerBlob> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.layer-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const raw = hashing();
  const gz = hashing();
  try {
    await pipeline(
      Readable.from(tarChunks(entries)),
      raw.stream,
      createGzip({ level: zlibConstants.Z_DEFAULT_COMPRESSION }),
      gz.stream,
      createWriteStream(tmp),
    );
    const digest = gz.digest();
    const file = join(dir, digest.replace('sha256:', ''));
    await rename(tmp, file);
    return {
      mediaType: MEDIA_TYPES.layerGzip,
      digest,
      size: gz.bytes(),
      diffId: raw.digest(),
      uncompressedSize: raw.bytes(),
      file,
    };
  } finally {
    await rm(tmp, { force: true });
  }
}

function configJson(spec: ImageSpec): Buffer {
  const c = spec.config;
  // Fixed key order: the digest depends on it.
  const config: ImageRuntimeConfig = {
    ...(c.User !== undefined ? { User: c.User } : {}),
    ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    ...(c.Env ? { Env: c.Env } : {}),
    ...(c.Entrypoint ? { Entrypoint: c.Entrypoint } : {}),
    ...(c.Cmd ? { Cmd: c.Cmd } : {}),
    ...(c.WorkingDir ? { WorkingDir: c.WorkingDir } : {}),
    ...(c.Labels ? { Labels: c.Labels } : {}),
  };
  return Buffer.from(
    JSON.stringify({
      created: CREATED,
      architecture: 'amd64',
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
      history: spec.layers.map((_, i) => ({
        created: CREATED,
        created_by: spec.history?.[i] ?? 'konductor devcluster/images',
      })),
    }),
  );
}

/** Streams a byte range of a file. */
function rangeStream(file: string, offset: number, size: number): Readable {
  return size === 0 ? Readable.from([]) : createReadStream(file, { start: offset, end: offset + size - 1 });
}

/** The tar header of a blob entry in the archive (mode 0644, root, fixed mtime). */
function blobEntry(digest: string, size: number): TarEntry {
  return {
    path: `blobs/sha256/${digest.replace('sha256:', '')}`,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size,
  };
}

/**
 * Writes the image as an OCI archive at `out` (atomically: a temp file renamed into place).
 * Blobs are sorted by digest after `oci-layout` and `index.json`; layers are copied, not re-compressed.
 */
export async function writeOciArchive(spec: ImageSpec, out: string): Promise<ArchiveInfo> {
  if (spec.layers.length === 0) {
    throw konductorError('KDR_IMAGES_NO_LAYERS', `image ${spec.name} has no layers`);
  }
  const name = normalizeImageName(spec.name);
  const config = configJson(spec);
  const configDesc = descriptor(MEDIA_TYPES.config, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.manifest,
      config: configDesc,
      layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDesc = descriptor(MEDIA_TYPES.manifest, manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.index,
      manifests: [
        {
          ...manifestDesc,
          annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: imageTag(name) || 'latest' },
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  type Blob = { digest: string; size: number; body: () => Readable };
  const blobs = new Map<string, Blob>();
  const inMemory = (b: Buffer, d: string) => ({ digest: d, size: b.length, body: () => Readable.from([b]) });
  blobs.set(configDesc.digest, inMemory(config, configDesc.digest));
  blobs.set(manifestDesc.digest, inMemory(manifest, manifestDesc.digest));
  for (const l of spec.layers) {
    blobs.set(l.digest, {
      digest: l.digest,
      size: l.size,
      body: () => rangeStream(l.file, l.offset ?? 0, l.size),
    });
  }
  const sorted = [...blobs.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));

  const dirEntry = (path: string): TarEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
  const fileEntry = (path: string, data: Buffer): TarEntry => ({
    path,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    data,
  });
  async function* chunks(): AsyncGenerator<Buffer> {
    yield* tarChunksNoEnd([
      fileEntry('oci-layout', layout),
      fileEntry('index.json', index),
      dirEntry('blobs'),
      dirEntry('blobs/sha256'),
    ]);
    for (const b of sorted) {
      yield* tarChunksNoEnd([blobEntry(b.digest, 0)], b.size);
      let n = 0;
      for await (const c of b.body()) {
        n += (c as Buffer).length;
        yield c as Buffer;
      }
      if (n !== b.size) {
        throw konductorError('KDR_IMAGES_BLOB_SIZE', `blob ${b.digest}: expected ${b.size} bytes, read ${n}`);
      }
      if (b.size % 512) yield Buffer.alloc(512 - (b.size % 512));
    }
    yield Buffer.alloc(1024);
  }

  const tmp = `${out}.tmp-${process.pid}`;
  await pipeline(Readable.from(chunks()), createWriteStream(tmp));
  await rename(tmp, out);
  const sum = (f: (l: LayerBlob) => number) => spec.layers.reduce((a, l) => a + f(l), 0);
  return {
    path: out,
    name,
    manifestDigest: manifestDesc.digest,
    configDigest: configDesc.digest,
    archiveBytes: (await stat(out)).size,
    compressedBytes: sum((l) => l.size),
    uncompressedBytes: sum((l) => l.uncompressedSize),
    layers: spec.layers,
    config: spec.config,
  };
}

/** Header blocks of entries whose data the caller streams itself (size given separately for files). */
function* tarChunksNoEnd(entries: TarEntry[], fileSize?: number): Generator<Buffer> {
  for (const e of entries) {
    if (fileSize !== undefined) {
      yield entryHeader({ ...e, size: fileSize });
      continue;
    }
    yield entryHeader(e);
    if (e.type === 'file' && e.data) {
      yield e.data;
      if (e.data.length % 512) yield Buffer.alloc(512 - (e.data.length % 512));
    }
  }
}

/** An archive read back: its documents, its blobs' places in the file, and a reader for a layer. */
export interface ParsedArchive {
  path: string;
  layout: { imageLayoutVersion: string };
  index: {
    schemaVersion: number;
    mediaType?: string;
    manifests: (Descriptor & {
      annotations?: Record<string, string>;
      platform?: { architecture: string; os: string };
    })[];
  };
  manifest: { schemaVersion: number; mediaType?: string; config: Descriptor; layers: Descriptor[] };
  config: {
    created?: string;
    architecture: string;
    os: string;
    config: ImageRuntimeConfig;
    rootfs: { type: string; diff_ids: string[] };
    history?: { created?: string; created_by?: string }[];
  };
  /** Normalized name from the index annotation. */
  name: string;
  /** Every blob: its offset and size in the archive, and whether its digest verified. */
  blobs: Map<string, { offset: number; size: number }>;
  /** The layers as blobs of this archive (to reuse them in a derived image without recompressing). */
  layers: LayerBlob[];
  /** The archive's own tar entries (names, modes, mtimes), for checks. */
  entries: Omit<ParsedTarEntry, 'data'>[];
}

/**
 * Reads an OCI archive back and verifies it: every blob's sha256 matches its name, the index points at
 * the manifest, the manifest at the config and layers, and each layer's uncompressed digest matches the
 * config's diff_id. Throws `KDR_IMAGES_ARCHIVE_INVALID` otherwise.
 */
export async function readOciArchive(path: string): Promise<ParsedArchive> {
  const fail = (msg: string) => konductorError('KDR_IMAGES_ARCHIVE_INVALID', `${path}: ${msg}`);
  const buf = readFileSync(path);
  const entries = parseTar(buf);
  const byName = new Map(entries.map((e) => [e.path, e]));
  const json = <T>(name: string): T => {
    const e = byName.get(name);
    if (!e) throw fail(`missing ${name}`);
    return JSON.parse(e.data.toString('utf8')) as T;
  };
  const blobs = new Map<string, { offset: number; size: number }>();
  for (const e of entries) {
    const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(e.path);
    if (!m) continue;
    const digest = `sha256:${m[1]}`;
    if (sha256(e.data) !== digest) throw fail(`blob ${digest} does not match its content`);
    blobs.set(digest, { offset: e.offset, size: e.size });
  }
  const blob = (d: Descriptor): Buffer => {
    const b = blobs.get(d.digest);
    if (!b) throw fail(`blob ${d.digest} (${d.mediaType}) is missing`);
    if (b.size !== d.size) throw fail(`blob ${d.digest}: descriptor size ${d.size}, blob ${b.size}`);
    return buf.subarray(b.offset, b.offset + b.size);
  };
  const layout = json<ParsedArchive['layout']>('oci-layout');
  if (layout.imageLayoutVersion !== '1.0.0') throw fail(`oci-layout version ${layout.imageLayoutVersion}`);
  const index = json<ParsedArchive['index']>('index.json');
  const top = index.manifests[0];
  if (index.manifests.length !== 1 || !top)
    throw fail(`expected one manifest in index.json, found ${index.manifests.length}`);
  const manifest = JSON.parse(blob(top).toString('utf8')) as ParsedArchive['manifest'];
  const config = JSON.parse(blob(manifest.config).toString('utf8')) as ParsedArchive['config'];
  if (config.rootfs.diff_ids.length !== manifest.layers.length)
    throw fail('diff_ids and layers differ in number');
  const layers: LayerBlob[] = manifest.layers.map((l, i) => {
    const tar = gunzipSync(blob(l));
    const diffId = sha256(tar);
    if (diffId !== config.rootfs.diff_ids[i])
      throw fail(`layer ${l.digest}: diff_id ${diffId} != ${config.rootfs.diff_ids[i]}`);
    return {
      ...l,
      diffId,
      uncompressedSize: tar.length,
      file: path,
      offset: blobs.get(l.digest)?.offset ?? 0,
    };
  });
  const name = top.annotations?.[ANNOTATION_IMAGE_NAME];
  if (!name) throw fail(`index.json has no ${ANNOTATION_IMAGE_NAME} annotation`);
  return {
    path,
    layout,
    index,
    manifest,
    config,
    name,
    blobs,
    layers,
    entries: entries.map(({ data: _data, ...rest }) => rest),
  };
}

/** The uncompressed tar entries of one layer blob. */
export async function readLayer(layer: LayerBlob): Promise<ParsedTarEntry[]> {
  const fh = await open(layer.file, 'r');
  try {
    const b = Buffer.alloc(layer.size);
    await fh.read(b, 0, layer.size, layer.offset ?? 0);
    return parseTar(gunzipSync(b));
  } finally {
    await fh.close();
  }
}
