/**
 * Webhook speed (DESIGN §8: >= 5,000 req/s on one core; p99 <= 2 ms at 1,000 req/s).
 *
 * Method: bench/webhook-server.ts (the manager's fastify app and routes, HTTPS, caBundle read from the cert
 * directory at each admission as cmd/konductor.ts does) runs alone in its own process, pinned to core 0
 * with `taskset -c 0`; the load generator (bench/webhook-load.ts, autocannon over TLS with keep-alive)
 * runs in another process pinned to core 1. Bodies: AdmissionReviews of test/fixtures/admission (a Job's
 * pod; a large pod: 10 containers, 500 env vars, semaphore + barrier + gate). Per fixture: a warm-up
 * run (discarded), a run as fast as possible (max req/s, with the server's CPU use, which shows whether
 * the one core is saturated), then runs at fixed rates of 500 and 1,000 req/s for latency percentiles.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { generateCA, generateServingCert } from '../certs/generate.ts';
import { ROOT } from '../scripts/build.ts';
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
import { type ProfileSummary, profileProcess } from './profile.ts';
import type { LoadResult, LoadSpec } from './webhook-load.ts';

const FIXTURES = {
  'job-pod': join(ROOT, 'test', 'fixtures', 'admission', 'pod-job.json'),
  'large-pod': join(ROOT, 'test', 'fixtures', 'admission', 'pod-big.json'),
} as const;
const RATES = [500, 1000];
const CONNECTIONS = 10;

function hasTaskset(): boolean {
  return spawnSync('taskset', ['-c', '0', 'true']).status === 0;
}

function pinned(core: number, argv: string[], pin: boolean): [string, string[]] {
  return pin ? ['taskset', ['-c', String(core), ...argv]] : [argv[0] as string, argv.slice(1)];
}

async function startServer(certDir: string, logPath: string, pin: boolean) {
  const [cmd, args] = pinned(0, [process.execPath, join(ROOT, 'bench', 'webhook-server.ts'), certDir], pin);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', openSync(logPath, 'a')] });
  if (!child.stdout) throw new Error('webhook server: no stdout pipe');
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`webhook server exited ${code}; log ${logPath}`))),
  );
  const first = new Promise<string>((resolve) => {
    const poll = () => (lines.length ? resolve(lines[0] as string) : setTimeout(poll, 10));
    poll();
  });
  const { port } = JSON.parse(await Promise.race([first, exited])) as { port: number };
  /** Server-side stats since the previous call (GC pauses, event-loop delay, context switches). */
  const stats = async (): Promise<ServerStats> => {
    const n = lines.length;
    child.kill('SIGUSR2');
    const deadline = Date.now() + 5000;
    while (lines.length === n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return JSON.parse(lines[lines.length - 1] ?? '{}') as ServerStats;
  };
  return { child, port, pid: child.pid ?? 0, stats };
}

