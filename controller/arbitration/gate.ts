/**
 * Gate evaluation: a Gate opens when ALL of its conditions hold, each read from the object it names.
 *
 * - Job Complete / Failed: the Job has a condition of that type with status True.
 * - Semaphore Available: status.available >= (value ?? 1).
 * - Barrier Open, Gate Open: status.phase is Open.
 * - Lease Available / Held: status.phase is that state.
 * Open is LATCHED: a gate opens once and stays open (its conditionStatuses are frozen as the record of why it
 * opened), because pods already released by it have started and cannot be put back. spec.timeout counts from
 * the gate's creationTimestamp; a gate not open by then becomes Failed (latched too). When all conditions hold
 * in the decision that also finds the deadline passed, the gate opens (opening is checked first).
 * The controller evaluates a gate when it or an object it references changes (see referencesOf), never by
 * polling; the only timer is the timeout (requeueAfterMs).
 *
 * A condition on another namespace is read only when that namespace opts in: its owner annotates the
 * Namespace `konductor.io/gate-readers: "ns-a,ns-b"` (or "*"). Without it the condition is not met and says
 * why — a Gate must not become a way to read (or wait on) another tenant's Jobs and primitives.
 */

import { GATE_READERS_ANNOTATION } from '../../api/constants.ts';
import { GATE_CONDITION_STATES, KINDS } from '../../api/kinds.ts';
import type {
  Gate,
  GateCondition,
  GateConditionStatus,
  GateConditionType,
  GateStatus,
  Job,
  Primitive,
} from '../../api/types.ts';
import {
  findCondition,
  latchedReady,
  type ReadyDecision,
  readyDecision,
  statusMessage,
} from './conditions.ts';
import { type PlannedEvent, primitiveEvent } from './events.ts';
import type { KindRules, ReadTarget } from './kindRules.ts';
import { fromIso, readDuration, toIso } from './timestamps.ts';
import { plural } from './wording.ts';

/** What a gate condition may point at. */
export type GateTarget = ReadTarget;

/** Returns the object a condition references (from the controller's caches), or undefined when absent. */
export type GateLookup = (type: GateConditionType, namespace: string, name: string) => GateTarget | undefined;

/** May a gate in namespace `from` read objects of namespace `target` (target's opt-in, see gateReadersAllow)? */
export type GateReadPolicy = (target: string, from: string) => boolean;

export interface GateEvaluationInput {
  gate: Gate;
  lookup: GateLookup;
  now: number;
  /** Cross-namespace reads; default: none (a gate reads only its own namespace). */
  mayRead?: GateReadPolicy;
}

/**
 * Whether a namespace's annotations let gates of namespace `from` read it: the value of
 * konductor.io/gate-readers is a comma-separated list of namespace names, or "*" for every namespace.
 */
export function gateReadersAllow(annotations: Record<string, string> | undefined, from: string): boolean {
  const value = annotations?.[GATE_READERS_ANNOTATION];
  if (value === undefined) return false;
  return value
    .split(',')
    .map((v) => v.trim())
    .some((v) => v === '*' || v === from);
}

/** Its status with the Ready condition, whether it changed, its Events; requeueAfterMs: the timeout deadline. */
export type GateEvaluationResult = ReadyDecision<GateStatus>;

export interface GateReference {
  type: GateConditionType;
  namespace: string;
  name: string;
}

