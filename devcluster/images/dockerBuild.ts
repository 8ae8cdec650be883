/**
 * A Dockerfile interpreter (no Docker engine, no buildah, no registry): builds a target stage of a
 * Dockerfile parsed by `dockerfile.ts` into an OCI image.
 *
 * - FROM a local image (its archive unpacked into a stage directory) or an earlier stage (copied);
 * - RUN executes for real in a chroot of the stage with its own mount and PID namespaces
 *   (`chrootRun.ts`), as the stage's user, with its ENV and ARGs, the host's network;
 * - COPY from the build context (filtered by .dockerignore) or `--from` an earlier stage, owned 0:0
 *   like Docker's COPY without `--chown`, symlinks in destinations resolved inside the stage's root;
 * - the image is the base's layers, unchanged (same digests), plus one layer holding the stage's
 *   difference from its base (new and changed files, whiteouts), and the config from ENV, WORKDIR,
 *   USER, ENTRYPOINT, CMD, EXPOSE, LABEL (ENTRYPOINT resets an inherited CMD, as Docker does).
 *
 * Stages are keyed like Docker's build cache (base digest, instructions, build args, the content of
 * copied context files, the keys of stages copied from), and a `BuildSession` reuses a stage with the
 * same key across the Dockerfiles built in it (both of konductor's Dockerfiles share their `build`
 * stage: `npm ci` and `npm run build` run once). The target's key is the image's cache stamp.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { BUILD_CA_PATH } from './chrootRun.ts';
import type { Stage } from './dockerfile.ts';
import { dockerignoreMatcher } from './dockerignore.ts';
import { envFromConfig, type Plan, planDockerBuild } from './dockerPlan.ts';
import { describeStage, execute } from './dockerSteps.ts';
import { type ImageRuntimeConfig, type LayerBlob, writeLayer } from './oci.ts';
import { type ParsedArchive, readOciArchive } from './ociArchiveReader.ts';
import { diffEntries, type Snapshot, snapshot, unpackLayers } from './rootfs.ts';
/** Bumped when the interpreter's output for the same inputs changes (part of every key). */
export const BUILDER_VERSION = 'konductor-dockerfile-v1';

/** A local image a FROM may name: normalized name -> archive, manifest digest and config. */
export interface LocalImage {
  name: string;
  archive: string;
  manifestDigest: string;
  config: ImageRuntimeConfig;
}

/** The build context: its directory and the sha256 of every file it exposes (after .dockerignore). */
export interface BuildContext {
  dir: string;
  ignored: (rel: string) => boolean;
  /** rel path -> `f <mode> <sha256>`, `l <target>` or `d <mode>` */
  files: Map<string, string>;
}

export function readBuildContext(dir: string): BuildContext {
  const ignoreFile = join(dir, '.dockerignore');
  const ignored = dockerignoreMatcher(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8') : '');
  const files = new Map<string, string>();
  const walk = (rel: string) => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (ignored(r)) continue;
      const st = lstatSync(join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        files.set(r, `d ${mode}`);
        walk(r);
      } else if (st.isSymbolicLink()) files.set(r, `l ${readlinkSync(join(dir, r))}`);
      else if (st.isFile()) {
        files.set(
          r,
          `f ${mode} ${createHash('sha256')
            .update(readFileSync(join(dir, r)))
            .digest('hex')}`,
        );
      }
    }
  };
  walk('');
  return { dir, ignored, files };
}

/** What a build produces: the image's layers and config, and the key (cache stamp) of the target. */
export interface DockerBuildResult {
  key: string;
  layers: LayerBlob[];
  config: ImageRuntimeConfig;
  history: string[];
}

export interface StageState {
  env: [string, string][];
  args: Map<string, string>;
  workdir: string;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  cmdFromBase: boolean;
  exposed: Set<string>;
  labels: Record<string, string>;
}

