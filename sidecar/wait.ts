/**
 * `konductor-wait` (DESIGN §4): the init container that blocks the pod until the manager grants every
 * primitive the pod asked for, then writes /var/run/konductor/grant.json and exits 0.
 *
 * The decisions are pure functions over plain data (applyWaitEvent, classifyRejection, buildGrantFile,
 * describeTimeout); runWait() is the I/O loop around them: open the stream, feed it events, reconnect with
 * jittered backoff when the manager is away, give up at the wait-timeout.
 *
 * Exit codes: 0 granted, 1 the manager reported a failure, 2 wait-timeout, 3 misconfiguration.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { backoffDelay, RECONNECT_BACKOFF } from '../api/backoff.ts';
import { ANNOTATIONS } from '../api/constants.ts';
import { isKonductorError } from '../api/errors.ts';
import {
  formatProgress,
  type Grant,
  type GrantFile,
  type PrimitiveRefNs,
  type WaitEvent,
} from '../api/protocol.ts';
import type { FailureReason } from '../api/reasons.ts';
import type { AgentClient } from './agentClient.ts';
import type { AgentConfig } from './config.ts';

export const EXIT_GRANTED = 0;
export const EXIT_FAILED = 1;
export const EXIT_TIMEOUT = 2;
export const EXIT_MISCONFIGURED = 3;

/** 401 may be a token the API server does not know yet: retry this many times before giving up. */
export const MAX_UNAUTHORIZED_ATTEMPTS = 3;

/** grant.json: the protocol's GrantFile plus the last grant's fields at top level for simple consumers. */
export interface AgentGrantFile extends GrantFile {
  primitive?: Grant['kind'];
  name?: string;
  token?: number;
  grantedAt?: string;
}

/** What the wait has seen so far. */
export interface WaitProgress {
  /** Last progress line printed per primitive (`Kind/ns/name`), so unchanged standings print nothing. */
  lastLines: Readonly<Record<string, string>>;
  /** Grants announced so far, in order. */
  grants: readonly Grant[];
  /** The primitive the pod currently waits on (last queued/progress not yet granted). */
  current: PrimitiveRefNs | undefined;
}

export type WaitOutcome =
  | { type: 'done'; grants: Grant[] }
  | { type: 'failed'; reason: FailureReason; message: string; exitCode: number };

export interface WaitStep {
  state: WaitProgress;
  /** Lines for stdout. */
  lines: string[];
  /** Set on a terminal event. */
  outcome?: WaitOutcome;
}

export const INITIAL_WAIT_PROGRESS: WaitProgress = { lastLines: {}, grants: [], current: undefined };

export function primitiveKey(p: PrimitiveRefNs): string {
  return `${p.kind}/${p.namespace}/${p.name}`;
}

/** `semaphore default/batch-slots` */
export function describePrimitive(p: PrimitiveRefNs): string {
  return `${p.kind.toLowerCase()} ${p.namespace}/${p.name}`;
}

