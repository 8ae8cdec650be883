/**
 * What every benchmark shares: run options (full / --quick / --tiny), the method block (machine, Node,
 * Kubernetes, load average), percentile summaries, result files, and the probes of processes and of the
 * API server (/proc/<pid>/stat and status, the API server's /metrics request counters, the manager's
 * /metrics). Benchmarks are not tests: nothing here asserts a timing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { isAlreadyExists, type KubeClient } from '../api/kubeClient.ts';
import { K8S_VERSION } from '../devcluster/goToolsets.ts';
import { ROOT } from '../scripts/build.ts';
import {
  type CpuTimes,
  describeMachineLoad,
  type MachineLoad,
  machineSince,
  readCpuTimes,
} from './machine.ts';

export type BenchMode = 'full' | 'quick' | 'tiny';

export interface BenchOptions {
  mode: BenchMode;
  /** Where <name>.json goes (default bench/results). */
  resultsDir: string;
  /** Take a CPU profile of the manager during the measured phase (inspector over SIGUSR1). */
  profile: boolean;
  log: (line: string) => void;
}

export const DEFAULT_RESULTS_DIR = join(ROOT, 'bench', 'results');

/** Picks the count for the run's mode. */
export function byMode<T>(mode: BenchMode, counts: { full: T; quick: T; tiny: T }): T {
  return counts[mode];
}

export interface Environment {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  kubernetes: string;
  /** 1/5/15-minute load averages when the benchmark started (other work on the machine skews figures). */
  loadAverageAtStart: number[];
  startedAt: string;
  /** /proc/stat at the start: the result's `machine` (steal, busy share) is measured from here. */
  cpuTimesAtStart: CpuTimes;
}

export function environment(): Environment {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    kubernetes: K8S_VERSION,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    startedAt: new Date().toISOString(),
    cpuTimesAtStart: readCpuTimes(),
  };
}

export function describeEnvironment(env: Environment): string {
  return (
    `${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB, Linux ${env.kernel}; node ${env.node}; ` +
    `Kubernetes ${env.kubernetes} (devcluster); load average at start ${env.loadAverageAtStart.join(' / ')}`
  );
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export const round = (n: number, digits = 2) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

export function summarize(values: readonly number[], digits = 2): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    n: sorted.length,
    min: round(sorted[0] ?? Number.NaN, digits),
    p50: round(percentile(sorted, 50), digits),
    p95: round(percentile(sorted, 95), digits),
    p99: round(percentile(sorted, 99), digits),
    max: round(sorted[sorted.length - 1] ?? Number.NaN, digits),
    mean: round(mean, digits),
  };
}

export const fmtSummary = (s: Summary, unit = 'ms') =>
  `p50 ${s.p50} ${unit}  p95 ${s.p95} ${unit}  p99 ${s.p99} ${unit}  max ${s.max} ${unit}  (n=${s.n})`;

/** One figure next to its DESIGN §8 target. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  target?: string;
  /** undefined when there is no target. */
  meetsTarget?: boolean;
  /** The same quantity for the floor under it, measured in the same run, A/B alternated (floors.ts). */
  floor?: number;
  /** What the floor is. */
  floorName?: string;
  /** value / floor. */
  ratio?: number;
  /** The target as a ratio to the floor (what can hold on a shared machine; DESIGN §8 keeps the absolute one). */
  ratioTarget?: string;
  meetsRatioTarget?: boolean;
  /** Why a figure has no floor (a count of requests or writes: it does not depend on the machine's speed). */
  noFloor?: string;
}

export interface BenchResult {
  benchmark: string;
  mode: BenchMode;
  environment: Environment;
  /** How the figures were measured, in words. */
  method: string;
  /** Counts, warm-up, durations: the parameters of this run. */
  parameters: Record<string, unknown>;
  figures: Figure[];
  /** Everything else measured (per-phase details, profiles' top functions). */
  details: Record<string, unknown>;
  loadAverageAtEnd: number[];
  durationSeconds: number;
  /** The machine during the run: load average at both ends, steal and busy share from /proc/stat. */
  machine: MachineLoad;
}

export async function writeResult(
  opts: BenchOptions,
  result: Omit<BenchResult, 'loadAverageAtEnd' | 'machine'>,
): Promise<string> {
  await mkdir(opts.resultsDir, { recursive: true });
  const machine = machineSince({
    cpu: result.environment.cpuTimesAtStart,
    loadAverage: result.environment.loadAverageAtStart,
    at: Date.parse(result.environment.startedAt),
  });
  opts.log(`machine during the run: ${describeMachineLoad(machine)}`);
  const full: BenchResult = { ...result, loadAverageAtEnd: loadavg().map((l) => round(l)), machine };
  const path = join(opts.resultsDir, `${result.benchmark}.json`);
  writeFileSync(path, `${JSON.stringify(full, null, 2)}\n`);
  return path;
}