export interface BuiltStage {
  key: string;
  root: string;
  baseLayers: LayerBlob[];
  baseHistory: string[];
  baseSnapshot: Snapshot;
  state: StageState;
  /** The stage's own layer, computed when an image or a derived stage needs it. */
  layer?: LayerBlob;
}

/** Stages built so far, by key; one per process run of builds sharing a work directory. */
export interface BuildSession {
  workDir: string;
  stages: Map<string, BuiltStage>;
  /** Base images read (digests verified) and unpacked once, by manifest digest; stages copy them. */
  bases: Map<string, Promise<UnpackedBase>>;
  log: (line: string) => void;
  /** Interval of the "still running" lines of a long RUN. */
  heartbeatMs: number;
}

interface UnpackedBase {
  root: string;
  archive: ParsedArchive;
}

export function createBuildSession(
  workDir: string,
  log: (line: string) => void,
  heartbeatMs = 15_000,
): BuildSession {
  mkdirSync(workDir, { recursive: true });
  return { workDir, stages: new Map(), bases: new Map(), log, heartbeatMs };
}

function unpackedBase(session: BuildSession, image: LocalImage): Promise<UnpackedBase> {
  let p = session.bases.get(image.manifestDigest);
  if (!p) {
    p = (async () => {
      const archive = await readOciArchive(image.archive);
      const root = join(session.workDir, `base-${image.manifestDigest.slice(7, 23)}`);
      await unpackLayers(archive.layers, root);
      return { root, archive };
    })();
    session.bases.set(image.manifestDigest, p);
  }
  return p;
}

/** `cp -a`: owners, modes, links and times kept (the snapshot after it is the stage's base). */
function copyTree(from: string, to: string): void {
  const cp = spawnSync('cp', ['-a', from, to], { encoding: 'utf8' });
  if (cp.status !== 0) throw konductorError('KDR_IMAGES_BUILD_FAILED', `cp -a ${from} ${to}: ${cp.stderr}`);
}

export interface DockerBuildRequest {
  /** Dockerfile text and a label for messages (its file name). */
  dockerfile: string;
  label: string;
  context: BuildContext;
  buildArgs?: Record<string, string>;
  /** Images FROM may name (normalized names). Nothing is ever pulled. */
  images: LocalImage[];
  /** Target stage name (default: the last stage). */
  target?: string;
}

async function stageLayer(session: BuildSession, st: BuiltStage): Promise<LayerBlob> {
  st.layer ??= await writeLayer(diffEntries(st.root, st.baseSnapshot), join(session.workDir, 'blobs'));
  return st.layer;
}

async function buildStage(
  session: BuildSession,
  req: DockerBuildRequest,
  plan: Plan,
  index: number,
): Promise<BuiltStage> {
  const key = plan.keys[index] as string;
  const existing = session.stages.get(key);
  if (existing) {
    session.log(`${req.label}: stage ${describeStage(plan.df.stages[index] as Stage)} reused (same key)`);
    return existing;
  }
  const stage = plan.df.stages[index] as Stage;
  const root = join(session.workDir, `stage-${key.slice(0, 16)}`);
  const base = plan.bases[index] as Plan['bases'][number];
  let built: BuiltStage;
  session.log(`${req.label}: stage ${describeStage(stage)}`);
  if ('image' in base) {
    const unpacked = await unpackedBase(session, base.image);
    const archive = unpacked.archive;
    copyTree(unpacked.root, root);
    built = {
      key,
      root,
      baseLayers: archive.layers,
      baseHistory: archive.layers.map(
        (l, i) =>
          archive.config.history?.[i]?.created_by ?? `layer ${l.digest.slice(0, 19)} of ${base.image.name}`,
      ),
      baseSnapshot: snapshot(root),
      state: {
        env: envFromConfig(archive.config.config),
        args: new Map(),
        workdir: archive.config.config.WorkingDir || '/',
        ...(archive.config.config.User ? { user: archive.config.config.User } : {}),
        ...(archive.config.config.Entrypoint ? { entrypoint: archive.config.config.Entrypoint } : {}),
        ...(archive.config.config.Cmd ? { cmd: archive.config.config.Cmd } : {}),
        cmdFromBase: true,
        exposed: new Set(Object.keys(archive.config.config.ExposedPorts ?? {})),
        labels: { ...(archive.config.config.Labels ?? {}) },
      },
    };
  } else {
    const parent = session.stages.get(plan.keys[base.stage] as string) as BuiltStage;
    copyTree(parent.root, root);
    const parentLayer = await stageLayer(session, parent);
    built = {
      key,
      root,
      baseLayers: [...parent.baseLayers, parentLayer],
      baseHistory: [...parent.baseHistory, `stage ${base.stage}`],
      baseSnapshot: snapshot(root),
      state: {
        ...parent.state,
        args: new Map(),
        env: [...parent.state.env],
        exposed: new Set(parent.state.exposed),
        labels: { ...parent.state.labels },
        cmdFromBase: true,
      },
    };
  }
  for (const ins of stage.instructions) await execute(session, req, plan, built, ins);
  session.stages.set(key, built);
  return built;
}

