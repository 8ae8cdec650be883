/**
 * `kubectl konductor why POD`, as plain data: what the pod waits for, where it stands at each of its
 * primitives (the agent API's own stageState), and what must happen for it to start (each kind's words,
 * from the kind table). Pure function of a Snapshot and the pod.
 */
import { ANNOTATION_PREFIX, ANNOTATIONS, type PrimitiveKind, WAIT_CONTAINER } from '../api/constants.ts';
import { parseDuration } from '../api/duration.ts';
import type { Pod, Primitive } from '../api/types.ts';
import { rulesOf } from '../controller/arbitration/kinds.ts';
import type { IndexedPod, Stage } from '../controller/arbitration/podIndex.ts';
import { isPresent, type PodView, podRequestFor, toPodView } from '../controller/arbitration/podView.ts';
import { NO_QUEUE, queueOrder, type StageState, stageState } from '../controller/arbitration/stages.ts';
import { plural } from '../controller/arbitration/wording.ts';
import type { Snapshot } from './snapshot.ts';
import { waitersOf } from './views.ts';

const lower = (kind: PrimitiveKind) => kind.toLowerCase();

export type StageStateName = 'passed' | 'waiting' | 'failed' | 'missing' | 'not-reached';

export interface StageWhy {
  kind: PrimitiveKind;
  name: string;
  state: StageStateName;
  /** 1-based place in the queue (Semaphore, Lease). */
  position?: number;
  queueLength?: number;
  /** What the state means, in one line. */
  detail: string;
  /** What must happen for the pod to get past this primitive (absent once passed). */
  toStart?: string;
}

export interface WhyView {
  pod: string;
  namespace: string;
  uid: string;
  phase: string;
  managed: boolean;
  /** The pod's konductor.io/ annotations. */
  annotations: Record<string, string>;
  /** It waits in konductor-wait now. */
  waiting: boolean;
  /** One sentence. */
  summary: string;
  /** One per primitive, in acquisition order (gate, barrier, lease, semaphore). */
  stages: StageWhy[];
  /** konductor.io/wait-timeout, and when the pod gives up (wait container start + timeout). */
  waitTimeout?: { duration: string; deadline?: string };
}

/** What the pod waits for, where it stands at each of its primitives, and what must happen for it to start. */
export function whyView(s: Snapshot, pod: Pod): WhyView {
  const meta = pod.metadata;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.annotations ?? {}))
    if (k.startsWith(ANNOTATION_PREFIX)) annotations[k] = v;
  const uid = meta.uid ?? '';
  const namespace = meta.namespace ?? 'default';
  const base = { pod: meta.name ?? '', namespace, uid, phase: pod.status?.phase ?? '', annotations };
  const indexed = s.pods.get(uid);
  if (!indexed) {
    const summary =
      Object.keys(annotations).length === 0
        ? 'not managed by konductor: the pod has no konductor.io/ annotations'
        : 'not managed by konductor: the webhook did not inject it (created before konductor was installed, or its namespace is excluded)';
    return { ...base, managed: false, waiting: false, summary, stages: [] };
  }
  const ref = { name: base.pod, namespace, uid };
  const stages: StageWhy[] = [];
  let blocked = false;
  for (const stage of indexed.stages) {
    if (blocked) {
      stages.push({
        kind: stage.kind,
        name: stage.name,
        state: 'not-reached',
        detail: 'acquired after the primitives before it (order: gate, barrier, lease, semaphore)',
      });
      continue;
    }
    const primitive = s.primitives.get(stage.key)?.primitive;
    const views = () => waitersOf(s, stage.key, stage.kind).map((w) => w.view);
    const order = () => (primitive ? queueOrder(stage.kind, primitive, views()) : NO_QUEUE);
    const why = describeStage(stage, primitive, stageState(stage, primitive, ref, order), indexed, views);
    stages.push(why);
    if (why.state !== 'passed') blocked = true;
  }
  const view = toPodView(pod, podRequestFor(pod, indexed.request, indexed.stages[0]?.kind ?? 'Gate'), {
    eligible: true,
  });
  const current = stages.find((x) => x.state !== 'passed' && x.state !== 'not-reached');
  const waiting = !view.passedWait && !view.finished && current !== undefined;
  const out: WhyView = {
    ...base,
    managed: true,
    waiting,
    summary: sentence(base, view, current, stages),
    stages,
  };
  const timeout = annotations[ANNOTATIONS.waitTimeout];
  if (timeout) {
    out.waitTimeout = { duration: timeout };
    const started = pod.status?.initContainerStatuses?.find((c) => c.name === WAIT_CONTAINER)?.state?.running
      ?.startedAt;
    try {
      if (started)
        out.waitTimeout.deadline = new Date(Date.parse(started) + parseDuration(timeout)).toISOString();
    } catch {
      /* an invalid duration was denied at admission */
    }
  }
  return out;
}

function sentence(
  base: { pod: string; namespace: string },
  view: PodView,
  current: StageWhy | undefined,
  stages: readonly StageWhy[],
): string {
  const who = `pod ${base.namespace}/${base.pod}`;
  if (view.finished) return `${who} has finished: it holds nothing`;
  if (view.passedWait) return `${who} is running: it passed all ${plural(stages.length, 'primitive')}`;
  if (!isPresent(view))
    return current === undefined && view.startTimeoutMs !== undefined
      ? `${who} has been granted everything and its scheduling gate removed: it waits for the scheduler to place it (konductor.io/start-timeout ${view.startTimeoutMs / 1000}s)`
      : `${who} is not scheduled to a node yet: it takes no place in a queue until it is`;
  if (!current)
    return view.gated
      ? `${who} has been granted everything: its scheduling gate is about to be removed`
      : `${who} has been granted everything: konductor-wait is about to exit`;
  // scheduling-gate mode: it waits unscheduled, holding no node resources.
  const unscheduled = view.gated ? ', unscheduled (scheduling gate konductor.io/wait)' : '';
  const where = `${lower(current.kind)} ${base.namespace}/${current.name}`;
  if (current.state === 'failed') return `${who} will not start: ${where} failed`;
  if (current.state === 'missing') return `${who} waits for ${where}, which does not exist`;
  return `${who} waits for ${where}${current.position ? ` (position ${current.position} of ${current.queueLength})` : ''}${unscheduled}`;
}

function describeStage(
  stage: Stage,
  primitive: Primitive | undefined,
  st: StageState,
  pod: IndexedPod,
  views: () => PodView[],
): StageWhy {
  const out = { kind: stage.kind, name: stage.name };
  const rules = rulesOf(stage.kind);
  if (st.state === 'passed')
    return { ...out, state: 'passed', detail: rules.explain.passed(stage, st.grant) };
  if (st.state === 'failed')
    return {
      ...out,
      state: 'failed',
      detail: st.message,
      toStart: `nothing: recreate the ${lower(stage.kind)} and the pod`,
    };
  const standing = st.standing;
  if (standing.missing || !primitive) {
    return {
      ...out,
      state: 'missing',
      detail: `${lower(stage.kind)} ${pod.pod.metadata.namespace}/${stage.name} does not exist`,
      toStart: `${stage.kind} ${stage.name} must be created in namespace ${pod.pod.metadata.namespace}`,
    };
  }
  const ahead = () => (rules.queue?.(primitive, views()) ?? []).slice(0, Math.max(0, standing.position - 1));
  const { detail, toStart } = rules.explain.waiting(primitive, stage, standing, ahead);
  const place = standing.position ? { position: standing.position, queueLength: standing.queueLength } : {};
  return { ...out, state: 'waiting', ...place, detail, toStart };
}
