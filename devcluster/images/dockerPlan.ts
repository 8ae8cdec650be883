/**
 * A Dockerfile build planned before anything runs: the stages the target needs, in order, each with the
 * cache key of its inputs (base image, instructions, build arguments, the context files it copies), so an
 * unchanged stage is taken from the cache. devcluster/images/dockerBuild.ts runs the plan.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import {
  BUILDER_VERSION,
  type BuildContext,
  type DockerBuildRequest,
  type LocalImage,
  type StageState,
} from './dockerBuild.ts';
import { type Dockerfile, expandVariables, type Instruction, parseDockerfile } from './dockerfile.ts';
import { type ImageRuntimeConfig, normalizeImageName } from './oci.ts';

export const h = (...parts: string[]) => {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(`${p}\n`);
  return hash.digest('hex');
};

export function stripLine(i: Instruction): string {
  const { line: _line, ...rest } = i;
  return JSON.stringify(rest);
}

export interface Plan {
  df: Dockerfile;
  globals: Record<string, string>;
  keys: string[];
  /** Stage index -> what its FROM resolved to. */
  bases: ({ image: LocalImage } | { stage: number })[];
  target: number;
  needed: number[];
}

export function stageIndex(df: Dockerfile, ref: string, before: number): number | undefined {
  const byName = df.stages.findIndex((s, i) => i < before && s.name === ref.toLowerCase());
  if (byName >= 0) return byName;
  if (/^\d+$/.test(ref) && Number(ref) < before) return Number(ref);
  return undefined;
}

/** The variables of a stage at an instruction: ARGs then ENVs (ENV wins). Used for keys and expansion. */
export function varsOf(state: Pick<StageState, 'env' | 'args'>): Record<string, string> {
  return { ...Object.fromEntries(state.args), ...Object.fromEntries(state.env) };
}

export function envFromConfig(config: ImageRuntimeConfig): [string, string][] {
  return (config.Env ?? []).map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
}

export function contextHash(ctx: BuildContext, source: string, label: string, line: number): string {
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
