/**
 * `npm run build`: bundles the two executables with esbuild.
 *   dist/konductor-agent.js  the in-pod agent (sidecar/main.ts): one self-contained file, node builtins only,
 *                            minified; its startup time and memory are a budget (DESIGN §8)
 *   dist/konductor.js        the manager (cmd/konductor.ts): bundled, npm packages left external
 * Both get a `#!/usr/bin/env node` banner and the executable bit.
 * Usable as a module too: `await buildAll()` (tests build the agent before spawning it).
 */
import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const AGENT_BUNDLE = join(ROOT, 'dist', 'konductor-agent.js');
export const MANAGER_BUNDLE = join(ROOT, 'dist', 'konductor.js');
const AGENT_ENTRY = join(ROOT, 'sidecar', 'main.ts');
const MANAGER_ENTRY = join(ROOT, 'cmd', 'konductor.ts');

export interface BuiltFile {
  path: string;
  bytes: number;
}

export interface BuildResult {
  agent: BuiltFile;
  /** Undefined when cmd/konductor.ts does not exist (yet). */
  manager: BuiltFile | undefined;
}

const BANNER = { js: '#!/usr/bin/env node' };

async function common(): Promise<BuildOptions> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  return {
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    banner: BANNER,
    logLevel: 'warning',
    legalComments: 'none',
    define: { KONDUCTOR_AGENT_VERSION: JSON.stringify(pkg.version) },
  };
}

/** Bundles sidecar/main.ts into dist/konductor-agent.js (no external packages: the image has only node). */
export async function buildAgent(): Promise<BuiltFile> {
  await build({
    ...(await common()),
    entryPoints: [AGENT_ENTRY],
    outfile: AGENT_BUNDLE,
    minify: true,
    packages: 'bundle',
    // Anything but node builtins in the agent is a mistake (startup budget): fail the build instead.
    plugins: [
      {
        name: 'agent-no-packages',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) => {
            if (args.path.startsWith('node:')) return { path: args.path, external: true };
            return {
              errors: [{ text: `the agent must not import packages (${args.path} from ${args.importer})` }],
            };
          });
        },
      },
    ],
  });
  await chmod(AGENT_BUNDLE, 0o755);
  return { path: AGENT_BUNDLE, bytes: (await stat(AGENT_BUNDLE)).size };
}

/** Bundles cmd/konductor.ts into dist/konductor.js, or returns undefined if it does not exist yet. */
export async function buildManager(): Promise<BuiltFile | undefined> {
  if (!(await exists(MANAGER_ENTRY))) return undefined;
  await mkdir(dirname(MANAGER_BUNDLE), { recursive: true });
  await build({
    ...(await common()),
    entryPoints: [MANAGER_ENTRY],
    outfile: MANAGER_BUNDLE,
    packages: 'external',
    sourcemap: 'linked',
  });
  await chmod(MANAGER_BUNDLE, 0o755);
  return { path: MANAGER_BUNDLE, bytes: (await stat(MANAGER_BUNDLE)).size };
}

/** What the agent bundle is built from: a change to any of these makes dist/konductor-agent.js stale. */
export const AGENT_INPUTS = ['sidecar', 'api', 'package.json', 'scripts/build.ts'].map((p) => join(ROOT, p));

/** The newest file (by modification time) under `paths` (directories are walked), or undefined if none. */
export async function newestFile(paths: string[]): Promise<{ path: string; mtimeMs: number } | undefined> {
  let newest: { path: string; mtimeMs: number } | undefined;
  const visit = async (path: string): Promise<void> => {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const entry of await readdir(path)) await visit(join(path, entry));
    } else if (!newest || st.mtimeMs > newest.mtimeMs) {
      newest = { path, mtimeMs: st.mtimeMs };
    }
  };
  for (const p of paths) await visit(p);
  return newest;
}

/** Why `output` must be (re)built from `inputs`, or undefined when it is up to date. */
export async function staleReason(output: string, inputs: string[]): Promise<string | undefined> {
  let built: number;
  try {
    built = (await stat(output)).mtimeMs;
  } catch {
    return `${relative(ROOT, output)} is missing`;
  }
  const newest = await newestFile(inputs);
  if (newest && newest.mtimeMs > built) {
    return `${relative(ROOT, newest.path)} changed after ${relative(ROOT, output)} was built`;
  }
  return undefined;
}

/**
 * Builds dist/konductor-agent.js when it is missing or older than its sources (what the devcluster's process
 * kubelet runs for the agent image: `npm ci && npm run cluster` must not leave pods in RunContainerError).
 * Returns why it was built, or undefined when it was up to date.
 */
export async function ensureAgentBundle(log: (line: string) => void = () => {}): Promise<string | undefined> {
  const reason = await staleReason(AGENT_BUNDLE, AGENT_INPUTS);
  if (reason === undefined) return undefined;
  log(`building the agent (${reason}) ...`);
  const built = await buildAgent();
  log(`built ${describe(built)}`);
  return reason;
}

export async function buildAll(): Promise<BuildResult> {
  const [agent, manager] = await Promise.all([buildAgent(), buildManager()]);
  return { agent, manager };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function describe(file: BuiltFile): string {
  return `${relative(ROOT, file.path)} (${(file.bytes / 1024).toFixed(1)} KiB)`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildAll().then(
    ({ agent, manager }) => {
      console.log(`built ${describe(agent)}`);
      console.log(
        manager
          ? `built ${describe(manager)}`
          : 'skipped dist/konductor.js: cmd/konductor.ts does not exist yet',
      );
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
