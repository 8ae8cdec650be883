/**
 * `konductor-wait` (DESIGN §4): the init container that blocks the pod until the manager grants every
 * primitive the pod asked for, then writes /var/run/konductor/grant.json and exits 0.
 *
 * The decisions are pure functions over plain data (./waitProgress.ts: applyWaitEvent, classifyRejection,
 * buildGrantFile, describeTimeout); runWait() is the I/O loop around them: open the stream, feed it events, reconnect with
 * jittered backoff when the manager is away, give up at the wait-timeout.
 *
 * Exit codes: 0 granted, 1 the manager reported a failure, 2 wait-timeout, 3 misconfiguration.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { backoffDelay, RECONNECT_BACKOFF } from '../api/backoff.ts';
import { isKonductorError } from '../api/errors.ts';
import type { WaitEvent } from '../api/protocol.ts';
import type { AgentClient } from './agentClient.ts';
import type { AgentConfig } from './config.ts';
import {
  type AgentGrantFile,
  applyWaitEvent,
  buildGrantFile,
  classifyRejection,
  describeTimeout,
  describeTimeoutOnRestart,
  EXIT_GRANTED,
  EXIT_MISCONFIGURED,
  EXIT_TIMEOUT,
  formatElapsed,
  INITIAL_WAIT_PROGRESS,
  type WaitOutcome,
  type WaitProgress,
} from './waitProgress.ts';
/** 401 may be a token the API server does not know yet: retry this many times before giving up. */
export const MAX_UNAUTHORIZED_ATTEMPTS = 3;

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
