/**
 * Agent startup and memory (DESIGN §8: process start -> first request <= 60 ms; RSS <= 40 MiB), by
 * bench/agent-startup.ts (its header states the method), run as a child process so its process-wide
 * state stays its own. This wrapper picks the run count by mode and puts its figures in the common
 * result format (bench/results/agent.json; the raw output is agent-startup.json).
 *
 * Both agent modes: `wait` is measured by agent-startup.ts; `hold` here, against the same HTTPS fake
 * manager (test/helpers/fakeManager.ts): spawn `konductor-agent hold` with a grant.json in place, time
 * spawn -> its `holding ...` line (it then idles), read VmHWM, send SIGTERM and time SIGTERM -> the
 * manager having its POST /v1/release (the hold's share of a handoff), check it exits 0.
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

/** `konductor-agent hold`: spawn -> holding line, VmHWM while idle, SIGTERM -> release request. */
async function measureHold(runs: number) {
  await buildAgent();
  const pki = await createTestPki();
  const manager = await startFakeManager(pki);
  const readyMs: number[] = [];
  const hwmMiB: number[] = [];
  const releaseMs: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const sandbox = createSandbox();
      writeFileSync(join(sandbox.dir, 'grant.json'), JSON.stringify({ grants: [grantOf(SEMAPHORE, i + 1)] }));
      let releasedAt = 0;
      manager.handle((req, res) => {
        releasedAt = req.at;
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ released: [{ ...SEMAPHORE, token: i + 1 }] }));
      });
      const run = spawnAgent(AGENT_BUNDLE, ['hold'], agentEnv(manager, sandbox));
      await run.output(/holding /);
      readyMs.push(performance.now() - run.spawnedAt);
      const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
      hwmMiB.push(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024);
      const termAt = performance.now();
      run.child.kill('SIGTERM');
      const { code } = await run.exited;
      sandbox.remove();
      if (code !== 0) throw new Error(`hold run ${i} exited ${code}: ${run.stderr()}`);
      releaseMs.push(releasedAt - termAt);
    }
  } finally {
    await manager.close();
  }
  return {
    readyMs: summarize(readyMs, 1),
    vmHwmMiB: summarize(hwmMiB, 1),
    sigtermToReleaseMs: summarize(releaseMs, 1),
  };
}

interface AgentStartupJson {
  runs: number;
  bundleBytes: number;
  agent: {
    firstRequestMs: { p50: number; p95: number; min: number; max: number };
    vmHwmMiB: { p50: number; p95: number };
    rssAnonMiB: { p50: number };
    rssFileMiB: { p50: number };
  };
  bareNode: { readyMs: { p50: number; p95: number }; vmHwmMiB: { p50: number } };
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
  const figures: Figure[] = [
    {
      name: 'wait: start -> first request p50',
      value: a.firstRequestMs.p50,
      unit: 'ms',
      target: '<= 60 ms',
      meetsTarget: a.firstRequestMs.p50 <= 60,
    },
    { name: 'wait: start -> first request p95', value: a.firstRequestMs.p95, unit: 'ms' },
    {
      name: 'wait: peak RSS (VmHWM) p50',
      value: a.vmHwmMiB.p50,
      unit: 'MiB',
      target: '<= 40 MiB',
      meetsTarget: a.vmHwmMiB.p50 <= 40,
    },
    { name: 'hold: start -> holding p50', value: hold.readyMs.p50, unit: 'ms' },
    {
      name: 'hold: peak RSS (VmHWM) p50',
      value: hold.vmHwmMiB.p50,
      unit: 'MiB',
      target: '<= 40 MiB',
      meetsTarget: hold.vmHwmMiB.p50 <= 40,
    },
    { name: 'hold: SIGTERM -> release request p50', value: hold.sigtermToReleaseMs.p50, unit: 'ms' },
    { name: 'bare node spawn -> first output p50 (floor)', value: raw.bareNode.readyMs.p50, unit: 'ms' },
    { name: 'bare node VmHWM p50 (floor)', value: raw.bareNode.vmHwmMiB.p50, unit: 'MiB' },
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