/** Readable elapsed time: `45ms`, `3.2s`, `30s`, `2m5s`, `1h30m`. */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '0ms';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) {
    const tenths = Math.round(ms / 100) / 10;
    return tenths >= 60 ? '1m' : `${tenths}s`;
  }
  const totalSeconds = Math.round(ms / 1000);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`;
}

/** `granted semaphore default/batch-slots (token 7) after 3.2s`; barriers and gates hold nothing: no token. */
export function formatGranted(grant: Grant, elapsedMs: number): string {
  const what = describePrimitive(grant);
  const after = formatElapsed(elapsedMs);
  if (grant.kind === 'Barrier' || grant.kind === 'Gate') return `${what} is open after ${after}`;
  return `granted ${what} (token ${grant.token}) after ${after}`;
}

/** Folds one stream event into the wait's state: what to print, and whether the wait is over. */
export function applyWaitEvent(state: WaitProgress, event: WaitEvent, elapsedMs: number): WaitStep {
  switch (event.type) {
    case 'queued':
    case 'progress': {
      const key = primitiveKey(event.primitive);
      const line = event.message?.trim() || formatProgress(event);
      const next = { ...state, current: event.primitive };
      if (state.lastLines[key] === line) return { state: next, lines: [] };
      return { state: { ...next, lastLines: { ...state.lastLines, [key]: line } }, lines: [line] };
    }
    case 'granted':
      return grantAll(state, [event.grant], elapsedMs);
    case 'done': {
      // A reconnect may have skipped some `granted` events: announce whatever was not announced yet.
      const step = grantAll(state, event.grants ?? [], elapsedMs);
      const grants = (event.grants ?? []).length > 0 ? [...(event.grants ?? [])] : [...step.state.grants];
      return { ...step, outcome: { type: 'done', grants } };
    }
    case 'failed': {
      const exitCode = event.reason === 'WaitTimeout' ? EXIT_TIMEOUT : EXIT_FAILED;
      return {
        state,
        lines: [],
        outcome: { type: 'failed', reason: event.reason, message: event.message, exitCode },
      };
    }
    default:
      return { state, lines: [] };
  }
}

function grantAll(state: WaitProgress, grants: readonly Grant[], elapsedMs: number): WaitStep {
  const lines: string[] = [];
  let known = state.grants;
  let current = state.current;
  for (const grant of grants) {
    const key = primitiveKey(grant);
    if (known.some((g) => primitiveKey(g) === key)) continue;
    known = [...known, grant];
    lines.push(formatGranted(grant, elapsedMs));
    if (current !== undefined && primitiveKey(current) === key) current = undefined;
  }
  return { state: { ...state, grants: known, current }, lines };
}

/** The content of grant.json. */
export function buildGrantFile(
  grants: readonly Grant[],
  pod: { name: string; namespace: string; uid: string },
): AgentGrantFile {
  const last = grants.at(-1);
  const file: AgentGrantFile = {
    pod: last?.pod || pod.name,
    uid: last?.uid || pod.uid,
    namespace: last?.namespace || pod.namespace,
    grants: [...grants],
  };
  if (last === undefined) return file;
  return {
    primitive: last.kind,
    name: last.name,
    namespace: last.namespace,
    token: last.token,
    grantedAt: last.grantedAt,
    pod: file.pod,
    uid: file.uid,
    grants: file.grants,
  };
}

/** `gave up waiting for semaphore default/batch-slots after 30s (konductor.io/wait-timeout)` */
export function describeTimeout(
  current: PrimitiveRefNs | undefined,
  timeoutMs: number,
  unreachableReason?: string,
): string {
  const what = current ? describePrimitive(current) : 'the konductor manager';
  const tail = unreachableReason ? `; the manager was unreachable (${unreachableReason})` : '';
  return `gave up waiting for ${what} after ${formatElapsed(timeoutMs)} (${ANNOTATIONS.waitTimeout})${tail}`;
}

/**
 * What a non-200 answer to POST /v1/wait means. 401: the token may still be propagating (retry a few
 * times); 400/403 and other client errors: misconfiguration; 404 (the manager's cache has not seen the
 * pod yet), 408, 429 and 5xx: the manager is not ready, retry like an outage.
 */
export function classifyRejection(status: number): 'unauthorized' | 'misconfigured' | 'unavailable' {
  if (status === 401) return 'unauthorized';
  if (status === 404 || status === 408 || status === 429 || status >= 500) return 'unavailable';
  return 'misconfigured';
}

export interface WaitIO {
  client: AgentClient;
  readToken: () => string;
  /** Writes grant.json atomically. */
  writeGrantFile: (content: AgentGrantFile) => void;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Milliseconds since the agent started. */
  now: () => number;
  random: () => number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Arms the wait-timeout (any length: api/longTimer.ts); returns a disarm function. */
  setTimer: (ms: number, fire: () => void) => () => void;
  /** Wall-clock time, epoch ms. */
  wallClock: () => number;
  /**
   * When konductor-wait first started in this pod, epoch ms: kept in the pod's shared emptyDir, so a
   * restarted wait container (crash, OOM, or a restartPolicy that restarts it after a timeout) goes on
   * counting from the first start instead of granting itself a fresh wait-timeout.
   */
  waitBeganAt: () => number;
}

/** `gave up waiting after 30s (konductor.io/wait-timeout): the wait began at ..., before this container restarted` */
export function describeTimeoutOnRestart(timeoutMs: number, beganAt: number): string {
  return (
    `gave up waiting after ${formatElapsed(timeoutMs)} (${ANNOTATIONS.waitTimeout}): the wait began at ` +
    `${new Date(beganAt).toISOString()}, before konductor-wait restarted`
  );
}

export async function runWait(config: AgentConfig, io: WaitIO): Promise<number> {
  io.out(`konductor-wait: pod ${config.podNamespace}/${config.podName} waiting for its konductor grants`);
  const timeout = new AbortController();
  let remaining: number | undefined;
  if (config.waitTimeoutMs !== undefined) {
    const began = io.waitBeganAt();
    remaining = config.waitTimeoutMs - Math.max(0, io.wallClock() - began);
    if (remaining <= 0) {
      io.err(`konductor-wait: ${describeTimeoutOnRestart(config.waitTimeoutMs, began)}`);
      return EXIT_TIMEOUT;
    }
  }
  const disarm =
    remaining === undefined ? () => {} : io.setTimer(Math.max(0, remaining), () => timeout.abort());
  try {
    return await waitLoop(config, io, timeout.signal);
  } finally {
    disarm();
  }
}

async function waitLoop(config: AgentConfig, io: WaitIO, timeout: AbortSignal): Promise<number> {
  let state = INITIAL_WAIT_PROGRESS;
  let outcome: WaitOutcome | undefined;
  let attempt = 0;
  let unauthorized = 0;
  let outage: string | undefined;
  let outageSince = 0;

  const onOpen = () => {
    unauthorized = 0;
    if (outage !== undefined) {
      io.err(`reconnected to the manager after ${formatElapsed(io.now() - outageSince)}`);
      outage = undefined;
    }
  };
  const onEvent = (event: WaitEvent): boolean => {
    attempt = 0; // the manager is talking: the next outage starts its backoff afresh
    const step = applyWaitEvent(state, event, io.now());
    state = step.state;
    for (const line of step.lines) io.out(line);
    outcome = step.outcome;
    return outcome !== undefined;
  };

  for (;;) {
    if (timeout.aborted) return timedOut(config, io, state, outage);
    let token: string;
    try {
      token = io.readToken();
    } catch (err) {
      io.err(`konductor-wait: ${isKonductorError(err) ? err.message : String(err)}`);
      return EXIT_MISCONFIGURED;
    }
    const result = await io.client.wait(token, { onOpen, onEvent }, timeout);
    if (outcome !== undefined) return finish(config, io, outcome);
    if (result.kind === 'aborted' || timeout.aborted) return timedOut(config, io, state, outage);

    let reason: string;
    if (result.kind === 'http') {
      const verdict = classifyRejection(result.status);
      const detail = `HTTP ${result.status}${result.code ? ` ${result.code}` : ''}: ${result.message}`;
      if (
        verdict === 'misconfigured' ||
        (verdict === 'unauthorized' && ++unauthorized >= MAX_UNAUTHORIZED_ATTEMPTS)
      ) {
        io.err(`konductor-wait: the manager rejected the request (${detail})`);
        return EXIT_MISCONFIGURED;
      }
      reason = verdict === 'unauthorized' ? `HTTP 401: ${result.message}` : `HTTP ${result.status}`;
    } else if (result.kind === 'network') {
      reason = result.reason;
    } else {
      reason = 'stream ended';
    }
    if (outage === undefined) {
      outage = reason;
      outageSince = io.now();
      io.err(`manager unreachable (${reason}), retrying`);
    }
    await io.sleep(backoffDelay(attempt++, io.random, RECONNECT_BACKOFF), timeout);
  }
}

function finish(config: AgentConfig, io: WaitIO, outcome: WaitOutcome): number {
  if (outcome.type === 'failed') {
    io.err(`konductor-wait: ${outcome.message} (${outcome.reason})`);
    return outcome.exitCode;
  }
  const content = buildGrantFile(outcome.grants, {
    name: config.podName,
    namespace: config.podNamespace,
    uid: config.podUid,
  });
  try {
    io.writeGrantFile(content);
  } catch (err) {
    io.err(`konductor-wait: cannot write ${config.grantFile}: ${(err as Error).message}`);
    return EXIT_MISCONFIGURED;
  }
  return EXIT_GRANTED;
}

function timedOut(config: AgentConfig, io: WaitIO, state: WaitProgress, outage: string | undefined): number {
  io.err(`konductor-wait: ${describeTimeout(state.current, config.waitTimeoutMs ?? 0, outage)}`);
  return EXIT_TIMEOUT;
}

/** File in the shared emptyDir holding when konductor-wait first started in this pod (epoch ms). */
export const WAIT_STARTED_FILE = 'wait-started-at';

/**
 * When konductor-wait first started in this pod: read from `path`, or — on the first start — `now`, written
 * there (exclusive create: two starts never disagree). Unreadable or unwritable: `now` (the emptyDir is
 * writable in every injected pod; this only keeps a misconfigured one from failing for it).
 */
export function waitBeganAt(path: string, now: number): number {
  try {
    const recorded = Number(readFileSync(path, 'utf8').trim());
    if (Number.isSafeInteger(recorded) && recorded > 0) return recorded;
  } catch {
    // first start
  }
  try {
    writeFileSync(path, `${now}\n`, { flag: 'wx', mode: 0o644 });
  } catch {
    // another start won the race (read it next time) or the directory is read-only
  }
  return now;
}

/** Atomic write: a temporary file in the same directory, then rename over grant.json. */
export function writeGrantFileAtomically(path: string, content: AgentGrantFile): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}
