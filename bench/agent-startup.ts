/**
 * Agent startup budget (DESIGN §8): process start -> first request <= 60 ms; RSS <= 40 MiB.
 *
 * Method: build dist/konductor-agent.js, start a local HTTPS stand-in for the manager's agent API
 * (test/helpers/fakeManager.ts, TLS with a generated CA exactly as in a pod), then N times, one at a
 * time: spawn `node dist/konductor-agent.js wait`, take the time from just before spawn() to the moment
 * the server has the POST /v1/wait request (headers and body; so it includes node boot, module load, TLS
 * handshake), answer with a `queued` event, wait until the agent printed its progress line (it is then
 * blocked waiting, the init container's steady state), read /proc/<pid>/status (VmHWM = peak RSS, and its
 * anonymous/file-backed split), then grant (granted + done) and time until the process has exited (it
 * writes grant.json on the way), checking it exits 0. The floor, run right after each agent run (agent,
 * floor, agent, floor, ...): a bare `node -e` that prints a line (spawn -> output, VmHWM) and exits when it
 * reads a line on stdin (line written -> process gone), the floor this node binary sets.
 *
 * Usage: node bench/agent-startup.ts [runs=30]. Prints p50/p95, writes bench/results/agent.json (or into
 * $KONDUCTOR_BENCH_RESULTS_DIR). `npm run bench -- agent` runs it through bench/agent.ts.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AGENT_BUNDLE, buildAgent, ROOT } from '../scripts/build.ts';
import {
  agentEnv,
  createSandbox,
  createTestPki,
  grantOf,
  runAgent,
  SEMAPHORE,
  startFakeManager,
  streamEvents,
} from '../test/helpers/fakeManager.ts';
import { pairedRatio } from './floors.ts';

const TARGET_FIRST_REQUEST_MS = 60;
const TARGET_RSS_MIB = 40;

interface MemorySample {
  vmHwmKiB: number;
  rssAnonKiB: number;
  rssFileKiB: number;
}

function readMemory(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { vmHwmKiB: field('VmHWM'), rssAnonKiB: field('RssAnon'), rssFileKiB: field('RssFile') };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

function summary(values: number[]) {
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    p50: round(percentile(values, 50)),
    p95: round(percentile(values, 95)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

/** The started fake manager and PKI shared by the agent's runs. */
type Manager = Awaited<ReturnType<typeof startFakeManager>>;

export interface AgentWaitRun {
  /** spawn() -> the server has POST /v1/wait. */
  firstRequestMs: number;
  /** The manager wrote `granted` + `done` -> the agent process has exited (grant.json written on the way). */
  grantToExitMs: number;
  memory: MemorySample;
}

/** One `konductor-agent wait`: start-up to first request, peak RSS while it blocks, grant to exit. */
export async function agentWaitOnce(manager: Manager, i: number): Promise<AgentWaitRun> {
  const sandbox = createSandbox();
  const grant = grantOf(SEMAPHORE, i + 1);
  let requestAt = 0;
  let grantedAt = 0;
  let memory: MemorySample | undefined;
  manager.handle((req, res) => {
    requestAt = req.at;
    streamEvents(res, [
      {
        type: 'queued',
        primitive: SEMAPHORE,
        position: 1,
        queueLength: 1,
        message: '',
        inUse: 1,
        capacity: 1,
      },
    ]);
    run.output(/position 1 of 1/).then(() => {
      if (run.child.pid !== undefined) memory = readMemory(run.child.pid);
      grantedAt = performance.now();
      streamEvents(
        res,
        [
          { type: 'granted', grant },
          { type: 'done', grants: [grant] },
        ],
        true,
      );
    });
  });
  const run = runAgent(AGENT_BUNDLE, ['wait'], agentEnv(manager, sandbox));
  const exitAt = new Promise<number>((resolve) => run.child.once('exit', () => resolve(performance.now())));
  const { code } = await run.exited;
  sandbox.remove();
  if (code !== 0 || !memory) throw new Error(`agent run ${i} exited ${code}: ${run.stderr()}`);
  return { firstRequestMs: requestAt - run.spawnedAt, grantToExitMs: (await exitAt) - grantedAt, memory };
}

/**
 * The floor of the agent: a bare `node -e` that prints a line (spawn -> output), then exits as soon as it
 * reads a line on stdin (line written -> process gone: the runtime's own receive-and-exit).
 */
export const BARE_NODE_SCRIPT =
  "process.stdout.write('ready\\n'); process.stdin.once('data', () => process.exit(0))";

export interface BareNodeRun {
  readyMs: number;
  messageToExitMs: number;
  memory: MemorySample;
}

export async function bareNodeOnce(): Promise<BareNodeRun> {
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', BARE_NODE_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const readyMs = performance.now() - started;
  const memory = readMemory(child.pid ?? 0);
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(performance.now())));
  const sentAt = performance.now();
  child.stdin.write('exit\n');
  const messageToExitMs = (await exited) - sentAt;
  return { readyMs, messageToExitMs, memory };
}

