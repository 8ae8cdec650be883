/**
 * Agent startup and memory (DESIGN §8: process start -> first request <= 60 ms; RSS <= 40 MiB), by
 * bench/agent-startup.ts (its header states the method), run as a child process so its process-wide
 * state stays its own. This wrapper picks the run count by mode and puts its figures in the common
 * result format (bench/results/agent.json; the raw output is agent-startup.json).
 *
 * Both agent modes: `wait` is measured by agent-startup.ts; `hold` here, against the same HTTPS fake
 * manager (test/helpers/fakeManager.ts): spawn `konductor-agent hold` with a grant.json in place, time
 * spawn -> its `holding ...` line (it then idles), read VmHWM, send SIGTERM and time SIGTERM -> the
 * manager having its POST /v1/release (the hold's share of a handoff), check it exits 0. Each run is
 * followed by its floor (a bare `node -e` that makes the same release call): ratios are per pair.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AGENT_BUNDLE, buildAgent, ROOT } from '../scripts/build.ts';
import {
  agentEnv,
  createSandbox,
  createTestPki,
  grantOf,
  SEMAPHORE,
  runAgent as spawnAgent,
  startFakeManager,
} from '../test/helpers/fakeManager.ts';
import {
  type BenchOptions,
  byMode,
  describeEnvironment,
  environment,
  type Figure,
  printFigures,
  round,
  summarize,
  writeResult,
} from './common.ts';
import { alternate, flooredFigure, pairedRatio } from './floors.ts';

/**
 * The floor of the hold mode: a bare `node -e` that prints a line, idles, and on SIGTERM makes the same
 * release call with node:https (a fresh TLS connection with the injected CA) and exits.
 */
const BARE_HOLD_SCRIPT = `const https = require('node:https');
const keep = setInterval(() => {}, 1e9);
process.once('SIGTERM', () => {
  const req = https.request(process.env.KONDUCTOR_URL + '/v1/release', { method: 'POST', ca: process.env.KONDUCTOR_CA_BUNDLE,
    agent: false, headers: { 'content-type': 'application/json', authorization: 'Bearer x' } }, (res) => {
    res.resume();
    res.on('end', () => { clearInterval(keep); process.exit(0); });
  });
  req.end('{}');
});
process.stdout.write('holding\\n');`;

interface HoldRun {
  readyMs: number;
  vmHwmMiB: number;
  sigtermToReleaseMs: number;
}

/** One hold (the agent, or the bare floor): spawn -> holding line, VmHWM while idle, SIGTERM -> release. */
async function holdOnce(
  manager: Awaited<ReturnType<typeof startFakeManager>>,
  i: number,
  argv: { bundle: string; args: string[] } | { script: string },
): Promise<HoldRun> {
  const sandbox = createSandbox();
  writeFileSync(join(sandbox.dir, 'grant.json'), JSON.stringify({ grants: [grantOf(SEMAPHORE, i + 1)] }));
  let releasedAt = 0;
  manager.handle((req, res) => {
    releasedAt = req.at;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ released: [{ ...SEMAPHORE, token: i + 1 }] }));
  });
  const run =
    'bundle' in argv
      ? spawnAgent(argv.bundle, argv.args, agentEnv(manager, sandbox))
      : spawnAgent('-e', [argv.script], agentEnv(manager, sandbox));
  await run.output(/holding/);
  const readyMs = performance.now() - run.spawnedAt;
  const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
  const vmHwmMiB = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
  const termAt = performance.now();
  run.child.kill('SIGTERM');
  const { code } = await run.exited;
  sandbox.remove();
  if (code !== 0) throw new Error(`hold run ${i} exited ${code}: ${run.stderr()}`);
  return { readyMs, vmHwmMiB, sigtermToReleaseMs: releasedAt - termAt };
}

/** `konductor-agent hold` and its bare floor, alternated run by run. */
async function measureHold(runs: number) {
  await buildAgent();
  const pki = await createTestPki();
  const manager = await startFakeManager(pki);
  try {
    const r = await alternate(
      runs,
      (i) => holdOnce(manager, i, { bundle: AGENT_BUNDLE, args: ['hold'] }),
      (i) => holdOnce(manager, i, { script: BARE_HOLD_SCRIPT }),
    );
    const s = (runs: HoldRun[]) => ({
      readyMs: summarize(
        runs.map((x) => x.readyMs),
        1,
      ),
      vmHwmMiB: summarize(
        runs.map((x) => x.vmHwmMiB),
        1,
      ),
      sigtermToReleaseMs: summarize(
        runs.map((x) => x.sigtermToReleaseMs),
        1,
      ),
    });
    const ratio = (f: (x: HoldRun) => number) => round(pairedRatio(r.ours.map(f), r.floor.map(f)), 3);
    return {
      agent: s(r.ours),
      floor: s(r.floor),
      ratios: {
        readyMs: ratio((x) => x.readyMs),
        vmHwmMiB: ratio((x) => x.vmHwmMiB),
        sigtermToReleaseMs: ratio((x) => x.sigtermToReleaseMs),
      },
    };
  } finally {
    await manager.close();
  }
}

