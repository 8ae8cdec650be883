/**
 * `npm run build`: bundles the two executables with esbuild.
 *   dist/konductor-agent.js  the in-pod agent (sidecar/main.ts): one self-contained file, node builtins only,
 *                            minified; its startup time and memory are a budget (DESIGN §8)
 *   dist/konductor.js        the manager (cmd/konductor.ts): bundled, npm packages left external
 *   dist/kubeconfig-resolver.js  the manager's kubeconfig resolver (api/kubeconfigResolver.ts, run as a
 *                            short-lived process): @kubernetes/client-node bundled and tree-shaken
 *   dist/kubectl-konductor.js  the kubectl plugin (cmd/kubectl-konductor.ts): one self-contained file
 * Both get a `#!/usr/bin/env node` banner and the executable bit.
 * Usable as a module too: `await buildAll()` (tests build the agent before spawning it).
 */
import { chmod, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const AGENT_BUNDLE = join(ROOT, 'dist', 'konductor-agent.js');
export const MANAGER_BUNDLE = join(ROOT, 'dist', 'konductor.js');
const AGENT_ENTRY = join(ROOT, 'sidecar', 'main.ts');
const MANAGER_ENTRY = join(ROOT, 'cmd', 'konductor.ts');
export const RESOLVER_BUNDLE = join(ROOT, 'dist', 'kubeconfig-resolver.js');
const RESOLVER_ENTRY = join(ROOT, 'api', 'kubeconfigResolver.ts');
export const PLUGIN_BUNDLE = join(ROOT, 'dist', 'kubectl-konductor.js');
const PLUGIN_ENTRY = join(ROOT, 'cmd', 'kubectl-konductor.ts');

export interface BuiltFile {
  path: string;
  bytes: number;
}

export interface BuildResult {
  agent: BuiltFile;
  /** Undefined when cmd/konductor.ts does not exist (yet). */
  manager: BuiltFile | undefined;
  resolver: BuiltFile;
  plugin: BuiltFile;
}

const BANNER = { js: '#!/usr/bin/env node' };

/**
 * esbuild, then each output file written to a temporary name and renamed over the old one: a process that
 * runs a bundle while it is rebuilt (tests run in parallel with builds) reads either the old or the new
 * file, never half of one. JavaScript outputs get the executable bit.
 */
async function buildAtomically(options: BuildOptions): Promise<void> {
  const result = await build({ ...options, write: false });
  for (const file of result.outputFiles ?? []) {
    await mkdir(dirname(file.path), { recursive: true });
    const tmp = `${file.path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, file.contents);
    if (file.path.endsWith('.js')) await chmod(tmp, 0o755);
    await rename(tmp, file.path);
  }
}

/**
 * The one Node.js target of the project: the major of package.json's engines.node (`>=24` -> `node24`). The
 * images' NODE_IMAGE, the `node` devDependency and the docs name the same major (test/unit/node-target.test.ts).
 */
export function nodeTarget(pkg: { engines?: { node?: string } }): string {
  const major = /(\d+)/.exec(pkg.engines?.node ?? '')?.[1];
  if (!major) throw new Error('package.json has no engines.node to take the Node.js target from');
  return `node${major}`;
}

async function common(): Promise<BuildOptions> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    engines?: { node?: string };
  };
  return {
    bundle: true,
    platform: 'node',
    target: nodeTarget(pkg),
    format: 'esm',
    banner: BANNER,
    logLevel: 'warning',
    legalComments: 'none',
    define: {
      KONDUCTOR_AGENT_VERSION: JSON.stringify(pkg.version),
      KONDUCTOR_KUBECONFIG_RESOLVER: JSON.stringify('./kubeconfig-resolver.js'),
    },
  };
}

/** Bundles sidecar/main.ts into dist/konductor-agent.js (no external packages: the image has only node). */
export async function buildAgent(): Promise<BuiltFile> {
  await buildAtomically({
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
  return { path: AGENT_BUNDLE, bytes: (await stat(AGENT_BUNDLE)).size };
}

/** Bundles cmd/konductor.ts into dist/konductor.js, or returns undefined if it does not exist yet. */
export async function buildManager(): Promise<BuiltFile | undefined> {
  if (!(await exists(MANAGER_ENTRY))) return undefined;
  await mkdir(dirname(MANAGER_BUNDLE), { recursive: true });
  await buildAtomically({
    ...(await common()),
    entryPoints: [MANAGER_ENTRY],
    outfile: MANAGER_BUNDLE,
    packages: 'external',
    sourcemap: 'linked',
  });
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

/** CommonJS dependencies bundled into an ES module need `require`. */
const REQUIRE_BANNER = {
  js: `${BANNER.js}\nimport { createRequire as __konductorRequire } from 'node:module';\nconst require = __konductorRequire(import.meta.url);`,
};

/**
 * undici is what @kubernetes/client-node's own request layer sends with (fetch, dispatchers); konductor's
 * transport is api/kubeClient.ts and only KubeConfig's resolution is used, so the bundles get a stand-in
 * that fails loudly if anything ever calls it (and load 0.1 s faster, 0.8 MiB smaller).
 */
const UNDICI_STANDIN: Plugin = {
  name: 'undici-stand-in',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, (args) => ({
      path: args.path,
      namespace: 'undici-stand-in',
    }));
    b.onLoad({ filter: /.*/, namespace: 'undici-stand-in' }, () => ({
      loader: 'js',
      contents: `const no = (what) => { throw new Error(what + ' (undici) is not bundled: konductor sends requests with api/kubeClient.ts'); };
export class Agent { constructor() { no('Agent'); } }
export class ProxyAgent { constructor() { no('ProxyAgent'); } }
export const fetch = () => no('fetch');
export class Headers { constructor() { no('Headers'); } }
export class Request { constructor() { no('Request'); } }
export class Response { constructor() { no('Response'); } }
export class FormData { constructor() { no('FormData'); } }`,
    }));
  },
};

/** Bundles one self-contained entry (every package inside, tree-shaken). */
async function buildStandalone(entry: string, outfile: string): Promise<BuiltFile> {
  await mkdir(dirname(outfile), { recursive: true });
  await buildAtomically({
    ...(await common()),
    entryPoints: [entry],
    outfile,
    packages: 'bundle',
    minify: true,
    banner: REQUIRE_BANNER,
    plugins: [UNDICI_STANDIN],
  });
  return { path: outfile, bytes: (await stat(outfile)).size };
}

/** dist/kubeconfig-resolver.js: the manager runs it to resolve its kubeconfig (api/kubeconfigSource.ts). */
export const buildResolver = () => buildStandalone(RESOLVER_ENTRY, RESOLVER_BUNDLE);
/** dist/kubectl-konductor.js: the kubectl plugin, one file that needs only node (package.json bin). */
export const buildPlugin = () => buildStandalone(PLUGIN_ENTRY, PLUGIN_BUNDLE);

export async function buildAll(): Promise<BuildResult> {
  const [agent, manager, resolver, plugin] = await Promise.all([
    buildAgent(),
    buildManager(),
    buildResolver(),
    buildPlugin(),
  ]);
  return { agent, manager, resolver, plugin };
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
    ({ agent, manager, resolver, plugin }) => {
      console.log(`built ${describe(agent)}`);
      console.log(`built ${describe(resolver)}`);
      console.log(`built ${describe(plugin)}`);
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