/** Proxy variables buildah hands to RUN steps by default; never stored in the image. */
const PROXY_VARS = [
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'FTP_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'ftp_proxy',
];

/**
 * What a RUN step takes from the host's build environment (like a build host's proxy settings): its
 * proxy variables, and the extra CA its egress needs (NODE_EXTRA_CA_CERTS), copied into the RUN's
 * private tmpfs. A stage's own ENV of the same name wins. Not part of the stage keys: it changes how
 * the network is reached, not what is built.
 */
export function hostBuildEnvironment(env: NodeJS.ProcessEnv = process.env): {
  env: Record<string, string>;
  caFile?: string;
} {
  const out: Record<string, string> = {};
  for (const k of PROXY_VARS) if (env[k]) out[k] = env[k] as string;
  const ca = env.NODE_EXTRA_CA_CERTS;
  if (ca && existsSync(ca)) {
    out.NODE_EXTRA_CA_CERTS = BUILD_CA_PATH;
    return { env: out, caFile: ca };
  }
  return { env: out };
}

/**
 * Builds the target stage (and the stages it needs) in the session; returns the image's layers and
 * config. The caller writes the archive (`writeOciArchive`).
 */
export async function runDockerBuild(
  session: BuildSession,
  req: DockerBuildRequest,
): Promise<DockerBuildResult> {
  const plan = planDockerBuild(req);
  for (const i of plan.needed) await buildStage(session, req, plan, i);
  const st = session.stages.get(plan.keys[plan.target] as string) as BuiltStage;
  const layer = await stageLayer(session, st);
  const s = st.state;
  const config: ImageRuntimeConfig = {
    ...(s.user ? { User: s.user } : {}),
    ...(s.exposed.size
      ? { ExposedPorts: Object.fromEntries([...s.exposed].sort().map((p) => [p, {}])) }
      : {}),
    Env: s.env.map(([k, v]) => `${k}=${v}`),
    ...(s.entrypoint ? { Entrypoint: s.entrypoint } : {}),
    ...(s.cmd ? { Cmd: s.cmd } : {}),
    ...(s.workdir !== '/' ? { WorkingDir: s.workdir } : {}),
    ...(Object.keys(s.labels).length ? { Labels: s.labels } : {}),
  };
  const stage = plan.df.stages[plan.target] as Stage;
  return {
    key: plan.keys[plan.target] as string,
    layers: [...st.baseLayers, layer],
    config,
    history: [
      ...st.baseHistory,
      `${req.label} stage ${describeStage(stage)}: ${stage.instructions.length} instructions`,
    ],
  };
}

/** The key (cache stamp) of a build without running it. */
export function dockerBuildKey(req: DockerBuildRequest): string {
  const plan = planDockerBuild(req);
  return plan.keys[plan.target] as string;
}
