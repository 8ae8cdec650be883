/**
 * `konductor-hold` (DESIGN §4): the native sidecar that holds the pod's grants while it runs. It does
 * nothing until SIGTERM/SIGINT (the kubelet stops native sidecars once the main containers have exited),
 * then tells the manager the pod stops, and exits 0 either way. That call is a hint: the manager re-reads
 * the pod from the API server and gives the grants back once the API shows the pod's main containers
 * stopped — which the controller sees on its own too, so the call only makes it look sooner.
 */
import { readFileSync } from 'node:fs';
import { backoffCeiling } from '../api/backoff.ts';
import { isKonductorError } from '../api/errors.ts';
import type { ReleaseResponse } from '../api/protocol.ts';
import type { AgentCallResult, AgentClient } from './agentClient.ts';
import type { AgentConfig } from './config.ts';
import { type AgentGrantFile, describeGrant } from './waitProgress.ts';

export interface ReleasePolicy {
  attempts: number;
  /** Overall budget of all attempts together (the pod's grace period is usually longer, but be quick). */
  totalMs: number;
  /** Timeout of one attempt. */
  attemptTimeoutMs: number;
  /** Pause before retry n (0-based). */
  pauseMs: (retry: number) => number;
}

export const RELEASE_POLICY: ReleasePolicy = {
  attempts: 3,
  totalMs: 2000,
  attemptTimeoutMs: 600,
  pauseMs: (retry) => backoffCeiling(retry, { baseMs: 100, maxMs: 2000 }),
};

/**
 * `released semaphore default/batch-slots (token 7)`, or what stays held until the pod's status shows its
 * containers stopped; one line.
 */
export function describeRelease(response: ReleaseResponse): string {
  const { released } = response;
  const held = response.held ?? [];
  if (released.length === 0 && held.length === 0)
    return 'released nothing: the pod held no grants (already released)';
  const parts: string[] = [];
  if (released.length > 0) parts.push(`released ${released.map(describeGrant).join(', ')}`);
  if (held.length > 0)
    parts.push(
      `${held.map(describeGrant).join(', ')} go${held.length === 1 ? 'es' : ''} back once the pod's status shows its containers stopped`,
    );
  return parts.join('; ');
}

/** `semaphore default/batch-slots (token 7), barrier default/start` from grant.json, or undefined. */
export function describeHeld(file: AgentGrantFile | undefined): string | undefined {
  const grants = file?.grants;
  if (!Array.isArray(grants) || grants.length === 0) return undefined;
  return grants.map(describeGrant).join(', ');
}

export interface HoldIO {
  client: AgentClient;
  readToken: () => string;
  out: (line: string) => void;
  err: (line: string) => void;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Resolves with the signal's name when the process is asked to stop. Installs the handlers at once. */
  untilStopSignal: () => Promise<string>;
  /** Keeps the process alive without waking it up; returns the function that lets it go. */
  keepAlive: () => () => void;
}

export async function runHold(config: AgentConfig, io: HoldIO): Promise<number> {
  const stopped = io.untilStopSignal();
  const release = io.keepAlive();
  const held = describeHeld(readGrantFile(config.grantFile));
  io.out(
    `konductor-hold: pod ${config.podNamespace}/${config.podName} holding ${held ?? 'its konductor grants'} until it stops`,
  );
  const signal = await stopped;
  try {
    io.out(`konductor-hold: ${signal} received, releasing`);
    await releaseWithRetries(io, RELEASE_POLICY);
  } finally {
    release();
  }
  return 0;
}

/** Posts /v1/release up to `policy.attempts` times within `policy.totalMs`; logs the result, never throws. */
export async function releaseWithRetries(io: HoldIO, policy: ReleasePolicy): Promise<boolean> {
  const deadline = io.now() + policy.totalMs;
  let last: AgentCallResult<ReleaseResponse> | undefined;
  for (let attempt = 0; attempt < policy.attempts; attempt++) {
    if (attempt > 0) {
      const pause = Math.min(policy.pauseMs(attempt - 1), deadline - io.now());
      if (pause > 0) await io.sleep(pause);
    }
    const left = deadline - io.now();
    if (left <= 0) break;
    let token: string;
    try {
      token = io.readToken();
    } catch (err) {
      io.err(`release skipped: ${isKonductorError(err) ? err.message : String(err)}`);
      return false;
    }
    last = await io.client.release(token, { reason: 'Terminating' }, Math.min(policy.attemptTimeoutMs, left));
    if (last.kind === 'ok') {
      io.out(describeRelease(last.value));
      return true;
    }
    // A client error will not change on retry.
    if (
      last.kind === 'http' &&
      last.status >= 400 &&
      last.status < 500 &&
      last.status !== 408 &&
      last.status !== 429
    ) {
      break;
    }
  }
  const why =
    last === undefined
      ? 'no time left'
      : last.kind === 'http'
        ? `HTTP ${last.status}${last.code ? ` ${last.code}` : ''}: ${last.message}`
        : last.kind === 'network'
          ? last.reason
          : 'aborted';
  io.err(`release failed (${why}); the controller releases the pod's grants when the pod completes`);
  return false;
}

function readGrantFile(path: string): AgentGrantFile | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as AgentGrantFile;
  } catch {
    return undefined;
  }
}
