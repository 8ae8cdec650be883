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
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { BUILD_CA_PATH, chrootRun } from './chrootRun.ts';
import {
  type Dockerfile,
  expandVariables,
  type Instruction,
  parseDockerfile,
  type Stage,
} from './dockerfile.ts';
import { dockerignoreMatcher } from './dockerignore.ts';
import {
  type ImageRuntimeConfig,
  type LayerBlob,
  normalizeImageName,
  type ParsedArchive,
  readOciArchive,
  writeLayer,
} from './oci.ts';
import {
  copyInto,
  diffEntries,
  mkdirInRoot,
  resolveInRoot,
  type Snapshot,
  snapshot,
  unpackLayers,
} from './rootfs.ts';

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

interface StageState {
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

interface BuiltStage {
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

const h = (...parts: string[]) => {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(`${p}\n`);
  return hash.digest('hex');
};

function stripLine(i: Instruction): string {
  const { line: _line, ...rest } = i;
  return JSON.stringify(rest);
}

interface Plan {
  df: Dockerfile;
  globals: Record<string, string>;
  keys: string[];
  /** Stage index -> what its FROM resolved to. */
  bases: ({ image: LocalImage } | { stage: number })[];
  target: number;
  needed: number[];
}

function stageIndex(df: Dockerfile, ref: string, before: number): number | undefined {
  const byName = df.stages.findIndex((s, i) => i < before && s.name === ref.toLowerCase());
  if (byName >= 0) return byName;
  if (/^\d+$/.test(ref) && Number(ref) < before) return Number(ref);
  return undefined;
}

/** The variables of a stage at an instruction: ARGs then ENVs (ENV wins). Used for keys and expansion. */
function varsOf(state: Pick<StageState, 'env' | 'args'>): Record<string, string> {
  return { ...Object.fromEntries(state.args), ...Object.fromEntries(state.env) };
}

function envFromConfig(config: ImageRuntimeConfig): [string, string][] {
  return (config.Env ?? []).map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
}

function contextHash(ctx: BuildContext, source: string, label: string, line: number): string {
  const rel = posix
    .normalize(source)
    .replace(/^(\.\/|\/)+/, '')
    .replace(/\/$/, '');
  if (rel.startsWith('..')) {
    throw konductorError(
      'KDR_IMAGES_COPY_SOURCE',
      `${label} line ${line}: COPY source ${source} is outside the context`,
    );
  }
  const all = rel === '' || rel === '.';
  const parts = [...ctx.files].filter(([p]) => all || p === rel || p.startsWith(`${rel}/`));
  if (parts.length === 0) {
    throw konductorError(
      'KDR_IMAGES_COPY_SOURCE',
      `${label} line ${line}: COPY source ${source} not found in the build context (or excluded by .dockerignore)`,
    );
  }
  return h(...parts.map(([p, v]) => `${p} ${v}`));
}

/** Resolves FROMs and computes every needed stage's key, without touching any root filesystem. */
export function planDockerBuild(req: DockerBuildRequest): Plan {
  const df = parseDockerfile(req.dockerfile);
  const buildArgs = req.buildArgs ?? {};
  const globals: Record<string, string> = {};
  for (const a of df.globalArgs) {
    const v =
      buildArgs[a.name] ?? (a.default !== undefined ? expandVariables(a.default, globals) : undefined);
    if (v !== undefined) globals[a.name] = v;
  }
  const target =
    req.target === undefined ? df.stages.length - 1 : df.stages.findIndex((s) => s.name === req.target);
  if (target < 0)
    throw konductorError('KDR_IMAGES_DOCKERFILE_INVALID', `${req.label}: no stage ${req.target}`);
  const keys: string[] = [];
  const bases: Plan['bases'] = [];
  const deps: number[][] = [];
  for (const stage of df.stages) {
    const fromRef = expandVariables(stage.from, globals);
    const parent = stageIndex(df, fromRef, stage.index);
    let baseKey: string;
    let state: Pick<StageState, 'env' | 'args'>;
    const stageDeps: number[] = [];
    if (parent !== undefined) {
      bases.push({ stage: parent });
      baseKey = `stage ${keys[parent]}`;
      stageDeps.push(parent);
      state = { env: [], args: new Map() };
    } else {
      const name = normalizeImageName(fromRef);
      const image = req.images.find((i) => i.name === name);
      if (!image) {
        throw konductorError(
          'KDR_IMAGES_BASE_MISSING',
          `${req.label} line ${stage.line}: FROM ${fromRef} (${name}) is not a local image and nothing is pulled ` +
            `from a registry; local images: ${req.images.map((i) => i.name).join(', ') || 'none'}`,
        );
      }
      bases.push({ image });
      baseKey = `image ${image.manifestDigest}`;
      state = { env: envFromConfig(image.config), args: new Map() };
    }
    const parts = [BUILDER_VERSION, baseKey, JSON.stringify(globals), JSON.stringify(buildArgs)];
    for (const ins of stage.instructions) {
      parts.push(stripLine(ins));
      if (ins.kind === 'ARG') {
        const v =
          buildArgs[ins.name] ??
          (ins.default !== undefined ? expandVariables(ins.default, varsOf(state)) : globals[ins.name]);
        if (v !== undefined) state.args.set(ins.name, v);
      } else if (ins.kind === 'ENV') {
        for (const [k, v] of ins.pairs) {
          state.env = [...state.env.filter(([n]) => n !== k), [k, expandVariables(v, varsOf(state))]];
        }
      } else if (ins.kind === 'COPY') {
        if (ins.from !== undefined) {
          const from = stageIndex(df, expandVariables(ins.from, varsOf(state)), stage.index);
          if (from === undefined) {
            throw konductorError(
              'KDR_IMAGES_DOCKERFILE_UNSUPPORTED',
              `${req.label} line ${ins.line}: COPY --from=${ins.from} must name an earlier stage (images are not supported)`,
            );
          }
          stageDeps.push(from);
          parts.push(`from ${keys[from]}`);
        } else {
          for (const s of ins.sources) {
            parts.push(
              `context ${contextHash(req.context, expandVariables(s, varsOf(state)), req.label, ins.line)}`,
            );
          }
        }
      }
    }
    keys.push(h(...parts));
    deps.push(stageDeps);
  }
  const needed = new Set<number>();
  const visit = (i: number) => {
    if (needed.has(i)) return;
    needed.add(i);
    for (const d of deps[i] ?? []) visit(d);
  };
  visit(target);
  return { df, globals, keys, bases, target, needed: [...needed].sort((a, b) => a - b) };
}

function passwdLookup(root: string, file: 'passwd' | 'group', name: string): number | undefined {
  const p = resolveInRoot(root, `/etc/${file}`);
  if (!existsSync(p)) return undefined;
  for (const line of readFileSync(p, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined) return Number(f[2]);
  }
  return undefined;
}

/** `USER` as numeric uid:gid (names from the stage's /etc/passwd and /etc/group) and the home directory. */
function resolveUser(root: string, user: string | undefined): { spec: string; home: string } {
  if (!user) return { spec: '0:0', home: '/root' };
  const [u = '', g] = user.split(':');
  const uid = /^\d+$/.test(u) ? Number(u) : passwdLookup(root, 'passwd', u);
  if (uid === undefined)
    throw konductorError('KDR_IMAGES_USER_UNKNOWN', `USER ${user}: no such user in the stage`);
  let gid = g === undefined ? undefined : /^\d+$/.test(g) ? Number(g) : passwdLookup(root, 'group', g);
  let home = '/';
  const passwd = resolveInRoot(root, '/etc/passwd');
  if (existsSync(passwd)) {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const f = line.split(':');
      if (Number(f[2]) === uid) {
        gid ??= Number(f[3]);
        home = f[5] || '/';
        break;
      }
    }
  }
  return { spec: `${uid}:${gid ?? uid}`, home };
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

function describeStage(s: Stage): string {
  return `${s.index}${s.name ? ` (${s.name})` : ''} FROM ${s.from}`;
}

async function execute(
  session: BuildSession,
  req: DockerBuildRequest,
  plan: Plan,
  st: BuiltStage,
  ins: Instruction,
): Promise<void> {
  const s = st.state;
  const x = (t: string) => expandVariables(t, varsOf(s));
  const where = `${req.label} line ${ins.line}`;
  switch (ins.kind) {
    case 'ARG': {
      const v =
        req.buildArgs?.[ins.name] ?? (ins.default !== undefined ? x(ins.default) : plan.globals[ins.name]);
      if (v !== undefined) s.args.set(ins.name, v);
      return;
    }
    case 'ENV':
      for (const [k, v] of ins.pairs) s.env = [...s.env.filter(([n]) => n !== k), [k, x(v)]];
      return;
    case 'LABEL':
      for (const [k, v] of ins.pairs) s.labels[x(k)] = x(v);
      return;
    case 'WORKDIR':
      s.workdir = posix.resolve(s.workdir, x(ins.path));
      mkdirInRoot(st.root, s.workdir);
      return;
    case 'USER':
      s.user = x(ins.user);
      return;
    case 'EXPOSE':
      for (const p of ins.ports.map(x)) s.exposed.add(p.includes('/') ? p : `${p}/tcp`);
      return;
    case 'ENTRYPOINT':
      s.entrypoint = ins.argv;
      if (s.cmdFromBase) delete s.cmd;
      return;
    case 'CMD':
      s.cmd = ins.argv;
      s.cmdFromBase = false;
      return;
    case 'COPY':
      copy(session, req, plan, st, ins, x, where);
      return;
    case 'RUN': {
      const argv = ins.argv ?? ['/bin/sh', '-c', ins.shell as string];
      const user = resolveUser(st.root, s.user);
      const env: Record<string, string> = {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: user.home,
        HOSTNAME: 'buildkitsandbox',
        ...Object.fromEntries(s.args),
        ...Object.fromEntries(s.env),
      };
      mkdirInRoot(st.root, s.workdir);
      const host = hostBuildEnvironment();
      for (const [k, v] of Object.entries(host.env)) env[k] ??= v;
      // Mount points of the RUN's private mounts, removed afterwards when the image had none.
      const made = ['proc', 'dev', ...(host.caFile ? ['run', 'run/konductor-build'] : [])].filter(
        (d) => !existsSync(join(st.root, d)),
      );
      for (const d of made) mkdirSync(join(st.root, d));
      session.log(`${where}: RUN ${ins.shell ?? JSON.stringify(ins.argv)}`);
      const started = Date.now();
      const heartbeat = setInterval(
        () =>
          session.log(`  ... ${where}: RUN still running, ${Math.round((Date.now() - started) / 1000)} s`),
        session.heartbeatMs,
      );
      const r = await chrootRun({
        root: st.root,
        argv,
        env,
        cwd: s.workdir,
        user: user.spec,
        ...(host.caFile ? { caFile: host.caFile } : {}),
        onLine: (l) => {
          if (l.trim()) session.log(`  | ${l}`);
        },
      }).finally(() => clearInterval(heartbeat));
      for (const d of made.reverse()) rmdirSync(join(st.root, d));
      if (r.code !== 0) {
        throw konductorError(
          'KDR_IMAGES_RUN_FAILED',
          `${where}: RUN ${ins.shell ?? JSON.stringify(ins.argv)} exited ${r.code}:\n${r.tail.slice(-30).join('\n')}`,
        );
      }
      session.log(`${where}: RUN done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
  }
}

function copy(
  session: BuildSession,
  req: DockerBuildRequest,
  plan: Plan,
  st: BuiltStage,
  ins: Extract<Instruction, { kind: 'COPY' }>,
  x: (t: string) => string,
  where: string,
): void {
  const owner = { uid: 0, gid: 0 };
  const sources = ins.sources.map(x);
  const destRaw = x(ins.dest);
  const dest = posix.resolve(st.state.workdir, destRaw);
  const destIsDir = destRaw.endsWith('/') || destRaw === '.' || sources.length > 1;
  let from: { root: string; inContext: boolean };
  if (ins.from !== undefined) {
    const idx = stageIndex(plan.df, x(ins.from), plan.df.stages.length) as number;
    const src = session.stages.get(plan.keys[idx] as string);
    if (!src) throw konductorError('KDR_IMAGES_BUILD_FAILED', `${where}: stage ${ins.from} was not built`);
    from = { root: src.root, inContext: false };
  } else from = { root: req.context.dir, inContext: true };
  for (const s of sources) {
    const rel = posix.normalize(`/${s}`);
    const host = from.inContext ? join(from.root, rel) : resolveInRoot(from.root, rel);
    const relToContext = rel.slice(1);
    if (!existsSync(host) || (from.inContext && relToContext && req.context.ignored(relToContext))) {
      throw konductorError('KDR_IMAGES_COPY_SOURCE', `${where}: COPY source ${s} not found`);
    }
    const filter = from.inContext
      ? (r: string) => !req.context.ignored(relToContext ? `${relToContext}/${r}` : r)
      : () => true;
    const isDir = lstatSync(host).isDirectory();
    let target: string;
    if (isDir) target = mkdirInRoot(st.root, dest, owner);
    else {
      const existingDir =
        existsSync(resolveInRoot(st.root, dest)) && lstatSync(resolveInRoot(st.root, dest)).isDirectory();
      if (destIsDir || existingDir) target = join(mkdirInRoot(st.root, dest, owner), posix.basename(rel));
      else {
        mkdirInRoot(st.root, posix.dirname(dest), owner);
        target = join(resolveInRoot(st.root, posix.dirname(dest)), posix.basename(dest));
      }
    }
    if (isDir) {
      for (const n of readdirSync(host).sort()) {
        if (!filter(n)) continue;
        copyInto(join(host, n), join(target, n), owner, (r) => filter(`${n}/${r}`));
      }
    } else copyInto(host, target, owner);
  }
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
