/**
 * What konductor-wait makes of the manager's wait stream, pure: applyWaitEvent folds each event into the
 * wait's state (the progress lines to print, whether the wait is over), and the words and files that come of
 * it (grant.json's content, the timeout and rejection verdicts, the exit codes). sidecar/wait.ts runs the
 * I/O loop around it.
 */
import { ANNOTATIONS } from '../api/constants.ts';
import {
  formatProgress,
  type Grant,
  type GrantFile,
  type PrimitiveRefNs,
  type WaitEvent,
} from '../api/protocol.ts';
import type { FailureReason } from '../api/reasons.ts';

export const EXIT_GRANTED = 0;
export const EXIT_FAILED = 1;
export const EXIT_TIMEOUT = 2;
export const EXIT_MISCONFIGURED = 3;

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

/** `gave up waiting after 30s (konductor.io/wait-timeout): the wait began at ..., before this container restarted` */
export function describeTimeoutOnRestart(timeoutMs: number, beganAt: number): string {
  return (
    `gave up waiting after ${formatElapsed(timeoutMs)} (${ANNOTATIONS.waitTimeout}): the wait began at ` +
    `${new Date(beganAt).toISOString()}, before konductor-wait restarted`
  );
}
