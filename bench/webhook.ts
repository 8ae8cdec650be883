/**
 * Webhook speed (DESIGN §8: >= 5,000 req/s on one core; p99 <= 2 ms at 1,000 req/s), beside its floor.
 *
 * Method: bench/webhook-server.ts (the manager's fastify app and routes, HTTPS) and its floor,
 * bench/webhook-floor-server.ts (a bare fastify HTTPS server answering the same AdmissionReview with a fixed
 * response: the webhook's own answer, captured first), run side by side, each alone in its process, both
 * pinned to core 0 with `taskset -c 0`; the load generator (bench/webhook-load.ts) runs in another process
 * pinned to core 1, TLS with keep-alive, 10 connections. Bodies: AdmissionReviews of test/fixtures/admission
 * (a Job's pod; a large pod: 10 containers, 500 env vars). Per fixture: a warm-up of each, then rounds that
 * alternate webhook and floor (ours, floor, ours, floor, ...) so that the machine's load hits both alike:
 * runs as fast as possible (autocannon; req/s, and the server's CPU time per request from /proc, which does
 * not depend on how much of the core the server got), then runs at a fixed 1,000 and 500 req/s with a paced
 * open-loop generator (latency percentiles). Figures: the median over the rounds, the floor's median, and
 * the median of each round's ratio (ours / the floor run right after it).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../scripts/build.ts';
import { createTestPki } from '../test/helpers/fakeManager.ts';
import {
  type BenchOptions,
  byMode,
  describeEnvironment,
  environment,
  type Figure,
  printFigures,
  procSample,
  round,
  type Summary,
  summarize,
  writeResult,
} from './common.ts';
import { alternate, flooredFigure, median, pairedRatio } from './floors.ts';
import { type ProfileSummary, profileProcess } from './profile.ts';
import type { ServerStats } from './serverStats.ts';
import type { LoadResult, LoadSpec } from './webhook-load.ts';

export const FIXTURES = {
  'job-pod': join(ROOT, 'test', 'fixtures', 'admission', 'pod-job.json'),
  'large-pod': join(ROOT, 'test', 'fixtures', 'admission', 'pod-big.json'),
} as const;
const RATES = [1000, 500];
const CONNECTIONS = 10;
export const WEBHOOK_SERVER = join(ROOT, 'bench', 'webhook-server.ts');
export const FLOOR_SERVER = join(ROOT, 'bench', 'webhook-floor-server.ts');

export function hasTaskset(): boolean {
  return spawnSync('taskset', ['-c', '0', 'true']).status === 0;
}

function pinned(core: number, argv: string[], pin: boolean): [string, string[]] {
  return pin ? ['taskset', ['-c', String(core), ...argv]] : [argv[0] as string, argv.slice(1)];
}

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  pid: number;
  logPath: string;
  /** Server-side stats since the previous call (GC pauses, event-loop delay). */
  stats(): Promise<ServerStats>;
}

/** Starts a server script (`node SCRIPT ...args`, prints `{"port":N}`) pinned to core 0. */
export async function startServer(
  script: string,
  args: string[],
  logPath: string,
  pin: boolean,
): Promise<ServerProcess> {
  const [cmd, argv] = pinned(0, [process.execPath, script, ...args], pin);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', openSync(logPath, 'a')] });
  if (!child.stdout) throw new Error('webhook server: no stdout pipe');
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}; log ${logPath}`))),
  );
  exited.catch(() => undefined);
  const first = new Promise<string>((resolve) => {
    const poll = () => (lines.length ? resolve(lines[0] as string) : setTimeout(poll, 10));
    poll();
  });
  const { port } = JSON.parse(await Promise.race([first, exited])) as { port: number };
  const stats = async (): Promise<ServerStats> => {
    const n = lines.length;
    child.kill('SIGUSR2');
    const deadline = Date.now() + 5000;
    while (lines.length === n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return JSON.parse(lines[lines.length - 1] ?? '{}') as ServerStats;
  };
  return { child, port, pid: child.pid ?? 0, logPath, stats };
}

/** Voluntary and involuntary (preempted by another process) context switches of a process. */
function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const n = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { voluntary: n('voluntary_ctxt_switches'), involuntary: n('nonvoluntary_ctxt_switches') };
}

/** Runs the load generator (pinned to core 1) once. */
export function load(spec: LoadSpec, pin: boolean): Promise<LoadResult> {
  const [cmd, args] = pinned(
    1,
    [process.execPath, join(ROOT, 'bench', 'webhook-load.ts'), JSON.stringify(spec)],
    pin,
  );
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`load generator exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

