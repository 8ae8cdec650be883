/**
 * The CRD manifests, read from their one canonical place in the chart
 * (charts/konductor/files/crds/<plural>.sync.konductor.io.yaml), for tests, the demo and devcluster.
 * The directory is resolved relative to this module (repository layout); pass `dir` when running from
 * somewhere else (e.g. a bundled dist/).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { GROUP, KINDS, type PrimitiveKind } from './constants.ts';
import { konductorError } from './errors.ts';

/** Absolute path of charts/konductor/files/crds in the repository layout. */
export const CRD_DIR = fileURLToPath(new URL('../charts/konductor/files/crds/', import.meta.url));

/** File name of a kind's CRD manifest, e.g. `semaphores.sync.konductor.io.yaml`. */
export function crdFileName(kind: PrimitiveKind): string {
  return `${KINDS[kind].plural}.${GROUP}.yaml`;
}

/** Name of a kind's CustomResourceDefinition object, e.g. `semaphores.sync.konductor.io`. */
export function crdName(kind: PrimitiveKind): string {
  return `${KINDS[kind].plural}.${GROUP}`;
}

/** One CustomResourceDefinition object per kind of the kind table, in its order. */
export function loadCrdManifests(dir: string = CRD_DIR): Record<string, unknown>[] {
  return (Object.keys(KINDS) as PrimitiveKind[]).map((kind) => {
    const file = join(dir, crdFileName(kind));
    const doc: unknown = parse(readFileSync(file, 'utf8'));
    if (typeof doc !== 'object' || doc === null) throw konductorError('KDR_CRD_INVALID', file);
    return doc as Record<string, unknown>;
  });
}
