/**
 * The two images without a Docker engine (issue 5, "Images"). chart-images.test.ts checks the
 * Dockerfiles' structure; this test runs what they rely on, driven by the Dockerfiles themselves:
 *
 * 1. build stage: the build context (the repository minus .dockerignore) is copied to a temp dir with
 *    the dependencies (`npm ci`), and the stage's `RUN npm run build` runs there (package.json's
 *    `scripts.build`). Every `COPY --from=build /src/...` source of the runtime stages must then exist.
 *    dist/ is in .dockerignore, so the files come from this build, never from a stale local dist/.
 * 2. runtime stage: a temp dir stands for WORKDIR /app, filled by the stage's COPY lines only (the
 *    `deps` stage's node_modules emulated as the lockfile's non-dev packages, like
 *    `npm ci --omit=dev`), and its ENTRYPOINT (paths under /app mapped to the temp dir) answers
 *    `--help` and `--version`. For Dockerfile.sidecar that is the agent bundle alone in an empty dir.
 * The temp dirs are outside the repository, so nothing resolves from the repository's node_modules.
 * The Dockerfiles and .dockerignore are read with the image builder's own parser and matcher
 * (devcluster/images): what is checked here is what it builds. The real build (RUN steps in a chroot of
 * the local Node.js image, the images run by containerd) is test/integration/images-build.test.ts; this
 * one needs no root and runs in seconds.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Instruction, parseDockerfile } from '../../devcluster/images/dockerfile.ts';
import { dockerignoreMatcher } from '../../devcluster/images/dockerignore.ts';
import { REPO } from '../helpers/chartTools.ts';

const read = (f: string) => readFileSync(join(REPO, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

interface Stage {
  name?: string;
  /** The stage's WORKDIR after its last WORKDIR instruction. */
  workdir: string;
  instructions: Instruction[];
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}

/** The stages as the image builder (devcluster/images/dockerfile.ts) reads them. */
function stages(dockerfile: string): Stage[] {
  return parseDockerfile(dockerfile).stages.map((s) => ({
    ...(s.name ? { name: s.name } : {}),
    workdir: s.instructions.reduce((wd, i) => (i.kind === 'WORKDIR' ? posix.resolve(wd, i.path) : wd), '/'),
    instructions: s.instructions,
  }));
}

/** The shell-form RUN commands of a stage. */
const runs = (stage: Stage | undefined) =>
  (stage?.instructions ?? []).flatMap((i) => (i.kind === 'RUN' && i.shell ? [i.shell] : []));

const withoutLines = (stage: Stage | undefined) => stage?.instructions.map(({ line: _line, ...i }) => i);

function copies(stage: Stage): Copy[] {
  return stage.instructions.flatMap((i) =>
    i.kind === 'COPY' ? [{ ...(i.from ? { from: i.from } : {}), sources: i.sources, dest: i.dest }] : [],
  );
}

/** Copies the build context (repository minus .dockerignore) into `dest`. */
function copyContext(dest: string): void {
  const ignored = dockerignoreMatcher(read('.dockerignore'));
  cpSync(REPO, dest, {
    recursive: true,
    filter: (src) => {
      const rel = relative(REPO, src);
      return rel === '' || !ignored(rel);
    },
  });
}

