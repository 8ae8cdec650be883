/**
 * The agent protocol (DESIGN §4): what `konductor-wait` / `konductor-hold` and the manager's agent API say
 * to each other. HTTPS, JSON; the pod is identified solely by its projected service-account token
 * (`Authorization: Bearer <token>`, audience `konductor`), which the manager checks with a TokenReview.
 *
 * `POST /v1/wait` (body `{}`) answers 200 with an NDJSON stream (`application/x-ndjson`) of WaitEvents:
 *   - `queued` once per primitive the pod starts waiting on, then `progress` whenever its place changes;
 *   - `granted` once per primitive, in acquisition order (see annotations.ts primitivesOf);
 *   - `heartbeat` every few seconds while nothing else happens (keeps proxies and the agent's idle timer happy);
 *   - the stream ends with exactly one terminal event: `done` (all primitives granted; carries every grant)
 *     or `failed` (reason + readable message). A dropped stream without a terminal event means: reconnect.
 * `POST /v1/release` (body ReleaseRequest) is a hint that the pod stops: the manager re-reads the pod from the
 * API server and gives its grants back only when the API shows it gone or its main containers stopped
 * (ReleaseResponse says which grants go now and which stay held until then); idempotent.
 * Errors outside the stream: JSON `AgentErrorBody` with 401 (no/invalid token), 403 (token not bound to a pod),
 * 404 (pod has no konductor request), 400 (bad body).
 */
import type { PrimitiveKind } from './constants.ts';
import type { FailureReason } from './reasons.ts';

export const AGENT_API = {
  wait: { method: 'POST', path: '/v1/wait' },
  release: { method: 'POST', path: '/v1/release' },
} as const;
export const BEARER_PREFIX = 'Bearer ';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
/** The manager sends a heartbeat at least this often on an open wait stream. */
export const HEARTBEAT_INTERVAL_MS = 10_000;

export interface PrimitiveRefNs {
  kind: PrimitiveKind;
  name: string;
  namespace: string;
}

/** A grant handed to a pod. For Barrier and Gate (nothing held) the token is 0. */
export interface Grant {
  kind: PrimitiveKind;
  name: string;
  namespace: string;
  /** Fencing token (status.nextToken at grant time). */
  token: number;
  grantedAt: string;
  /** Pod name and UID the grant belongs to. */
  pod: string;
  uid: string;
}

/** Where a pod stands in one primitive's queue, with the figures formatProgress prints. */
export interface QueueStanding {
  primitive: PrimitiveRefNs;
  /** 1-based position among the waiters (1 = next). 0 when there is no queue (barrier, gate). */
  position: number;
  queueLength: number;
  /** Readable one-liner chosen by the manager (the agent prints formatProgress(event) if it is empty). */
  message: string;
  /** Semaphore: permits held / spec.permits / permits this pod asks for. */
  inUse?: number;
  capacity?: number;
  requested?: number;
  /** Lease: the current holder's pod name. */
  holder?: string;
  /** Barrier: pods arrived / needed to open (quorum or expected). */
  arrived?: number;
  expected?: number;
  /** Gate: readable descriptions of the conditions not met yet. */
  unmet?: string[];
  /** The primitive does not exist (yet); the pod waits for it to be created. */
  missing?: boolean;
}

export type QueuedEvent = { type: 'queued' } & QueueStanding;
export type ProgressEvent = { type: 'progress' } & QueueStanding;
export interface GrantedEvent {
  type: 'granted';
  grant: Grant;
}
export interface DoneEvent {
  type: 'done';
  grants: Grant[];
}
export type { FailureReason };
export interface FailedEvent {
  type: 'failed';
  reason: FailureReason;
  message: string;
}
export interface HeartbeatEvent {
  type: 'heartbeat';
}

export type WaitEvent = QueuedEvent | ProgressEvent | GrantedEvent | DoneEvent | FailedEvent | HeartbeatEvent;

/** Body of POST /v1/wait. Empty: the token says who the pod is. */
export type WaitRequest = Record<string, never>;

export type ReleaseReason = 'Terminating' | 'Completed';
/** Body of POST /v1/release. */
export interface ReleaseRequest {
  reason?: ReleaseReason;
}
export interface ReleaseResponse {
  /** Grants the pod's state in the API lets go: they are released by the next status write. */
  released: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
  /**
   * Grants still held: the API does not show the pod gone or its main containers stopped (yet). They go
   * back as soon as it does, without another call. Absent from older managers.
   */
  held?: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
}

export interface AgentErrorBody {
  code: string;
  message: string;
}

/** Contents of /var/run/konductor/grant.json written by konductor-wait. */
export interface GrantFile {
  pod: string;
  uid: string;
  namespace: string;
  grants: Grant[];
}

/** One NDJSON line. */
export function encodeWaitEvent(event: WaitEvent): string {
  return `${JSON.stringify(event)}\n`;
}

const EVENT_TYPES = new Set(['queued', 'progress', 'granted', 'done', 'failed', 'heartbeat']);

/** Parses one NDJSON line; null for a blank, malformed or unknown line (the agent skips it). */
export function decodeWaitEvent(line: string): WaitEvent | null {
  const trimmed = line.trim();
  if (trimmed === '') return null;
  try {
    const value: unknown = JSON.parse(trimmed);
    if (typeof value !== 'object' || value === null) return null;
    const type = (value as { type?: unknown }).type;
    return typeof type === 'string' && EVENT_TYPES.has(type) ? (value as WaitEvent) : null;
  } catch {
    return null;
  }
}

/**
 * A readable progress line for a queued/progress event, e.g.
 * `waiting for semaphore default/batch-slots: position 2 of 4 (2/2 permits in use)`.
 */
export function formatProgress(event: QueueStanding): string {
  const p = event.primitive;
  const head = `waiting for ${p.kind.toLowerCase()} ${p.namespace}/${p.name}`;
  if (event.missing) return `${head}: it does not exist yet`;
  const parts: string[] = [];
  if (event.position > 0) parts.push(`position ${event.position} of ${event.queueLength}`);
  const details: string[] = [];
  if (event.inUse !== undefined && event.capacity !== undefined) {
    details.push(`${event.inUse}/${event.capacity} permits in use`);
  }
  if (event.requested !== undefined && event.requested > 1) details.push(`needs ${event.requested}`);
  if (event.holder !== undefined) details.push(`held by ${event.holder}`);
  if (event.arrived !== undefined && event.expected !== undefined) {
    details.push(`${event.arrived}/${event.expected} arrived`);
  }
  if (event.unmet !== undefined && event.unmet.length > 0) details.push(`not yet: ${event.unmet.join(', ')}`);
  let text = head;
  if (parts.length > 0) text += `: ${parts.join(', ')}`;
  if (details.length > 0) text += parts.length > 0 ? ` (${details.join(', ')})` : `: ${details.join(', ')}`;
  return text;
}
