/**
 * The wait stream's state machine (POST /v1/wait), pure: given what the stream has told the agent so far and
 * the pod's standing now, which events go out and whether the stream ends. The agent API route
 * (controller/agentApi.ts) calls it on every change of the pod's standing and writes what it returns; the
 * agent's side of the same conversation is sidecar/wait.ts's applyWaitEvent.
 *
 *   queued (first standing of a primitive) -> progress (standing changed) -> granted (per primitive)
 *   -> done (every stage passed) | failed (a stage failed, or the pod is gone)
 */
import type { Grant, QueueStanding, WaitEvent } from '../../api/protocol.ts';
import type { StageState } from './stages.ts';

/** What the stream has sent so far. */
export interface WaitStreamState {
  /** Primitives (`Kind/name`) whose grant was announced. */
  readonly granted: ReadonlySet<string>;
  /** Primitives (`Kind/name`) a `queued` event went out for: later standings are `progress`. */
  readonly queued: ReadonlySet<string>;
  /** The last standing sent (its identity key), so an unchanged standing sends nothing. */
  readonly lastStanding: string;
}

export const WAIT_STREAM_START: WaitStreamState = { granted: new Set(), queued: new Set(), lastStanding: '' };

/** The pod's standing as the agent view reports it: its stages in acquisition order, up to the first not passed. */
export interface PodStanding {
  pod: { stages: readonly unknown[] };
  stages: readonly StageState[];
}

export interface WaitStreamStep {
  state: WaitStreamState;
  /** Events to write, in order. */
  events: WaitEvent[];
  /** The last event is a verdict (done or failed): end the stream. */
  end: boolean;
}

const refKey = (r: { kind: string; name: string }) => `${r.kind}/${r.name}`;

/** What tells two standings apart for the agent (the message is derived from these). */
const standingKey = (s: QueueStanding) =>
  JSON.stringify([s.primitive, s.position, s.queueLength, s.inUse, s.holder, s.arrived, s.unmet, s.missing]);

/**
 * The next step of a pod's wait stream. `standing` undefined: the pod left the cache (deleted), a failure.
 * Grants already announced are not repeated, an unchanged standing sends nothing, and `done` carries the
 * grants as the primitives hold them now (a primitive deleted and recreated meanwhile grants anew, with a
 * larger token: grant.json must carry the live tokens, not the first ones announced).
 */
export function stepWaitStream(
  state: WaitStreamState,
  standing: PodStanding | undefined,
  pod: { namespace: string; name: string },
): WaitStreamStep {
  if (!standing) {
    const message = `pod ${pod.namespace}/${pod.name} is gone`;
    return { state, events: [{ type: 'failed', reason: 'PodTerminating', message }], end: true };
  }
  const events: WaitEvent[] = [];
  let granted = state.granted;
  for (const s of standing.stages) {
    if (s.state === 'passed') {
      const key = refKey(s.grant);
      if (!granted.has(key)) {
        granted = new Set(granted).add(key);
        events.push({ type: 'granted', grant: s.grant });
      }
    } else if (s.state === 'failed') {
      events.push({ type: 'failed', reason: s.reason, message: s.message });
      return { state: { ...state, granted }, events, end: true };
    } else {
      const key = standingKey(s.standing);
      if (key === state.lastStanding) return { state: { ...state, granted }, events, end: false };
      const primitive = refKey(s.standing.primitive);
      const first = !state.queued.has(primitive);
      events.push({ type: first ? 'queued' : 'progress', ...s.standing });
      const queued = first ? new Set(state.queued).add(primitive) : state.queued;
      return { state: { granted, queued, lastStanding: key }, events, end: false };
    }
  }
  const next = { ...state, granted };
  if (standing.stages.length !== standing.pod.stages.length) return { state: next, events, end: false };
  const grants: Grant[] = standing.stages.flatMap((s) => (s.state === 'passed' ? [s.grant] : []));
  events.push({ type: 'done', grants });
  return { state: next, events, end: true };
}