/** `runs` of the agent and of the bare node, alternated (agent, node, agent, node, ...). */
async function measure(runs: number) {
  const pki = await createTestPki();
  const manager = await startFakeManager(pki);
  const agent: AgentWaitRun[] = [];
  const bare: BareNodeRun[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      agent.push(await agentWaitOnce(manager, i));
      bare.push(await bareNodeOnce());
    }
  } finally {
    await manager.close();
  }
  return { agent, bare };
}

async function main() {
  const runs = Number(process.argv[2] ?? 30);
  const bundle = await buildAgent();
  const { agent, bare } = await measure(runs);
  const mib = (samples: MemorySample[], key: keyof MemorySample) =>
    summary(samples.map((s) => s[key] / 1024));
  const memory = (samples: MemorySample[]) => ({
    vmHwmMiB: mib(samples, 'vmHwmKiB'),
    rssAnonMiB: mib(samples, 'rssAnonKiB'),
    rssFileMiB: mib(samples, 'rssFileKiB'),
  });
  const pairRatio = (a: number[], b: number[]) => Math.round(pairedRatio(a, b) * 1000) / 1000;
  const result = {
    benchmark: 'agent-startup',
    method:
      'spawn `node dist/konductor-agent.js wait` against a local HTTPS fake manager; time = spawn() to the server ' +
      'having the POST /v1/wait request; memory = /proc/<pid>/status while the agent blocks in the wait ' +
      '(VmHWM = peak RSS so far); grant -> exit = the manager wrote granted+done -> the process exited. Floor, ' +
      'alternated run by run with the agent: a bare `node -e` that prints a line (spawn -> output, VmHWM) and exits ' +
      'on a line on stdin (line written -> process exited)',
    runs,
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    bundleBytes: bundle.bytes,
    targets: { firstRequestMs: TARGET_FIRST_REQUEST_MS, rssMiB: TARGET_RSS_MIB },
    agent: {
      firstRequestMs: summary(agent.map((r) => r.firstRequestMs)),
      grantToExitMs: summary(agent.map((r) => r.grantToExitMs)),
      ...memory(agent.map((r) => r.memory)),
    },
    bareNode: {
      readyMs: summary(bare.map((r) => r.readyMs)),
      messageToExitMs: summary(bare.map((r) => r.messageToExitMs)),
      ...memory(bare.map((r) => r.memory)),
    },
    /** Median over the runs of (agent run i) / (bare node run i). */
    pairedRatios: {
      firstRequestToReady: pairRatio(
        agent.map((r) => r.firstRequestMs),
        bare.map((r) => r.readyMs),
      ),
      grantToExitToMessageToExit: pairRatio(
        agent.map((r) => r.grantToExitMs),
        bare.map((r) => r.messageToExitMs),
      ),
      vmHwm: pairRatio(
        agent.map((r) => r.memory.vmHwmKiB),
        bare.map((r) => r.memory.vmHwmKiB),
      ),
    },
  };
  const a = result.agent;
  const b = result.bareNode;
  console.log(
    `agent startup (${runs} runs, node ${process.version}, ${result.cores} cores, bundle ${bundle.bytes} B)`,
  );
  console.log(`method: ${result.method}`);
  console.log(
    `  start -> first request  p50 ${a.firstRequestMs.p50} ms  p95 ${a.firstRequestMs.p95} ms  (target <= ${TARGET_FIRST_REQUEST_MS} ms)`,
  );
  console.log(
    `  peak RSS (VmHWM)        p50 ${a.vmHwmMiB.p50} MiB  p95 ${a.vmHwmMiB.p95} MiB  (target <= ${TARGET_RSS_MIB} MiB)`,
  );
  console.log(
    `    of which anonymous    p50 ${a.rssAnonMiB.p50} MiB; file-backed (node binary text) p50 ${a.rssFileMiB.p50} MiB`,
  );
  console.log(
    `  bare node: spawn -> first output p50 ${b.readyMs.p50} ms p95 ${b.readyMs.p95} ms; VmHWM p50 ${b.vmHwmMiB.p50} MiB`,
  );
  console.log(`    (anonymous ${b.rssAnonMiB.p50} MiB, file-backed ${b.rssFileMiB.p50} MiB)`);
  console.log(
    `  grant -> exit p50 ${a.grantToExitMs.p50} ms; bare node line -> exit p50 ${b.messageToExitMs.p50} ms`,
  );
  console.log(`  paired ratios (median of run i / bare run i): ${JSON.stringify(result.pairedRatios)}`);
  const out = join(
    process.env.KONDUCTOR_BENCH_RESULTS_DIR || join(ROOT, 'bench', 'results'),
    'agent-startup.json',
  );
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
