/**
 * The devcluster's image toolchain (issue 9): local OCI image archives for the real node, built
 * without a registry or a Docker engine, cached under ~/.cache/konductor/images, and imported into a
 * containerd. See devcluster/README.md ("Images").
 *
 *   const images = await ensureImages();              // pause, busybox, node, manager, agent
 *   await importImages({ ctr, address, namespace: 'k8s.io', archives: images.all });
 *   helm install ... ${konductorChartImageArgs().join(' ')}
 */
import { BASE_IMAGE_REFS, ensureBusyboxImage, ensurePauseImage } from './baseImages.ts';
import type { CacheOptions, ImageRecord } from './cache.ts';
import {
  ensureKonductorImages,
  KONDUCTOR_IMAGE_REFS,
  type KonductorImageOptions,
} from './konductorImages.ts';

export {
  BASE_IMAGE_REFS,
  DEFAULT_PATH,
  ensureBusyboxImage,
  ensurePauseImage,
  NONROOT_UID,
  NPM_VERSION,
} from './baseImages.ts';
export { type CacheOptions, cachedImage, type ImageRecord, imagesDir, mib, stampOf } from './cache.ts';
export { type DockerBuildRequest, type LocalImage, readBuildContext, runDockerBuild } from './dockerBuild.ts';
export { type ImportedImage, type ImportImagesOptions, importImages } from './importImages.ts';
export {
  DOCKERFILES,
  ensureKonductorImages,
  KONDUCTOR_IMAGE_REFS,
  type KonductorImages,
} from './konductorImages.ts';
export { ensureNodeImage } from './nodeImage.ts';
export {
  type ArchiveInfo,
  type ImageRuntimeConfig,
  type ImageSpec,
  type LayerBlob,
  normalizeImageName,
  readOciArchive,
  writeLayer,
  writeOciArchive,
} from './oci.ts';
export { directoryEntries, type TarEntry } from './tar.ts';

export interface RealNodeImages {
  pause: ImageRecord;
  busybox: ImageRecord;
  node: ImageRecord;
  manager: ImageRecord;
  agent: ImageRecord;
  /** All of them, for `importImages({ archives })`. */
  all: ImageRecord[];
}

/** Every image the real node needs for konductor (cert-manager's: devcluster/certmanager). */
export async function ensureImages(opts: KonductorImageOptions = {}): Promise<RealNodeImages> {
  const pause = await ensurePauseImage(opts);
  const busybox = await ensureBusyboxImage(opts);
  const { node, manager, agent } = await ensureKonductorImages(opts);
  return { pause, busybox, node, manager, agent, all: [pause, busybox, node, manager, agent] };
}

/**
 * `helm install charts/konductor` flags that run the local images: the manager image never pulled
 * (a missing import fails at once with ErrImageNeverPull instead of trying docker.io), the agent image
 * the webhook injects (a `:dev` tag, so the kubelet's default policy is IfNotPresent).
 */
export function konductorChartImageArgs(): string[] {
  const split = (ref: string) => {
    const i = ref.lastIndexOf(':');
    return { repository: ref.slice(0, i), tag: ref.slice(i + 1) };
  };
  const manager = split(KONDUCTOR_IMAGE_REFS.manager);
  const agent = split(KONDUCTOR_IMAGE_REFS.agent);
  return [
    '--set',
    `image.repository=${manager.repository}`,
    '--set',
    `image.tag=${manager.tag}`,
    '--set',
    'image.pullPolicy=Never',
    '--set',
    `agentImage.repository=${agent.repository}`,
    '--set',
    `agentImage.tag=${agent.tag}`,
  ];
}

/** The pause image's name as containerd's `sandbox_image` (CRI) setting wants it. */
export const SANDBOX_IMAGE = `docker.io/${BASE_IMAGE_REFS.pause}`;

export type { CacheOptions as ImageCacheOptions };
