/**
 * The manager's memory budget, derived from the container's memory limit (docs/benchmarks.md, "Manager
 * memory under a limit"). Without it Node sizes V8's old space for a 128 MiB container at 259 MiB (V8's
 * floor), so garbage piles up past the limit and the kernel OOM-kills the manager; and every open agent
 * connection (a waiting pod's /v1/wait stream) costs ~64 KiB of TLS buffers outside the V8 heap.
 *
 * So: V8's old space gets a share of the limit (it then collects instead of growing, and reports heap
 * pressure), and the agent API's connection cap another share (pods beyond it retry with backoff: slower
 * handoffs, never a lost grant). The rest is Node itself (binary, young generation, native buffers).
 *
 * The limit comes from `KONDUCTOR_MEMORY_LIMIT` (bytes; the chart sets it from the Downward API's
 * limits.memory) or else the cgroup (memory.max / memory.limit_in_bytes, via process.constrainedMemory()),
 * so the image does the right thing without the chart too.
 */
const MiB = 1024 * 1024;

/** Share of the memory limit for V8's old space. */
export const HEAP_SHARE = 0.45;
/** Share of the memory limit for open agent connections. */
export const CONNECTION_SHARE = 0.25;
/** Measured anonymous memory per open agent TLS stream (bench: ~63 KiB). */
export const BYTES_PER_AGENT_CONNECTION = 64 * 1024;
/** Without a memory limit. */
export const UNCONSTRAINED_AGENT_CONNECTIONS = 4096;
export const MIN_HEAP_MIB = 32;
export const MIN_AGENT_CONNECTIONS = 64;
/** Above this a "limit" means none (cgroup v1 reports ~2^63 for unlimited, libuv 2^64-1). */
const NO_LIMIT = 2 ** 60;

export interface MemoryBudget {
  /** The container memory limit in bytes. */
  limitBytes: number;
  /** --max-old-space-size (MiB). */
  heapMiB: number;
  /** Default of --max-agent-connections. */
  maxAgentConnections: number;
}

/** Pure: the budget for a memory limit in bytes; undefined when there is no (usable) limit. */
export function memoryBudget(limitBytes: number | undefined): MemoryBudget | undefined {
  if (limitBytes === undefined || !Number.isFinite(limitBytes) || limitBytes <= 0 || limitBytes >= NO_LIMIT) {
    return undefined;
  }
  return {
    limitBytes,
    heapMiB: Math.max(MIN_HEAP_MIB, Math.floor((limitBytes * HEAP_SHARE) / MiB)),
    maxAgentConnections: Math.max(
      MIN_AGENT_CONNECTIONS,
      Math.floor((limitBytes * CONNECTION_SHARE) / BYTES_PER_AGENT_CONNECTION),
    ),
  };
}

/** The container's memory limit in bytes, or undefined. */
export function containerMemoryLimit(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const fromEnv = Number(env.KONDUCTOR_MEMORY_LIMIT);
  if (env.KONDUCTOR_MEMORY_LIMIT && Number.isFinite(fromEnv) && fromEnv > 0) return fromEnv;
  const constrained = process.constrainedMemory();
  return constrained > 0 ? constrained : undefined;
}

/** True when node flag `name` is given (on the command line or in NODE_OPTIONS). */
export function nodeFlagGiven(
  name: string,
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): boolean {
  const flag = new RegExp(`^--${name}(=|$)`);
  return execArgv.some((a) => flag.test(a)) || (nodeOptions ?? '').split(/\s+/).some((a) => flag.test(a));
}

/**
 * The node flags the budget adds: the old space, and a small young generation (2 MiB semi-spaces; V8's
 * default reserves 192 MiB for it, more than the whole default limit) unless one is given.
 */
export function budgetNodeFlags(
  budget: MemoryBudget,
  execArgv: readonly string[],
  nodeOptions?: string,
): string[] {
  return [
    `--max-old-space-size=${budget.heapMiB}`,
    ...(nodeFlagGiven('max-semi-space-size', execArgv, nodeOptions) ? [] : ['--max-semi-space-size=2']),
  ];
}

/** Set on the relaunched process, so it never relaunches again. */
export const RELAUNCHED_ENV = 'KONDUCTOR_HEAP_FROM_LIMIT';

/**
 * When the container has a memory limit and no heap limit was given, replaces this process (execve, same
 * pid) with node and `--max-old-space-size` from the budget. Returns the budget (undefined: no limit).
 */
export function applyMemoryBudget(): MemoryBudget | undefined {
  const budget = memoryBudget(containerMemoryLimit());
  const { execArgv } = process;
  const nodeOptions = process.env.NODE_OPTIONS;
  if (!budget || process.env[RELAUNCHED_ENV] || nodeFlagGiven('max-old-space-size', execArgv, nodeOptions)) {
    return budget;
  }
  process.execve?.(
    process.execPath,
    [
      process.execPath,
      ...budgetNodeFlags(budget, execArgv, nodeOptions),
      ...execArgv,
      ...process.argv.slice(1),
    ],
    { ...process.env, [RELAUNCHED_ENV]: String(budget.heapMiB) },
  );
  return budget; // no execve (not Linux/macOS): V8's own sizing
}

/**
 * Warns (once per episode) when the V8 heap stays above `threshold` of its limit: the manager then spends
 * its time collecting garbage and is near "heap out of memory" — raise the memory limit.
 */
export function watchHeapPressure(
  warn: (fields: Record<string, number>, msg: string) => void,
  stats: () => { used_heap_size: number; heap_size_limit: number },
  intervalMs = 30_000,
  threshold = 0.85,
): () => void {
  let pressed = false;
  const timer = setInterval(() => {
    const s = stats();
    const ratio = s.used_heap_size / s.heap_size_limit;
    if (ratio >= threshold && !pressed) {
      warn(
        {
          heapUsedMiB: Math.round(s.used_heap_size / MiB),
          heapLimitMiB: Math.round(s.heap_size_limit / MiB),
        },
        'memory pressure: the V8 heap is near its limit; raise the memory limit (controller.resources.limits.memory)',
      );
    }
    pressed = ratio >= threshold;
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
