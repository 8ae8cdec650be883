/**
 * `npm run build`: bundles the two executables with esbuild.
 *   dist/konductor-agent.js  the in-pod agent (sidecar/main.ts): one self-contained file, node builtins only,
 *                            minified; its startup time and memory are a budget (DESIGN §8)
 *   dist/konductor.js        the manager (cmd/konductor.ts): bundled, npm packages left external
 * Both get a `#!/usr/bin/env node` banner and the executable bit.
 * Usable as a module too: `await buildAll()` (tests build the agent before spawning it).
 */
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
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