/** The objects a gate's conditions reference (namespace defaulted), deduplicated, in spec order. */
export function referencesOf(gate: Gate): GateReference[] {
  const namespace = gate.metadata.namespace ?? 'default';
  const seen = new Set<string>();
  const out: GateReference[] = [];
  for (const c of gate.spec?.conditions ?? []) {
    const ref = { type: c.type, namespace: c.namespace ?? namespace, name: c.name };
    const key = `${ref.type}/${ref.namespace}/${ref.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(ref);
  }
  return out;
}

/** Evaluates one condition against the referenced object. */
export function evaluateCondition(
  condition: GateCondition,
  gateNamespace: string,
  lookup: GateLookup,
  self?: { namespace: string; name: string },
  mayRead: GateReadPolicy = () => false,
): GateConditionStatus {
  const namespace = condition.namespace ?? gateNamespace;
  const base = { type: condition.type, name: condition.name, namespace };
  const ref = `${condition.type.toLowerCase()} ${namespace}/${condition.name}`;
  const result = (met: boolean, message: string): GateConditionStatus => ({
    ...base,
    met,
    message: statusMessage(message),
  });

  const accepted: readonly string[] | undefined = GATE_CONDITION_STATES[condition.type];
  if (accepted === undefined)
    return result(false, `unsupported condition type ${JSON.stringify(condition.type)}`);
  if (!accepted.includes(condition.state)) {
    return result(
      false,
      `${ref}: unsupported state ${JSON.stringify(condition.state)} (accepted: ${accepted.join(', ')})`,
    );
  }
  if (condition.type === 'Gate' && self && self.namespace === namespace && self.name === condition.name) {
    return result(false, `${ref} is this gate itself and can never open it`);
  }
  if (namespace !== gateNamespace && !mayRead(namespace, gateNamespace)) {
    return result(
      false,
      `${ref}: namespace ${namespace} does not let gates of namespace ${gateNamespace} read it ` +
        `(its owner can allow it: kubectl annotate namespace ${namespace} ${GATE_READERS_ANNOTATION}=${gateNamespace})`,
    );
  }
  const target = lookup(condition.type, namespace, condition.name);
  if (target === undefined) return result(false, `${ref} not found`);

  if (condition.type === 'Job') {
    const job = target as Job;
    const has = (type: string) =>
      (job.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
    if (has(condition.state)) return result(true, `${ref} is ${condition.state}`);
    const other = condition.state === 'Complete' ? 'Failed' : 'Complete';
    if (has(other)) return result(false, `${ref} is ${other}, needs ${condition.state}`);
    const s = job.status;
    return result(
      false,
      `${ref} is not ${condition.state} yet (active ${s?.active ?? 0}, succeeded ${s?.succeeded ?? 0}, failed ${s?.failed ?? 0})`,
    );
  }
  // A primitive (api/kinds.ts gateStates): a counted kind is Available with at least `value` permits free,
  // any other state is a status.phase.
  const status = (target as Primitive).status as { phase?: string; available?: number } | undefined;
  if (KINDS[condition.type].holds === 'permits' && condition.state === 'Available') {
    const needs = condition.value ?? 1;
    const available = status?.available;
    if (available === undefined) return result(false, `${ref} has no status yet, needs ${needs} available`);
    return result(
      available >= needs,
      available >= needs
        ? `${ref} has at least ${needs} available`
        : `${ref} has ${available} available, needs ${needs}`,
    );
  }
  const phase = status?.phase;
  if (phase === undefined) return result(false, `${ref} has no status yet, needs ${condition.state}`);
  return result(
    phase === condition.state,
    phase === condition.state ? `${ref} is ${phase}` : `${ref} is ${phase}, needs ${condition.state}`,
  );
}

export function evaluateGate(input: GateEvaluationInput): GateEvaluationResult {
  const { gate, lookup, now, mayRead } = input;
  const namespace = gate.metadata.namespace ?? 'default';
  const name = gate.metadata.name ?? '';
  const ref = `gate ${namespace}/${name}`;
  const nowIso = toIso(now);
  const old = gate.status;
  const generation = gate.metadata.generation;
  const events: PlannedEvent[] = [];

  const finish = readyDecision<GateStatus>(old, generation, nowIso, events);

  if (old !== undefined && (old.phase === 'Open' || old.phase === 'Failed')) {
    return finish({ ...old }, latchedReady(old, ref));
  }

  const conditionStatuses = (gate.spec?.conditions ?? []).map((c) =>
    evaluateCondition(c, namespace, lookup, { namespace, name }, mayRead),
  );
  const unmet = conditionStatuses.filter((c) => !c.met);
  const status: GateStatus = { phase: 'Waiting', conditionStatuses };

  if (unmet.length === 0) {
    status.phase = 'Open';
    status.openedAt = nowIso;
    const msg = `${ref} opened: ${conditionStatuses.length === 0 ? 'it has no conditions' : conditionStatuses.map((c) => c.message).join('; ')}`;
    events.push(primitiveEvent('Normal', 'Opened', msg));
    return finish(status, { type: 'Ready', status: 'True', reason: 'Opened', message: msg });
  }

  const waitingFor = `waiting for ${unmet.map((c) => c.message).join('; ')}`;
  const timeout = readDuration('timeout', gate.spec?.timeout);
  if (timeout.kind === 'invalid') {
    return finish(status, {
      type: 'Ready',
      status: 'False',
      reason: 'InvalidSpec',
      message: timeout.message,
    });
  }
  const created = fromIso(gate.metadata.creationTimestamp);
  if (timeout.kind === 'valid' && created !== undefined) {
    const deadline = created + timeout.ms;
    if (deadline <= now) {
      status.phase = 'Failed';
      status.failedAt = nowIso;
      const msg = `${ref} timed out ${gate.spec.timeout} after creation, ${waitingFor}`;
      events.push(primitiveEvent('Warning', 'Failed', msg));
      return finish(status, { type: 'Ready', status: 'False', reason: 'TimedOut', message: msg });
    }
    return finish(
      status,
      { type: 'Ready', status: 'False', reason: 'Waiting', message: waitingFor },
      Math.max(0, Math.ceil(deadline - now)),
    );
  }
  return finish(status, { type: 'Ready', status: 'False', reason: 'Waiting', message: waitingFor });
}

/** What a pod does at this gate: pass when Open, fail when Failed, wait otherwise. */
export function gateVerdict(status: GateStatus | undefined): 'wait' | 'pass' | { failed: string } {
  if (status?.phase === 'Open') return 'pass';
  if (status?.phase === 'Failed') {
    return { failed: findCondition(status.conditions, 'Ready')?.message ?? 'the gate failed' };
  }
  return 'wait';
}

function gateFailure(g: Gate): string {
  const unmet = (g.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);
  return unmet.length
    ? `timed out (${g.spec.timeout ?? ''}) with unmet conditions: ${unmet.join('; ')}`
    : 'timed out';
}

const unmetOf = (g: Gate) => (g.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);

/** The Gate's row of the kind table (./kinds.ts). */
export const gateRules: KindRules<Gate> = {
  // Called through `reads` (a class instance: its methods must keep their `this`).
  arbitrate: ({ primitive, now, reads }) =>
    evaluateGate({
      gate: primitive,
      now,
      lookup: (t, ns, n) => reads.lookup(t, ns, n),
      mayRead: (t, f) => reads.mayRead(t, f),
    }),
  readsPods: false,
  holders: () => [],
  grantOf: (g) =>
    gateVerdict(g.status) === 'pass' ? { token: 0, grantedAt: g.status?.openedAt } : undefined,
  standing: (g, stage, pod) =>
    typeof gateVerdict(g.status) === 'object'
      ? {
          failed: {
            reason: 'GateFailed',
            message: `gate ${pod.namespace}/${stage.name} failed: ${gateFailure(g)}`,
          },
        }
      : { waiting: { position: 0, queueLength: 0, unmet: unmetOf(g) } },
  figures: (g) => ({
    capacity: g.spec?.conditions?.length ?? 0,
    inUse: (g.status?.conditionStatuses ?? []).filter((c) => c.met).length,
    waiting: 0,
  }),
  references: referencesOf,
  settled: (g) => g.status?.phase === 'Open' || g.status?.phase === 'Failed',
  explain: {
    use: (f) => `${f.inUse} of ${f.capacity} conditions met`,
    passed: (_stage, g) => `open since ${g.grantedAt}`,
    queueReason: (g) => {
      if (g.status?.phase === 'Failed')
        return `the gate failed: ${findCondition(g.status.conditions, 'Ready')?.message ?? 'timed out'}`;
      const unmet = unmetOf(g);
      return unmet.length > 0 ? `conditions not met: ${unmet.join('; ')}` : 'conditions not evaluated yet';
    },
    waiting: (_g, _stage, standing) => {
      const unmet = standing.unmet ?? [];
      return {
        detail: unmet.length > 0 ? `${plural(unmet.length, 'condition')} not met` : 'not evaluated yet',
        toStart: unmet.length > 0 ? unmet.join('; ') : 'the manager must evaluate the gate (is it running?)',
      };
    },
    holderColumns: 'none',
    listed: () => ({ rows: [], note: 'a gate holds nothing: pods pass while it is open' }),
  },
};
