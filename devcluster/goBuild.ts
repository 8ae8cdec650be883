/**
 * Running the Go toolchain for a tool set: go build with the module proxy's environment, its output kept,
 * and a failure that names the packages and the last lines.
 */
import { spawn } from 'node:child_process';
import { type KonductorError, konductorError } from '../api/errors.ts';
import type { GoToolset } from './goToolsets.ts';

export interface GoRunResult {
  code: number;
  tail: string[];
}

/** Runs `go <args>` in the module; every output line goes to onLine; a heartbeat line every heartbeatMs. */
export async function runGo(
  toolset: GoToolset,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: (l: string) => void,
  heartbeatMs: number,
  onLine: (line: string) => boolean,
  heartbeat: (elapsedSeconds: number) => string,
): Promise<GoRunResult> {
  const tail: string[] = [];
  const started = Date.now();
  const child = spawn('go', args, {
    cwd: toolset.moduleDir,
    env: { ...env, ...toolset.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (() => {
    let buf = '';
    return (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        // onLine returns true for progress lines (package paths); the rest is kept for errors.
        if (onLine(line) || !line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    };
  })();
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setInterval(
    () => log(`  ... ${heartbeat(Math.round((Date.now() - started) / 1000))}`),
    heartbeatMs,
  );
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  }).finally(() => clearInterval(timer));
  return { code, tail };
}

export const isPackageLine = (line: string) => /^[\w.\-/~]+$/.test(line.trim());

export function buildFailed(toolset: GoToolset, args: string[], res: GoRunResult): KonductorError {
  return konductorError(
    'KDR_DEVCLUSTER_BUILD_FAILED',
    [
      `building the ${toolset.id} tools (${toolset.binaries.join(', ')}) with Go failed (exit ${res.code}).`,
      `Last output of \`go ${args.slice(0, 2).join(' ')} ...\` in ${toolset.moduleDir}:`,
      ...res.tail.map((l) => `  ${l}`),
      'What to do: check network access to the Go module proxy (GOPROXY) and disk space, then re-run;',
      'or point KUBEBUILDER_ASSETS / KONDUCTOR_K8S_BIN at a directory with prebuilt binaries.',
    ].join('\n'),
  );
}

/** Phase 1: resolve (download) the modules and count the packages; phase 2: compile and link. */
export async function runGoBuild(
  toolset: GoToolset,
  outDir: string,
  log: (l: string) => void,
  heartbeatMs: number,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  log(`  phase 1/3: resolving Go modules (downloaded on first use) in ${toolset.moduleDir}`);
  let total = 0;
  let downloaded = 0;
  const listArgs = [
    'list',
    '-deps',
    ...(toolset.tags?.length ? ['-tags', toolset.tags.join(',')] : []),
    ...toolset.packages,
  ];
  const listed = await runGo(
    toolset,
    listArgs,
    env,
    log,
    heartbeatMs,
    (line) => {
      if (isPackageLine(line)) {
        total++;
        return true;
      }
      if (line.startsWith('go: downloading ')) downloaded++;
      return false;
    },
    (s) => `${s} s: ${downloaded} modules downloaded`,
  );
  if (listed.code !== 0) throw buildFailed(toolset, listArgs, listed);

  log(`  phase 2/3: compiling up to ${total} packages and linking ${toolset.binaries.length} binaries`);
  let compiled = 0;
  const buildArgs = [
    'build',
    '-v',
    '-trimpath',
    ...(toolset.tags?.length ? ['-tags', toolset.tags.join(',')] : []),
    '-ldflags',
    toolset.ldflags,
    '-o',
    `${outDir}/`,
    ...toolset.packages,
  ];
  const built = await runGo(
    toolset,
    buildArgs,
    env,
    log,
    heartbeatMs,
    (line) => {
      if (!isPackageLine(line)) return false;
      compiled++;
      return true;
    },
    (s) =>
      compiled < total
        ? `${s} s: ${compiled}/${total} packages compiled`
        : `${s} s: ${compiled} packages compiled, linking`,
  );
  if (built.code !== 0) throw buildFailed(toolset, buildArgs, built);
}
