/**
 * Load generator of bench/webhook.ts, in its own process (pinned to the other core), POST /mutate over TLS
 * with keep-alive, in one of two ways:
 *
 * - `autocannon` (max throughput, and autocannon's overallRate for comparison): latencies from its
 *   `response` events (float ms from process.hrtime; its own histogram keeps whole milliseconds, too coarse
 *   for a 2 ms budget). NB: autocannon's overallRate/connectionRate is a per-second quota per connection
 *   (httpClient.js: `reqsMadeThisSecond < rate`, reset by a 1 s setInterval): each connection sends its
 *   quota back to back at the start of every second, then idles. That is a burst at full speed, not a rate.
 * - `paced` (the fixed-rate latency figures): an open-loop generator that sends request k at start + k/rate
 *   (1 ms timer ticks) over a keep-alive agent; latency = response end - actual send, and also - scheduled
 *   send (corrected for coordinated omission: includes time a request waited for a free socket).
 *
 * Usage: node bench/webhook-load.ts '<json LoadSpec>'. Prints one JSON LoadResult on stdout.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createRequire } from 'node:module';

/** The part of autocannon's API used here (the package ships no types). */
interface AutocannonResult {
  requests: { total: number };
  duration: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}
interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(event: 'done', fn: (r: AutocannonResult) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
}
type Autocannon = (opts: Record<string, unknown>, cb: () => void) => AutocannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadSpec {
  url: string;
  caFile: string;
  bodyFile: string;
  connections: number;
  durationSeconds: number;
  /** Requests per second over all connections; absent = as fast as possible. */
  overallRate?: number;
  generator: 'autocannon' | 'paced';
}

export interface LoadResult {
  requests: number;
  reqPerSec: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyMs: number[];
  /** paced only: response end - scheduled send. */
  latencyFromScheduleMs?: number[];
  /** CPU seconds the load generator itself used (a starved generator limits the max run too). */
  generatorCpuSeconds?: number;
}

async function paced(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.overallRate ?? 1000;
  const body = readFileSync(spec.bodyFile);
  const ca = readFileSync(spec.caFile, 'utf8');
  const agent = new Agent({ keepAlive: true, maxSockets: spec.connections, ca });
  const url = new URL(spec.url);
  const total = Math.round(rate * spec.durationSeconds);
  const latencyMs: number[] = [];
  const fromSchedule: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let done = 0;
  const start = process.hrtime.bigint() + 50_000_000n;
  const send = (scheduled: bigint) => {
    const sentAt = process.hrtime.bigint();
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: '/mutate',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          const end = process.hrtime.bigint();
          if (res.statusCode === 200) {
            latencyMs.push(Number(end - sentAt) / 1e6);
            fromSchedule.push(Number(end - scheduled) / 1e6);
          } else non2xx++;
          done++;
        });
      },
    );
    req.on('error', () => {
      errors++;
      done++;
    });
    req.end(body);
  };
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = process.hrtime.bigint();
      while (issued < total) {
        const due = start + (BigInt(issued) * 1_000_000_000n) / BigInt(rate);
        if (due > now) break;
        send(due);
        issued++;
      }
      if (issued < total) setTimeout(tick, 1);
      else {
        const wait = () => (done >= total ? resolve() : setTimeout(wait, 5));
        wait();
      }
    };
    tick();
  });
  agent.destroy();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return {
    requests: latencyMs.length,
    reqPerSec: latencyMs.length / seconds,
    non2xx,
    errors,
    timeouts: 0,
    latencyMs,
    latencyFromScheduleMs: fromSchedule,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  if (spec.generator === 'paced') {
    process.stdout.write(`${JSON.stringify({ ...(await paced(spec)), generatorCpuSeconds: cpu() })}\n`);
    return;
  }
  const latencyMs: number[] = [];
  const instance = autocannon(
    {
      url: `${spec.url}/mutate`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: readFileSync(spec.bodyFile, 'utf8'),
      connections: spec.connections,
      duration: spec.durationSeconds,
      ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
      tlsOptions: { ca: readFileSync(spec.caFile, 'utf8') },
    },
    () => undefined,
  );
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode === 200) latencyMs.push(responseTime);
  });
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  });
  const out: LoadResult = {
    requests: result.requests.total,
    reqPerSec: result.requests.total / (result.duration || spec.durationSeconds),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyMs,
    generatorCpuSeconds: cpu(),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`webhook-load: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
