/**
 * Image -> local command table of the process kubelet (a TEST HARNESS: there is no container runtime
 * and no image is ever pulled). An image is either mapped to a local program or reported the way a
 * kubelet reports an image it may not pull: the container stays Waiting with `ErrImageNeverPull`.
 *
 * - the konductor agent image (any repository ending in `konductor-agent`, DEFAULT_AGENT_IMAGE
 *   included) -> `node dist/konductor-agent.js <args>` of this checkout;
 * - shell images (busybox, alpine, debian, ubuntu, bash, fedora) -> `command` + `args` as given, run
 *   with the host's programs (`sh -c "..."` uses the host's /bin/sh);
 * - anything else -> ErrImageNeverPull. Extend the table with `extraImages`.
 */
import { DEFAULT_AGENT_IMAGE } from '../../api/constants.ts';

export type ImageResolution =
  | { ok: true; argv: string[]; imageID: string }
  | { ok: false; reason: 'ErrImageNeverPull' | 'RunContainerError'; message: string };

export interface ContainerCommand {
  command: string[];
  args: string[];
}

export interface ImageHandler {
  /** Shown in the ErrImageNeverPull message's list of supported images. */
  description: string;
  matches(image: ImageRef): boolean;
  resolve(cmd: ContainerCommand, image: ImageRef): ImageResolution;
}

export interface ImageRef {
  /** As written in the pod spec. */
  image: string;
  /** Registry and path without tag or digest, e.g. `docker.io/library/busybox` -> `library/busybox`. */
  repository: string;
  /** Last path segment of the repository, e.g. `busybox`. */
  name: string;
  tag?: string;
  digest?: string;
}

/** Splits an image reference into repository, tag and digest (registry hosts with ports included). */
export function parseImageRef(image: string): ImageRef {
  let rest = image.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const segments = rest.split('/');
  if (segments.length > 1 && /[.:]|^localhost$/.test(segments[0] ?? '')) segments.shift();
  const repository = segments.join('/');
  const ref: ImageRef = { image, repository, name: segments[segments.length - 1] ?? '' };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

const ENTRYPOINT = /(^|\/)(konductor-agent(\.js)?|node)$/;

/** The konductor agent image, mapped to `node <agentScript>`. */
export function agentImageHandler(opts: {
  nodePath: string;
  agentScript: string;
  exists: (path: string) => boolean;
}): ImageHandler {
  const defaultRepo = parseImageRef(DEFAULT_AGENT_IMAGE).repository;
  return {
    description: `*konductor-agent (${DEFAULT_AGENT_IMAGE} included) -> node ${opts.agentScript}`,
    matches: (ref) => ref.repository === defaultRepo || ref.repository.endsWith('konductor-agent'),
    resolve(cmd, ref) {
      if (!opts.exists(opts.agentScript)) {
        return {
          ok: false,
          reason: 'RunContainerError',
          message: `image ${ref.image} maps to ${opts.agentScript}, which does not exist: run npm run build`,
        };
      }
      // An explicit entrypoint naming the agent (or node) is the agent itself: drop it, keep the rest.
      const command = [...cmd.command];
      while (command.length && ENTRYPOINT.test(command[0] ?? '')) command.shift();
      return {
        ok: true,
        argv: [opts.nodePath, opts.agentScript, ...command, ...cmd.args],
        imageID: `process-kubelet://${opts.agentScript}`,
      };
    },
  };
}

export const SHELL_IMAGE_NAMES = ['busybox', 'alpine', 'debian', 'ubuntu', 'bash', 'fedora'] as const;

/** Shell images: run command + args with the host's programs (default CMD `sh`). */
export function shellImageHandler(names: readonly string[] = SHELL_IMAGE_NAMES): ImageHandler {
  return {
    description: `${names.join('|')} (any registry/tag) -> command + args with the host's /bin/sh and tools`,
    matches: (ref) => names.includes(ref.name),
    resolve(cmd, ref) {
      const argv = [...cmd.command, ...cmd.args];
      return {
        ok: true,
        argv: argv.length ? argv : [ref.name === 'bash' ? 'bash' : 'sh'],
        imageID: `process-kubelet://host/${ref.name}`,
      };
    },
  };
}

/** Looks the image up in the table (first match wins). */
export function resolveImage(
  table: readonly ImageHandler[],
  image: string,
  cmd: ContainerCommand,
): ImageResolution {
  const ref = parseImageRef(image);
  const handler = ref.repository ? table.find((h) => h.matches(ref)) : undefined;
  if (!handler) {
    return {
      ok: false,
      reason: 'ErrImageNeverPull',
      message:
        `Container image "${image}" is not present with pull policy of Never: the process kubelet ` +
        `(a test harness without a container runtime) runs only these images: ${table.map((h) => h.description).join('; ')}`,
    };
  }
  return handler.resolve(cmd, ref);
}
