/**
 * Floors: every figure of the suite is measured next to the same quantity for the thing underneath it (a
 * bare fastify HTTPS server for the webhook, a status write seen by a watch for a handoff, a bare `node`
 * for the agent, ...), in the same run, alternating A/B (ours, floor, ours, floor) so that whatever else
 * the shared machine does in the meantime hits both. The ratio to the floor is what carries from one run
 * to the next; the absolute value says what this machine gave at that moment.
 * The machine's own state during each run (load, steal) is in machine.ts.
 */
import { spawn } from 'node:child_process';
import { type BenchResult, type Figure, procSample, round } from './common.ts';

// ---- A/B ------------------------------------------------------------------------------------------

/**
 * Runs `ours` and `floor` alternately, `rounds` times each (ours, floor, ours, floor, ...), so that a
 * change of the machine's load during the run affects both alike. Returns both series in run order.
 */
export async function alternate<A, B>(
  rounds: number,
  ours: (round: number) => Promise<A>,
  floor: (round: number) => Promise<B>,
): Promise<{ ours: A[]; floor: B[] }> {
  const out: { ours: A[]; floor: B[] } = { ours: [], floor: [] };
  for (let i = 0; i < rounds; i++) {
    out.ours.push(await ours(i));
    out.floor.push(await floor(i));
  }
  return out;
}

export function median(values: readonly number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * The ratio of an A/B series: the median of the ratios of each round's pair (ours[i] / floor[i]), which
 * pairs each run with the floor measured right after it (drift between rounds cancels out).
 */
export function pairedRatio(ours: readonly number[], floor: readonly number[]): number {
  return median(pairRatios(ours, floor));
}

/** Each round's ratio ours[i] / floor[i] (to pool several A/B series before taking the median). */
export function pairRatios(ours: readonly number[], floor: readonly number[]): number[] {
  return ours.map((v, i) => v / (floor[i] ?? Number.NaN));
}

export interface FlooredFigureSpec {
  name: string;
  value: number;
  unit: string;
  floor: number;
  /** What the floor is, in words. */
  floorName: string;
  /** value / floor; computed from value and floor when absent (pass pairedRatio() for A/B series). */
  ratio?: number;
  /** The DESIGN §8 absolute target (for a dedicated machine). */
  target?: string;
  meetsTarget?: boolean;
  /** The target as a ratio to the floor, e.g. `<= 2` (what can hold on a shared machine). */
  ratioTarget?: { max?: number; min?: number };
}

/** A figure with its floor and ratio. */
export function flooredFigure(spec: FlooredFigureSpec): Figure {
  const ratio = round(spec.ratio ?? spec.value / spec.floor, 3);
  const fig: Figure = {
    name: spec.name,
    value: spec.value,
    unit: spec.unit,
    floor: spec.floor,
    floorName: spec.floorName,
    ratio,
  };
  if (spec.target !== undefined) {
    fig.target = spec.target;
    fig.meetsTarget = spec.meetsTarget ?? false;
  }
  const rt = spec.ratioTarget;
  if (rt) {
    fig.ratioTarget = rt.max !== undefined ? `<= ${rt.max}` : `>= ${rt.min}`;
    fig.meetsRatioTarget =
      (rt.max === undefined || ratio <= rt.max) && (rt.min === undefined || ratio >= rt.min);
  }
  return fig;
}

// ---- an idle Node process ---------------------------------------------------------------------------

export interface IdleNodeSample {
  vmRssMiB: number;
  vmHwmMiB: number;
  /** V8 heap in use after a full GC. */
  heapUsedMiB: number;
}

const IDLE_NODE_SCRIPT =
  'globalThis.gc(); process.stdout.write(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed }) + "\\n"); setInterval(() => {}, 1e9);';

/**
 * The floor of the manager's memory: a Node process with the same flags (e.g. MANAGER_NODE_ARGS) that
 * does nothing, read from /proc once it has been up for `settleMs`.
 */
export async function idleNodeSample(flags: readonly string[], settleMs = 1000): Promise<IdleNodeSample> {
  const child = spawn(process.execPath, [...flags, '--expose-gc', '-e', IDLE_NODE_SCRIPT], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('exit', (code) => reject(new Error(`idle node exited ${code}`)));
    });
    await new Promise((r) => setTimeout(r, settleMs));
    const p = procSample(child.pid ?? 0);
    return {
      vmRssMiB: p.vmRssMiB,
      vmHwmMiB: p.vmHwmMiB,
      heapUsedMiB: round((JSON.parse(line) as { heapUsed: number }).heapUsed / 2 ** 20, 1),
    };
  } finally {
    child.kill('SIGKILL');
  }
}

// ---- the run's summary ------------------------------------------------------------------------------

/** One line per figure of the given results: value, floor, ratio (markdown table, for docs/benchmarks.md). */
export function summaryTable(results: readonly BenchResult[]): string {
  const rows = [
    '| figure | value | floor | ratio | target | ratio target | load (start -> end), steal |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const m = r.machine;
    const load = m
      ? `${m.loadAverageAtStart[0]} -> ${m.loadAverageAtEnd[0]}, steal ${m.stealPercent} %`
      : `${r.environment.loadAverageAtStart[0]} -> ${r.loadAverageAtEnd[0]}`;
    for (const f of r.figures) {
      const verdict = (v: boolean | undefined) => (v === undefined ? '' : v ? ' (meets)' : ' (misses)');
      rows.push(
        `| ${r.benchmark}: ${f.name} | ${f.value} ${f.unit} | ${f.floor === undefined ? `— (${f.noFloor ?? 'none'})` : `${f.floor} ${f.unit}`} | ` +
          `${f.ratio ?? '—'} | ${f.target ? `${f.target}${verdict(f.meetsTarget)}` : ''} | ` +
          `${f.ratioTarget ? `${f.ratioTarget}${verdict(f.meetsRatioTarget)}` : ''} | ${load} |`,
      );
    }
  }
  return rows.join('\n');
}