/** One request; checks that the answer is an allowed AdmissionReview with a patch and returns its body. */
export function checkOnce(port: number, ca: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => {
          const review = JSON.parse(text) as { response?: { allowed?: boolean; patch?: string } };
          if (res.statusCode === 200 && review.response?.allowed && review.response.patch) resolve(text);
          else reject(new Error(`unexpected admission answer ${res.statusCode}: ${text.slice(0, 300)}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A fresh CA and serving certificate for 127.0.0.1 in `dir` (tls.crt, tls.key, ca.crt); returns the CA PEM. */
export async function writeBenchCerts(dir: string): Promise<string> {
  const pki = await createTestPki();
  writeFileSync(join(dir, 'tls.crt'), pki.certPem);
  writeFileSync(join(dir, 'tls.key'), pki.keyPem);
  writeFileSync(join(dir, 'ca.crt'), pki.caPem);
  return pki.caPem;
}

export function loadSpec(
  port: number,
  certDir: string,
  bodyFile: string,
  durationSeconds: number,
  rate?: number,
): LoadSpec {
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: join(certDir, 'ca.crt'),
    bodyFile,
    connections: CONNECTIONS,
    durationSeconds,
    generator: rate ? 'paced' : 'autocannon',
    ...(rate ? { overallRate: rate } : {}),
  };
}

export interface MaxRun {
  reqPerSec: number;
  requests: number;
  /** Server CPU time per request (/proc/<pid>/stat utime+stime). */
  serverCpuUsPerRequest: number;
  /** Share of one core the server got during the run. */
  serverCoreShare: number;
  generatorCoreShare: number;
  errors: number;
  non2xx: number;
}

/** As fast as possible: req/s, and the server's CPU time per request. */
export async function maxRun(server: ServerProcess, spec: LoadSpec, pin: boolean): Promise<MaxRun> {
  const before = procSample(server.pid).cpuSeconds;
  const r = await load(spec, pin);
  const cpu = procSample(server.pid).cpuSeconds - before;
  return {
    reqPerSec: round(r.reqPerSec, 0),
    requests: r.requests,
    serverCpuUsPerRequest: round((cpu / Math.max(1, r.requests)) * 1e6, 1),
    serverCoreShare: round(cpu / spec.durationSeconds, 2),
    generatorCoreShare: round((r.generatorCpuSeconds ?? Number.NaN) / spec.durationSeconds, 2),
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

export interface PacedRun {
  rate: number;
  achievedReqPerSec: number;
  /** response end - send. */
  latencyMs: Summary;
  /** response end - scheduled send (coordinated omission corrected). */
  latencyFromScheduleMs: Summary;
  slowerThan2Ms: number;
  errors: number;
  non2xx: number;
  server: ServerStats & {
    involuntaryContextSwitches: number;
    serverCoreShare: number;
    /** Server CPU time per request at this fixed rate (the same batching for webhook and floor). */
    serverCpuUsPerRequest: number;
  };
}

/** At a fixed rate (paced open loop): latency percentiles, with what the server saw meanwhile. */
export async function pacedRun(server: ServerProcess, spec: LoadSpec, pin: boolean): Promise<PacedRun> {
  await server.stats();
  const cs0 = contextSwitches(server.pid);
  const cpu0 = procSample(server.pid).cpuSeconds;
  const r = await load(spec, pin);
  const cpu = procSample(server.pid).cpuSeconds - cpu0;
  const cs1 = contextSwitches(server.pid);
  const serverStats = await server.stats();
  return {
    rate: spec.overallRate ?? 0,
    achievedReqPerSec: round(r.reqPerSec, 0),
    latencyMs: summarize(r.latencyMs, 3),
    latencyFromScheduleMs: summarize(r.latencyFromScheduleMs ?? [], 3),
    slowerThan2Ms: r.latencyMs.filter((l) => l > 2).length,
    errors: r.errors,
    non2xx: r.non2xx,
    server: {
      ...serverStats,
      involuntaryContextSwitches: cs1.involuntary - cs0.involuntary,
      serverCoreShare: round(cpu / spec.durationSeconds, 2),
      serverCpuUsPerRequest: round((cpu / Math.max(1, r.requests)) * 1e6, 1),
    },
  };
}

interface FixtureResult {
  fixture: string;
  bodyBytes: number;
  max: { ours: MaxRun[]; floor: MaxRun[] };
  paced: { rate: number; ours: PacedRun[]; floor: PacedRun[] }[];
  profile?: ProfileSummary;
}

const medianOf = <T>(runs: T[], f: (r: T) => number) => round(median(runs.map(f)), 3);
const ratioOf = <T>(a: T[], b: T[], f: (r: T) => number) => pairedRatio(a.map(f), b.map(f));

export async function runWebhook(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const maxSeconds = byMode(opts.mode, { full: 5, quick: 2, tiny: 1 });
  const pacedSeconds = byMode(opts.mode, { full: 5, quick: 2, tiny: 1 });
  const rounds = byMode(opts.mode, { full: 4, quick: 2, tiny: 1 });
  const warmup = byMode(opts.mode, { full: 3, quick: 1, tiny: 1 });
  const pin = hasTaskset();
  const log = opts.log;
  log(
    `webhook: ${rounds} rounds of (webhook, floor) per figure, ${maxSeconds} s per run, ${warmup} s warm-up each, ` +
      `${CONNECTIONS} connections; servers pinned: ${pin}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'konductor-bench-webhook-'));
  const caPem = await writeBenchCerts(dir);
  const ours = await startServer(WEBHOOK_SERVER, [dir], join(dir, 'server.log'), pin);
  let floor: ServerProcess | undefined;
  const results: FixtureResult[] = [];
  try {
    // The floor answers each fixture with the webhook's own answer to it.
    const responses: Record<string, string> = {};
    for (const file of Object.values(FIXTURES)) {
      const body = readFileSync(file, 'utf8');
      const uid = (JSON.parse(body) as { request: { uid: string } }).request.uid;
      responses[uid] = await checkOnce(ours.port, caPem, body);
    }
    writeFileSync(join(dir, 'responses.json'), JSON.stringify(responses));
    floor = await startServer(FLOOR_SERVER, [dir, join(dir, 'responses.json')], join(dir, 'floor.log'), pin);
    const floorServer = floor;
    for (const [fixture, file] of Object.entries(FIXTURES)) {
      const body = readFileSync(file, 'utf8');
      await checkOnce(floorServer.port, caPem, body);
      const spec = (s: ServerProcess, seconds: number, rate?: number) =>
        loadSpec(s.port, dir, file, seconds, rate);
      await load(spec(ours, warmup), pin);
      await load(spec(floorServer, warmup), pin);
      let profile: ProfileSummary | undefined;
      const max = await alternate(
        rounds,
        async (i) => {
          if (!opts.profile || i > 0) return maxRun(ours, spec(ours, maxSeconds), pin);
          const p = await profileProcess(
            ours.pid,
            ours.logPath,
            join(opts.resultsDir, `webhook-${fixture}.cpuprofile`),
            () => maxRun(ours, spec(ours, maxSeconds), pin),
          );
          profile = p.profile;
          return p.result;
        },
        () => maxRun(floorServer, spec(floorServer, maxSeconds), pin),
      );
      const paced: FixtureResult['paced'] = [];
      for (const rate of RATES) {
        // The 1,000 req/s figure gets every round; 500 req/s is context (one round, two in full mode).
        const n = rate === 1000 ? rounds : Math.max(1, Math.floor(rounds / 2));
        const r = await alternate(
          n,
          () => pacedRun(ours, spec(ours, pacedSeconds, rate), pin),
          () => pacedRun(floorServer, spec(floorServer, pacedSeconds, rate), pin),
        );
        paced.push({ rate, ...r });
      }
      const res: FixtureResult = {
        fixture,
        bodyBytes: Buffer.byteLength(body),
        max,
        paced,
        ...(profile ? { profile } : {}),
      };
      results.push(res);
      const at1000 = paced[0];
      log(
        `  ${fixture} (${res.bodyBytes} B): max req/s ${max.ours.map((r) => r.reqPerSec).join(', ')} ` +
          `| floor ${max.floor.map((r) => r.reqPerSec).join(', ')}; CPU us/request ` +
          `${max.ours.map((r) => r.serverCpuUsPerRequest).join(', ')} | floor ` +
          `${max.floor.map((r) => r.serverCpuUsPerRequest).join(', ')}; server core share ` +
          `${max.ours.map((r) => r.serverCoreShare).join(', ')} | floor ${max.floor.map((r) => r.serverCoreShare).join(', ')}`,
      );
      if (at1000)
        log(
          `    @1000/s p99 ${at1000.ours.map((r) => r.latencyMs.p99).join(', ')} ms | floor ` +
            `${at1000.floor.map((r) => r.latencyMs.p99).join(', ')} ms; CPU us/request ` +
            `${at1000.ours.map((r) => r.server.serverCpuUsPerRequest).join(', ')} | floor ` +
            `${at1000.floor.map((r) => r.server.serverCpuUsPerRequest).join(', ')}; preemptions ` +
            `${at1000.ours.map((r) => r.server.involuntaryContextSwitches).join(', ')} | floor ` +
            `${at1000.floor.map((r) => r.server.involuntaryContextSwitches).join(', ')}`,
        );
    }
  } finally {
    ours.child.kill('SIGTERM');
    floor?.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const figures = webhookFigures(results);
  const method =
    `webhook server (the manager's fastify app + mutate routes, HTTPS, TLS 1.3, keep-alive) and its floor (a bare ` +
    "fastify HTTPS server answering the same AdmissionReview with the webhook's own answer, fixed) each alone in a process, " +
    `${pin ? 'both pinned to core 0 (taskset -c 0)' : 'NOT pinned (no taskset)'}; load generator in another process ` +
    `${pin ? 'pinned to core 1' : ''}, ${CONNECTIONS} connections; per fixture a ${warmup} s warm-up of each, then ${rounds} ` +
    `rounds alternating webhook and floor: ${maxSeconds} s as fast as possible (autocannon; server CPU time per request ` +
    `from /proc), then ${pacedSeconds} s at ${RATES.join(' and ')} req/s with a paced open-loop generator ` +
    '(bench/webhook-load.ts: request k sent at k/rate; latency = response end - send). Value and floor: medians over ' +
    'the rounds; ratio: median of the per-round ratios.';
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'webhook',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      rounds,
      maxSeconds,
      pacedSeconds,
      warmupSeconds: warmup,
      connections: CONNECTIONS,
      rates: RATES,
      pinned: pin,
    },
    figures,
    details: { fixtures: results },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}

/** The webhook's figures beside the floor's, from the A/B rounds. */
function webhookFigures(results: FixtureResult[]): Figure[] {
  const figures: Figure[] = [];
  const floorName = 'bare fastify HTTPS, fixed answer, same TLS/payload/core';
  for (const r of results) {
    const job = r.fixture === 'job-pod';
    const what = job ? 'Job pod' : r.fixture;
    const reqPerSec = (m: MaxRun) => m.reqPerSec;
    const cpuUs = (m: MaxRun) => m.serverCpuUsPerRequest;
    figures.push(
      flooredFigure({
        name: `webhook max req/s, one core (${what})`,
        value: medianOf(r.max.ours, reqPerSec),
        floor: medianOf(r.max.floor, reqPerSec),
        ratio: ratioOf(r.max.ours, r.max.floor, reqPerSec),
        unit: 'req/s',
        floorName,
        ...(job
          ? {
              target: '>= 5,000 req/s',
              meetsTarget: medianOf(r.max.ours, reqPerSec) >= 5000,
              ratioTarget: { min: WEBHOOK_RATIO_TARGETS.maxReqPerSec },
            }
          : {}),
      }),
      flooredFigure({
        name: `webhook server CPU per admission (${what})`,
        value: medianOf(r.max.ours, cpuUs),
        floor: medianOf(r.max.floor, cpuUs),
        ratio: ratioOf(r.max.ours, r.max.floor, cpuUs),
        unit: 'us',
        floorName,
        ...(job
          ? {
              target: '<= 200 us (5,000 req/s on a whole core)',
              meetsTarget: medianOf(r.max.ours, cpuUs) <= 200,
              ratioTarget: { max: WEBHOOK_RATIO_TARGETS.cpuPerAdmission },
            }
          : {}),
      }),
    );
    const at1000 = r.paced.find((p) => p.rate === 1000);
    if (!at1000) continue;
    const p99 = (p: PacedRun) => p.latencyMs.p99;
    const p50 = (p: PacedRun) => p.latencyMs.p50;
    figures.push(
      flooredFigure({
        name: `webhook p99 at 1,000 req/s (${what})`,
        value: medianOf(at1000.ours, p99),
        floor: medianOf(at1000.floor, p99),
        ratio: ratioOf(at1000.ours, at1000.floor, p99),
        unit: 'ms',
        floorName,
        ...(job
          ? {
              target: '<= 2 ms',
              meetsTarget: medianOf(at1000.ours, p99) <= 2,
              ratioTarget: { max: WEBHOOK_RATIO_TARGETS.p99At1000 },
            }
          : {}),
      }),
    );
    if (job)
      figures.push(
        flooredFigure({
          name: `webhook p50 at 1,000 req/s (${what})`,
          value: medianOf(at1000.ours, p50),
          floor: medianOf(at1000.floor, p50),
          ratio: ratioOf(at1000.ours, at1000.floor, p50),
          unit: 'ms',
          floorName,
        }),
      );
  }
  return figures;
}

/**
 * The webhook's targets as ratios to its floor (docs/benchmarks.md derives them from the absolute targets
 * and the floor on a quiet core of this machine).
 */
export const WEBHOOK_RATIO_TARGETS = { maxReqPerSec: 0.5, cpuPerAdmission: 2.5, p99At1000: 2 };
