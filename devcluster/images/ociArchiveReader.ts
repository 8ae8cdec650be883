/**
 * An OCI image archive read back (devcluster/images/oci.ts writes them): its index, manifest and config
 * checked against their digests, its blobs' places in the file, and a layer's entries.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { konductorError } from '../../api/errors.ts';
import {
  ANNOTATION_IMAGE_NAME,
  type Descriptor,
  type ImageRuntimeConfig,
  type LayerBlob,
  sha256,
} from './oci.ts';
import { type ParsedTarEntry, parseTar } from './tar.ts';

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