/** `npm ci --omit=dev` emulated: the lockfile's top-level non-dev packages, copied from node_modules. */
function productionNodeModules(dest: string): string[] {
  const lock = JSON.parse(read('package-lock.json')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const top = Object.entries(lock.packages)
    .filter(([k, v]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(k) && !v.dev && !v.devOptional)
    .map(([k]) => k);
  for (const p of top)
    cpSync(join(REPO, p), join(dest, p.slice('node_modules/'.length)), { recursive: true });
  return top.map((p) => p.slice('node_modules/'.length));
}

function run(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, args, {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOME: cwd },
  });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

let tmp: string;
/** Stands for the build stage's /src after `npm ci`, `COPY . .` and `RUN npm run build`. */
let src: string;
let buildOutput: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'konductor-images-'));
  // Nothing above the temp dirs may provide node_modules (it would hide a missing runtime dependency).
  for (let d = tmp; d !== dirname(d); d = dirname(d)) {
    expect(existsSync(join(dirname(d), 'node_modules')), dirname(d)).toBe(false);
  }
  src = join(tmp, 'src');
  copyContext(src);
  expect(existsSync(join(src, 'dist'))).toBe(false);
  // `RUN npm ci` before `COPY . .`: the full dependency tree (dev included) is there for the build.
  symlinkSync(join(REPO, 'node_modules'), join(src, 'node_modules'), 'dir');
  const build = stages(read('Dockerfile.webhook')).find((s) => s.name === 'build') as Stage;
  expect(build.workdir).toBe('/src');
  expect(runs(build)).toContain('npm run build');
  const script = /^node (\S+)$/.exec(pkg.scripts.build ?? '');
  expect(script, `package.json scripts.build: ${pkg.scripts.build}`).not.toBeNull();
  const r = run([script?.[1] as string], src);
  buildOutput = r.stdout + r.stderr;
  expect(r.code, buildOutput).toBe(0);
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.each([
  ['Dockerfile.webhook', 'konductor'],
  ['Dockerfile.sidecar', 'konductor-agent'],
])('%s', (file, bin) => {
  const all = stages(read(file));
  const runtime = all.at(-1) as Stage;
  const build = all.find((s) => s.name === 'build') as Stage;

  it('has the same build stage as the other image (one `npm run build` serves both)', () => {
    expect(withoutLines(build)).toEqual(
      withoutLines(stages(read('Dockerfile.webhook')).find((s) => s.name === 'build')),
    );
  });

  it('the build produces every file the runtime stage copies from it', () => {
    const fromBuild = copies(runtime).filter((c) => c.from === 'build');
    expect(fromBuild.length).toBeGreaterThan(0);
    for (const c of fromBuild) {
      for (const s of c.sources) {
        expect(s.startsWith(`${build.workdir}/`), s).toBe(true);
        const local = join(src, relative(build.workdir, s));
        expect(existsSync(local), `${s} (COPY --from=build) after the build:\n${buildOutput}`).toBe(true);
        if (statSync(local).isDirectory()) expect(readdirSync(local).length, s).toBeGreaterThan(0);
      }
    }
  });

  describe('the runtime stage, assembled from its COPY lines', () => {
    let app: string;
    let entry: string[];

    beforeAll(() => {
      app = join(tmp, `app-${bin}`);
      mkdirSync(app);
      expect(runtime.workdir).toBe('/app');
      for (const c of copies(runtime)) {
        const dest = join(app, relative(runtime.workdir, join(runtime.workdir, c.dest)));
        for (const s of c.sources) {
          if (c.from === 'build') {
            cpSync(join(src, relative(build.workdir, s)), dest, { recursive: true });
          } else if (c.from === 'deps' && s === '/app/node_modules') {
            const deps = all.find((st) => st.name === 'deps');
            expect(runs(deps).some((l) => l.startsWith('npm ci --omit=dev'))).toBe(true);
            productionNodeModules(dest);
          } else {
            throw new Error(`${file}: COPY not emulated by this test: ${JSON.stringify(c)}`);
          }
        }
      }
      const entrypoint = runtime.instructions.find((i) => i.kind === 'ENTRYPOINT');
      entry = entrypoint?.kind === 'ENTRYPOINT' ? entrypoint.argv : [];
      expect(entry[0]).toBe('node');
      entry = entry.slice(1).map((a) => (a.startsWith('/app/') ? join(app, a.slice('/app/'.length)) : a));
    }, 60_000);

    it('--help exits 0 with the usage text', () => {
      const r = run([...entry, '--help'], app);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`usage: ${bin}\\b`, 'i'));
      expect(r.stdout).toContain('--help');
    });

    it('--version exits 0', () => {
      const r = run([...entry, '--version'], app);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(new RegExp(`^${bin} \\d+\\.\\d+\\.\\d+`));
    });

    it('rejects an unknown flag or mode with a non-zero exit', () => {
      const r = run([...entry, '--no-such-flag'], app);
      expect(r.code).not.toBe(0);
      expect(r.stderr).not.toBe('');
    });
  });
});

it('the agent image is the bundle alone: no node_modules, no package.json, its version built in', () => {
  const app = join(tmp, 'app-konductor-agent');
  expect(readdirSync(app)).toEqual(['konductor-agent.js']);
  const r = run(['konductor-agent.js', '--version'], app);
  expect(r.stdout.trim()).toBe(`konductor-agent ${pkg.version}`);
});

it('the manager bundle imports only node builtins and production dependencies', () => {
  const bundle = readFileSync(join(src, 'dist/konductor.js'), 'utf8');
  const specifiers = new Set(
    [
      ...bundle.matchAll(
        /(?:^|[;\s])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm,
      ),
    ]
      .map((m) => (m[1] ?? m[2]) as string)
      .filter((s) => !s.startsWith('node:') && !s.startsWith('.') && !builtinModules.includes(s)),
  );
  const packageName = (s: string) =>
    s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0];
  const packages = [...specifiers].map(packageName);
  expect(packages.length).toBeGreaterThan(0);
  for (const p of packages)
    expect(Object.keys(pkg.dependencies), `${p} imported by dist/konductor.js`).toContain(p);
});