interface AgentStartupJson {
  runs: number;
  bundleBytes: number;
  agent: {
    firstRequestMs: { p50: number; p95: number; min: number; max: number };
    grantToExitMs: { p50: number };
    vmHwmMiB: { p50: number; p95: number };
    rssAnonMiB: { p50: number };
    rssFileMiB: { p50: number };
  };
  bareNode: {
    readyMs: { p50: number; p95: number };
    messageToExitMs: { p50: number };
    vmHwmMiB: { p50: number };
  };
  pairedRatios: { firstRequestToReady: number; grantToExitToMessageToExit: number; vmHwm: number };
  method: string;
}

function runChild(args: string[], env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) log(`  | ${line}`);
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`)),
    );
  });
}

/** The agent's targets as ratios to a bare node (docs/benchmarks.md). */
export const AGENT_RATIO_TARGETS = { startup: 3, rss: 1.3 };

export async function runAgent(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const runs = byMode(opts.mode, { full: 30, quick: 15, tiny: 2 });
  opts.log(`agent: ${runs} runs of konductor-agent wait (bench/agent-startup.ts)`);
  await mkdir(opts.resultsDir, { recursive: true });
  await runChild(
    [join(ROOT, 'bench', 'agent-startup.ts'), String(runs)],
    { ...process.env, KONDUCTOR_BENCH_RESULTS_DIR: opts.resultsDir },
    opts.log,
  );
  const raw = JSON.parse(
    await readFile(join(opts.resultsDir, 'agent-startup.json'), 'utf8'),
  ) as AgentStartupJson;
  const a = raw.agent;
  opts.log(`agent: ${runs} runs of konductor-agent hold`);
  const hold = await measureHold(runs);
  const b = raw.bareNode;
  const bare = 'bare `node -e` (same binary), alternated run by run';
  const bareHold = 'bare `node -e` making the same release call with node:https, alternated';
  const figures: Figure[] = [
    flooredFigure({
      name: 'wait: start -> first request p50',
      value: a.firstRequestMs.p50,
      floor: b.readyMs.p50,
      ratio: raw.pairedRatios.firstRequestToReady,
      unit: 'ms',
      floorName: `${bare}: spawn -> first output`,
      target: '<= 60 ms',
      meetsTarget: a.firstRequestMs.p50 <= 60,
      ratioTarget: { max: AGENT_RATIO_TARGETS.startup },
    }),
    flooredFigure({
      name: 'wait: start -> first request p95',
      value: a.firstRequestMs.p95,
      floor: b.readyMs.p95,
      unit: 'ms',
      floorName: `${bare}: spawn -> first output p95`,
    }),
    flooredFigure({
      name: 'wait: peak RSS (VmHWM) p50',
      value: a.vmHwmMiB.p50,
      floor: b.vmHwmMiB.p50,
      ratio: raw.pairedRatios.vmHwm,
      unit: 'MiB',
      floorName: `${bare}: VmHWM`,
      target: '<= 40 MiB',
      meetsTarget: a.vmHwmMiB.p50 <= 40,
      ratioTarget: { max: AGENT_RATIO_TARGETS.rss },
    }),
    flooredFigure({
      name: 'wait: grant -> process exited p50',
      value: a.grantToExitMs.p50,
      floor: b.messageToExitMs.p50,
      ratio: raw.pairedRatios.grantToExitToMessageToExit,
      unit: 'ms',
      floorName: `${bare}: line on stdin -> process exited`,
    }),
    flooredFigure({
      name: 'hold: start -> holding p50',
      value: hold.agent.readyMs.p50,
      floor: hold.floor.readyMs.p50,
      ratio: hold.ratios.readyMs,
      unit: 'ms',
      floorName: `${bareHold}: spawn -> first output`,
    }),
    flooredFigure({
      name: 'hold: peak RSS (VmHWM) p50',
      value: hold.agent.vmHwmMiB.p50,
      floor: hold.floor.vmHwmMiB.p50,
      ratio: hold.ratios.vmHwmMiB,
      unit: 'MiB',
      floorName: `${bareHold}: VmHWM`,
      target: '<= 40 MiB',
      meetsTarget: hold.agent.vmHwmMiB.p50 <= 40,
      ratioTarget: { max: AGENT_RATIO_TARGETS.rss },
    }),
    flooredFigure({
      name: 'hold: SIGTERM -> release request p50',
      value: hold.agent.sigtermToReleaseMs.p50,
      floor: hold.floor.sigtermToReleaseMs.p50,
      ratio: hold.ratios.sigtermToReleaseMs,
      unit: 'ms',
      floorName: `${bareHold}: SIGTERM -> request`,
    }),
  ];
  opts.log(`method: ${raw.method}`);
  opts.log(`machine: ${describeEnvironment(env)}`);
  printFigures(opts.log, figures);
  const path = await writeResult(opts, {
    benchmark: 'agent',
    mode: opts.mode,
    environment: env,
    method: `${raw.method}. The hold mode is the same bundle and start-up path; see docs/benchmarks.md.`,
    parameters: { runs, bundleBytes: raw.bundleBytes, warmup: 0 },
    figures,
    details: { agentStartup: raw, hold },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  opts.log(`wrote ${path}`);
}