interface ServerStats {
  gc: { count: number; totalMs: number; maxMs: number; over1Ms: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

/** Voluntary and involuntary (preempted by another process) context switches of a process. */
function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const n = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { voluntary: n('voluntary_ctxt_switches'), involuntary: n('nonvoluntary_ctxt_switches') };
}

function load(spec: LoadSpec, pin: boolean): Promise<LoadResult> {
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

/** One request, to check that the answer is an allowed AdmissionReview with a patch. */
function checkOnce(port: number, ca: string, body: string): Promise<void> {
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
          if (res.statusCode === 200 && review.response?.allowed && review.response.patch) resolve();
          else reject(new Error(`unexpected admission answer ${res.statusCode}: ${text.slice(0, 300)}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface FixtureResult {
  fixture: string;
  bodyBytes: number;
  max: { reqPerSec: number; latencyMs: Summary; serverCpuCoresUsed: number; errors: number; non2xx: number };
  fixedRates: {
    rate: number;
    achievedReqPerSec: number;
    /** Paced open-loop generator: response end - send. */
    latencyMs: Summary;
    /** Paced: response end - scheduled send (coordinated omission corrected). */
    latencyFromScheduleMs: Summary;
    errors: number;
    non2xx: number;
    /** autocannon with overallRate (a per-second burst quota), for comparison. */
    autocannonOverallRate?: { latencyMs: Summary; achievedReqPerSec: number };
    /** During the paced run. */
    server: ServerStats & { involuntaryContextSwitches: number; voluntaryContextSwitches: number };
    slowerThan2Ms: number;
  }[];
  profile?: ProfileSummary;
}

export async function runWebhook(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const duration = byMode(opts.mode, { full: 10, quick: 3, tiny: 1 });
  const warmup = byMode(opts.mode, { full: 3, quick: 1, tiny: 1 });
  // autocannon's overallRate (a burst quota, see webhook-load.ts) is run for comparison in full mode only.
  const compareBursts = opts.mode === 'full';
  const pin = hasTaskset();
  const log = opts.log;
  log(
    `webhook: ${duration} s per run, ${warmup} s warm-up, ${CONNECTIONS} connections; server pinned: ${pin}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'konductor-bench-webhook-'));
  const ca = await generateCA({ commonName: 'konductor-bench-ca', validityDays: 1 });
  const serving = await generateServingCert({
    ca,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    validityDays: 1,
  });
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem);
  writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  const serverLog = join(dir, 'server.log');
  const server = await startServer(dir, serverLog, pin);
  const results: FixtureResult[] = [];
  try {
    for (const [fixture, file] of Object.entries(FIXTURES)) {
      const body = readFileSync(file, 'utf8');
      await checkOnce(server.port, ca.certPem, body);
      const spec = (
        durationSeconds: number,
        overallRate?: number,
        generator: LoadSpec['generator'] = 'autocannon',
      ): LoadSpec => ({
        url: `https://127.0.0.1:${server.port}`,
        caFile: join(dir, 'ca.crt'),
        bodyFile: file,
        connections: CONNECTIONS,
        durationSeconds,
        generator,
        ...(overallRate ? { overallRate } : {}),
      });
      await load(spec(warmup), pin);
      const maxRun = async () => {
        const before = procSample(server.pid);
        const r = await load(spec(duration), pin);
        const cpu = procSample(server.pid).cpuSeconds - before.cpuSeconds;
        return { r, cpu };
      };
      let profile: ProfileSummary | undefined;
      let max: Awaited<ReturnType<typeof maxRun>>;
      if (opts.profile) {
        const p = await profileProcess(
          server.pid,
          serverLog,
          join(opts.resultsDir, `webhook-${fixture}.cpuprofile`),
          maxRun,
        );
        max = p.result;
        profile = p.profile;
      } else {
        max = await maxRun();
      }
      const fixedRates: FixtureResult['fixedRates'] = [];
      for (const rate of RATES) {
        await server.stats();
        const cs0 = contextSwitches(server.pid);
        const r = await load(spec(duration, rate, 'paced'), pin);
        const cs1 = contextSwitches(server.pid);
        const serverStats = await server.stats();
        const burst = compareBursts ? await load(spec(duration, rate), pin) : undefined;
        fixedRates.push({
          rate,
          achievedReqPerSec: round(r.reqPerSec, 0),
          latencyMs: summarize(r.latencyMs, 3),
          latencyFromScheduleMs: summarize(r.latencyFromScheduleMs ?? [], 3),
          errors: r.errors,
          non2xx: r.non2xx,
          ...(burst
            ? {
                autocannonOverallRate: {
                  latencyMs: summarize(burst.latencyMs, 3),
                  achievedReqPerSec: round(burst.reqPerSec, 0),
                },
              }
            : {}),
          server: {
            ...serverStats,
            involuntaryContextSwitches: cs1.involuntary - cs0.involuntary,
            voluntaryContextSwitches: cs1.voluntary - cs0.voluntary,
          },
          slowerThan2Ms: r.latencyMs.filter((l) => l > 2).length,
        });
      }
      const res: FixtureResult = {
        fixture,
        bodyBytes: Buffer.byteLength(body),
        max: {
          reqPerSec: round(max.r.reqPerSec, 0),
          latencyMs: summarize(max.r.latencyMs, 3),
          serverCpuCoresUsed: round(max.cpu / duration, 2),
          errors: max.r.errors,
          non2xx: max.r.non2xx,
        },
        fixedRates,
        ...(profile ? { profile } : {}),
      };
      results.push(res);
      log(
        `  ${fixture} (${res.bodyBytes} B): max ${res.max.reqPerSec} req/s (server used ${res.max.serverCpuCoresUsed} cores); ` +
          fixedRates
            .map(
              (f) =>
                `@${f.rate}/s paced p50 ${f.latencyMs.p50} ms p99 ${f.latencyMs.p99} ms ` +
                `[${f.slowerThan2Ms} > 2 ms; server: ${f.server.gc.count} GCs (max ${f.server.gc.maxMs} ms, ${f.server.gc.over1Ms} > 1 ms), ` +
                `loop delay max ${round(f.server.eventLoopDelayMs.max, 1)} ms, ${f.server.involuntaryContextSwitches} preemptions] ` +
                (f.autocannonOverallRate
                  ? `(autocannon overallRate bursts: p99 ${f.autocannonOverallRate.latencyMs.p99} ms)`
                  : ''),
            )
            .join('; '),
      );
    }
  } finally {
    server.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const job = results.find((r) => r.fixture === 'job-pod');
  const at1000 = job?.fixedRates.find((f) => f.rate === 1000);
  const figures: Figure[] = [
    {
      name: 'webhook max req/s, one core (Job pod)',
      value: job?.max.reqPerSec ?? Number.NaN,
      unit: 'req/s',
      target: '>= 5,000 req/s',
      meetsTarget: (job?.max.reqPerSec ?? 0) >= 5000,
    },
    {
      name: 'webhook p99 at 1,000 req/s (Job pod)',
      value: at1000?.latencyMs.p99 ?? Number.NaN,
      unit: 'ms',
      target: '<= 2 ms',
      meetsTarget: (at1000?.latencyMs.p99 ?? Number.POSITIVE_INFINITY) <= 2,
    },
    { name: 'webhook p50 at 1,000 req/s (Job pod)', value: at1000?.latencyMs.p50 ?? Number.NaN, unit: 'ms' },
  ];
  for (const r of results.filter((x) => x.fixture !== 'job-pod')) {
    figures.push({
      name: `webhook max req/s, one core (${r.fixture})`,
      value: r.max.reqPerSec,
      unit: 'req/s',
    });
    const f = r.fixedRates.find((x) => x.rate === 1000);
    if (f)
      figures.push({ name: `webhook p99 at 1,000 req/s (${r.fixture})`, value: f.latencyMs.p99, unit: 'ms' });
  }
  const method =
    `webhook server (the manager's fastify app + mutate routes, HTTPS, TLS 1.3, keep-alive) alone in a process ` +
    `${pin ? 'pinned to core 0 (taskset -c 0)' : 'NOT pinned (no taskset)'}; autocannon in another process ` +
    `${pin ? 'pinned to core 1' : ''}, ${CONNECTIONS} connections; per fixture a ${warmup} s warm-up, a ${duration} s ` +
    `run as fast as possible (autocannon), then ${duration} s at ${RATES.join(' and ')} req/s with a paced open-loop ` +
    'generator (bench/webhook-load.ts: request k sent at k/rate; latency = response end - send, float ms); ' +
    "autocannon's overallRate is also run and recorded, but it is a per-second burst quota per connection, not a rate.";
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'webhook',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      durationSeconds: duration,
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
