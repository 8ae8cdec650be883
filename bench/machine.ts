/**
 * The machine's state during a benchmark, from /proc/stat and the load average: the share of CPU time
 * stolen by the hypervisor (steal: other guests on the host) and the share the cores were busy with
 * anything (ours or anyone else's on this shared machine). Every result file carries it (common.ts).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The aggregate `cpu` line of /proc/stat, in clock ticks (USER_HZ). */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu ')) ?? '';
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return {
    user: user ?? 0,
    nice: nice ?? 0,
    system: system ?? 0,
    idle: idle ?? 0,
    iowait: iowait ?? 0,
    irq: irq ?? 0,
    softirq: softirq ?? 0,
    steal: steal ?? 0,
  };
}

export function readCpuTimes(): CpuTimes {
  return parseProcStat(readFileSync('/proc/stat', 'utf8'));
}

/** What the machine did between two /proc/stat samples, in percent of all cores' time. */
export interface MachineShare {
  seconds: number;
  /** Time stolen by the hypervisor (other guests on the host). */
  stealPercent: number;
  /** Time the cores ran anything (user, nice, system, irq, softirq): ours and everyone else's. */
  busyPercent: number;
  /** Time idle or waiting for I/O. */
  idlePercent: number;
}

export function machineShare(before: CpuTimes, after: CpuTimes, seconds: number): MachineShare {
  const d = (k: keyof CpuTimes) => after[k] - before[k];
  const busy = d('user') + d('nice') + d('system') + d('irq') + d('softirq');
  const idle = d('idle') + d('iowait');
  const total = busy + idle + d('steal') || 1;
  return {
    seconds: round(seconds, 1),
    stealPercent: round((d('steal') / total) * 100, 1),
    busyPercent: round((busy / total) * 100, 1),
    idlePercent: round((idle / total) * 100, 1),
  };
}

/** The machine's state over one benchmark: load average at both ends, steal and busy share between. */
export interface MachineLoad extends MachineShare {
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
}

export const loadAverage = () => loadavg().map((l) => round(l));

/** The machine from `start` (a /proc/stat sample and load average taken when the benchmark began) to now. */
export function machineSince(start: { cpu: CpuTimes; loadAverage: number[]; at: number }): MachineLoad {
  return {
    loadAverageAtStart: start.loadAverage,
    loadAverageAtEnd: loadAverage(),
    ...machineShare(start.cpu, readCpuTimes(), (Date.now() - start.at) / 1000),
  };
}

/** Starts measuring the machine; stop() says what it did in between. */
export function machineMeter(): { stop(): MachineLoad } {
  const start = { cpu: readCpuTimes(), loadAverage: loadAverage(), at: Date.now() };
  return { stop: () => machineSince(start) };
}

export const describeMachineLoad = (m: MachineLoad) =>
  `load average ${m.loadAverageAtStart[0]} -> ${m.loadAverageAtEnd[0]}; over ${m.seconds} s: ` +
  `cores busy ${m.busyPercent} %, steal ${m.stealPercent} %`;
