/**
 * CPU profile of a running Node process (the manager) without restarting it: SIGUSR1 opens its
 * inspector (it logs `Debugger listening on ws://...` to its stderr, i.e. its log file), then the
 * Chrome DevTools protocol's Profiler domain samples it while `during` runs. The profile is written as
 * a .cpuprofile (open it in Chrome DevTools or speedscope) and summarised as the functions with the
 * most self time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { round, sleep } from './common.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** Functions by self time, highest first. */
  top: { fn: string; selfMs: number; percent: number }[];
}

function summarize(profile: CpuProfile, file: string, topN = 15): ProfileSummary {
  const total = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  const perHit = durationMs / total;
  const byFn = new Map<string, number>();
  for (const n of profile.nodes) {
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|api|controller|webhook|cmd)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + (n.hitCount ?? 0));
  }
  const top = [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([fn, hits]) => ({ fn, selfMs: round(hits * perHit, 1), percent: round((hits / total) * 100, 1) }));
  return { file, durationMs: round(durationMs), top };
}

type Call = (method: string, params?: Record<string, unknown>) => Promise<unknown>;

/** Opens the inspector of process `pid` (stderr in `logPath`) and runs `fn` with a protocol caller. */
export async function withInspector<T>(
  pid: number,
  logPath: string,
  fn: (call: Call) => Promise<T>,
): Promise<T> {
  // SIGUSR1 opens the inspector and logs its URL; once open it stays open and a second SIGUSR1 logs
  // nothing: then the last URL logged is this process's (a restarted process logs a new one).
  const urls = (text: string) => [...text.matchAll(/Debugger listening on (ws:\/\/\S+)/g)].map((m) => m[1]);
  const before = readFileSync(logPath, 'utf8').length;
  process.kill(pid, 'SIGUSR1');
  // Generous: under load (other work on the 2 cores) the inspector took over 2 s to log its URL.
  const deadline = Date.now() + 15_000;
  let wsUrl: string | undefined;
  while (!wsUrl && Date.now() < deadline) {
    wsUrl = urls(readFileSync(logPath, 'utf8').slice(before)).pop();
    if (!wsUrl) await sleep(20);
  }
  wsUrl ??= urls(readFileSync(logPath, 'utf8')).pop();
  if (!wsUrl) throw new Error(`process ${pid} did not open its inspector (log ${logPath})`);
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error(`cannot connect to ${wsUrl}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, (v: unknown) => void>();
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  });
  const call: Call = (method, params = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    return await fn(call);
  } finally {
    ws.close();
    await sleep(50);
  }
}

export interface HeapUsage {
  /** V8 heap in use / reserved (MiB), after a full GC when `gcFirst`. */
  usedMiB: number;
  totalMiB: number;
}

/** The V8 heap of a running process (Runtime.getHeapUsage), optionally after a full GC (HeapProfiler.collectGarbage). */
export function heapUsage(pid: number, logPath: string, gcFirst: boolean): Promise<HeapUsage> {
  return withInspector(pid, logPath, async (call) => {
    if (gcFirst) await call('HeapProfiler.collectGarbage');
    const u = (await call('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number };
    return { usedMiB: round(u.usedSize / 2 ** 20, 1), totalMiB: round(u.totalSize / 2 ** 20, 1) };
  });
}

/** Profiles process `pid` (whose stderr goes to `logPath`) while `during` runs. */
export function profileProcess<T>(
  pid: number,
  logPath: string,
  outFile: string,
  during: () => Promise<T>,
): Promise<{ result: T; profile: ProfileSummary }> {
  return withInspector(pid, logPath, async (call) => {
    await call('Profiler.enable');
    await call('Profiler.setSamplingInterval', { interval: 200 });
    await call('Profiler.start');
    let result: T;
    let profile: ProfileSummary;
    try {
      result = await during();
    } finally {
      const stopped = (await call('Profiler.stop')) as { profile: CpuProfile };
      writeFileSync(outFile, JSON.stringify(stopped.profile));
      profile = summarize(stopped.profile, outFile);
    }
    return { result, profile };
  });
}
