/**
 * konductor's own images, built from Dockerfile.webhook and Dockerfile.sidecar AS WRITTEN by the
 * Dockerfile interpreter (`dockerBuild.ts`), with only the Node.js base replaced through the
 * Dockerfiles' `NODE_IMAGE` build argument by the local `konductor/node:24` (`baseImages.ts`).
 * Both are built in one session, so their identical `build` stage (`npm ci`, `npm run build`) runs once.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CacheOptions, cachedImage, defaultImageLog, type ImageRecord, imagesDir } from './cache.ts';
import {
  BUILDER_VERSION,
  type BuildSession,
  createBuildSession,
  type DockerBuildRequest,
  dockerBuildKey,
  type LocalImage,
  readBuildContext,
  runDockerBuild,
} from './dockerBuild.ts';
import { ensureNodeImage } from './nodeImage.ts';
import { writeOciArchive } from './oci.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The names the images are imported under, as the chart values and pod specs write them. */
export const KONDUCTOR_IMAGE_REFS = {
  manager: 'konductor/manager:dev',
  agent: 'konductor/agent:dev',
} as const;

export const DOCKERFILES = { manager: 'Dockerfile.webhook', agent: 'Dockerfile.sidecar' } as const;

export interface KonductorImages {
  manager: ImageRecord;
  agent: ImageRecord;
  /** The Node.js base both were built on. */
  node: ImageRecord;
}

export interface KonductorImageOptions extends CacheOptions {
  /** Build context (default: this repository). */
  contextDir?: string;
}

/** Builds (or takes from the cache) the manager and agent images. */
export async function ensureKonductorImages(opts: KonductorImageOptions = {}): Promise<KonductorImages> {
  const log = opts.log ?? defaultImageLog;
  const node = await ensureNodeImage(opts);
  const contextDir = opts.contextDir ?? REPO;
  const context = readBuildContext(contextDir);
  const base: LocalImage = {
    name: node.name,
    archive: node.archive,
    manifestDigest: node.manifestDigest,
    config: node.config,
  };
  const request = (kind: keyof typeof DOCKERFILES): DockerBuildRequest => ({
    dockerfile: readFileSync(join(contextDir, DOCKERFILES[kind]), 'utf8'),
    label: DOCKERFILES[kind],
    context,
    buildArgs: { NODE_IMAGE: node.ref },
    images: [base],
  });
  let session: BuildSession | undefined;
  const sessionDir = join(imagesDir(opts.cacheRoot), `.session-${process.pid}`);
  try {
    const build = (kind: keyof typeof DOCKERFILES) => {
      const req = request(kind);
      return cachedImage(
        kind,
        KONDUCTOR_IMAGE_REFS[kind],
        {
          builder: BUILDER_VERSION,
          dockerfile: DOCKERFILES[kind],
          key: dockerBuildKey(req),
          node: node.manifestDigest,
        },
        async (_work, out) => {
          session ??= createBuildSession(sessionDir, log, opts.heartbeatMs);
          const result = await runDockerBuild(session, req);
          return writeOciArchive(
            {
              name: KONDUCTOR_IMAGE_REFS[kind],
              config: result.config,
              layers: result.layers,
              history: result.history,
            },
            out,
          );
        },
        opts,
      );
    };
    const manager = await build('manager');
    const agent = await build('agent');
    return { manager, agent, node };
  } finally {
    await rm(sessionDir, { recursive: true, force: true });
  }
}