/** Prints each figure: value, its floor from the same run, the ratio; and the targets. */
export function printFigures(log: (l: string) => void, figures: Figure[]): void {
  for (const f of figures) {
    const verdict = f.meetsTarget === undefined ? '' : f.meetsTarget ? '  ok' : '  MISSES TARGET';
    log(`  ${f.name}: ${f.value} ${f.unit}${f.target ? `  (target ${f.target})${verdict}` : ''}`);
    if (f.floor !== undefined) {
      const rv = f.meetsRatioTarget === undefined ? '' : f.meetsRatioTarget ? '  ok' : '  MISSES';
      log(
        `      floor ${f.floor} ${f.unit} (${f.floorName}); ratio ${f.ratio}` +
          `${f.ratioTarget ? `  (ratio target ${f.ratioTarget})${rv}` : ''}`,
      );
    } else if (f.noFloor) log(`      no floor: ${f.noFloor}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns a value (not undefined/false), or throws at the deadline. */
export async function waitUntil<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

// ---- processes ------------------------------------------------------------------------------------

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface ProcSample {
  cpuSeconds: number;
  vmRssMiB: number;
  vmHwmMiB: number;
  rssAnonMiB: number;
}

export function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return {
    cpuSeconds: (utime + stime) / CLOCK_TICKS,
    vmRssMiB: round(kib('VmRSS') / 1024, 1),
    vmHwmMiB: round(kib('VmHWM') / 1024, 1),
    rssAnonMiB: round(kib('RssAnon') / 1024, 1),
  };
}

/** CPU seconds of each process, keyed by its /proc comm (etcd, kube-apiserver, ...). */
export function cpuByProcess(pids: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of pids) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      out[comm] = round((out[comm] ?? 0) + procSample(pid).cpuSeconds);
    } catch {
      /* gone */
    }
  }
  return out;
}

export function diffRecords(after: Record<string, number>, before: Record<string, number>) {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) out[k] = round(v - (before[k] ?? 0));
  return out;
}

// ---- metrics --------------------------------------------------------------------------------------

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (enough of it for counters and histograms). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ''] = l[2] ?? '';
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

export function sumMetric(
  samples: readonly Sample[],
  name: string,
  match: (labels: Record<string, string>) => boolean = () => true,
): number {
  let total = 0;
  for (const s of samples) if (s.name === name && match(s.labels)) total += s.value;
  return total;
}

/** The API server's request counters, keyed `VERB resource[/subresource]`. */
export async function apiserverRequests(client: KubeClient): Promise<Record<string, number>> {
  return (await apiserverStats(client)).requests;
}

/**
 * The API server's request counters and the seconds it spent serving them
 * (apiserver_request_duration_seconds_sum), keyed `VERB resource[/subresource]`.
 */
export async function apiserverStats(
  client: KubeClient,
): Promise<{ requests: Record<string, number>; seconds: Record<string, number> }> {
  const text = await client.request<string>('GET', '/metrics');
  const requests: Record<string, number> = {};
  const seconds: Record<string, number> = {};
  for (const s of parseMetrics(String(text))) {
    const into =
      s.name === 'apiserver_request_total'
        ? requests
        : s.name === 'apiserver_request_duration_seconds_sum'
          ? seconds
          : undefined;
    if (!into) continue;
    const l = s.labels;
    const key = `${l.verb} ${l.resource ?? ''}${l.subresource ? `/${l.subresource}` : ''}`;
    into[key] = (into[key] ?? 0) + s.value;
  }
  return { requests, seconds };
}

export async function managerMetrics(metricsUrl: string): Promise<Sample[]> {
  const res = await fetch(metricsUrl);
  return parseMetrics(await res.text());
}

/** Quantile estimate from a Prometheus histogram's cumulative buckets (upper bound of the bucket). */
export function histogramQuantile(samples: readonly Sample[], name: string, q: number): number {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted[sorted.length - 1]?.[1] ?? 0;
  for (const [le, count] of sorted) if (count >= q * total) return le;
  return Number.NaN;
}

/** Counts the benchmark's own API requests, keyed like apiserverRequests(). */
export class RequestCounter {
  readonly counts: Record<string, number> = {};
  add(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }
  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

// ---- cluster objects ------------------------------------------------------------------------------

export async function createNamespace(client: KubeClient, name: string): Promise<void> {
  await client.create('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'konductor.io/bench': 'true' } },
  });
  // Pods need the namespace's default ServiceAccount (the ServiceAccount admission plugin).
  await waitUntil(
    `ServiceAccount ${name}/default`,
    () =>
      client.get(`/api/v1/namespaces/${name}/serviceaccounts/default`).then(
        () => true,
        () => false,
      ),
    30_000,
  );
}

/** A Node object without a kubelet: pods bound to it are not garbage-collected as orphans. */
export async function ensureBenchNode(client: KubeClient, name: string): Promise<void> {
  try {
    await client.create('/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'konductor.io/bench': 'true' } },
      spec: {},
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

export const BENCH_NODE = 'konductor-bench-node';
