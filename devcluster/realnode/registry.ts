/**
 * The record of what a real node changed on the host, written before each change so that a run
 * that crashes half-way can be undone by the next: the owner, the host sysctls' previous values,
 * the binaries (kube-proxy for `--cleanup`), the cluster directory. The processes themselves are in
 * the ProcessGroup registry beside it (`pids/`); the fixed names (layout.ts) cover the rest.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { processStartTime } from '../processes.ts';

export interface RealNodeRecord {
  ownerPid: number;
  ownerStartTime?: string;
  startedAt: string;
  stateDir: string;
  /** Sysctl (path under /proc/sys) -> value before the node changed it. */
  sysctls: Record<string, string>;
  /** HOST_DIRS that did not exist before the node started (removed at cleanup). */
  createdHostDirs: string[];
  kubeProxyBin?: string;
  clusterDir?: string;
}

export function readRecord(file: string): RealNodeRecord | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RealNodeRecord;
  } catch {
    return undefined;
  }
}

export function writeRecord(file: string, record: RealNodeRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file);
}

export function newRecord(stateDir: string): RealNodeRecord {
  return {
    ownerPid: process.pid,
    ownerStartTime: processStartTime(process.pid),
    startedAt: new Date().toISOString(),
    stateDir,
    sysctls: {},
    createdHostDirs: [],
  };
}
