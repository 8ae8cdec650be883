/**
 * The admission decision for one AdmissionReview: Pods annotated for konductor get the injection patch (or a
 * denial naming what is wrong), Jobs and CronJobs get their annotations checked and copied to the pod
 * template, and a pod's konductor metadata cannot change after creation. Pure apart from the primitive
 * lookups behind the warnings.
 */
import { IMMUTABLE_METADATA_MESSAGE } from '../api/admissionPolicies.ts';
import {
  type AnnotationProblem,
  hasKonductorAnnotations,
  type KonductorRequest,
  type ParseResult,
  parseAnnotations,
  primitivesOf,
} from '../api/annotations.ts';
import { ANNOTATIONS, HOLD_CONTAINER, type PrimitiveKind, WAIT_CONTAINER } from '../api/constants.ts';
import type { CronJob, Job, Pod } from '../api/types.ts';
import {
  ADMISSION_API_VERSION,
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionReview,
  admissionReviewProblem,
  allow,
  annotationsOf,
  deny,
  describeObject,
  isObject,
  namespaceOf,
} from './admissionReview.ts';
import { buildInjectionPatch, type InjectionConfig } from './injectionPatch.ts';
import { changedKonductorMetadata, podSpecShapeProblem, reservedContainerImpostor } from './podChecks.ts';
import {
  buildTemplateAnnotationPatch,
  effectiveTemplateAnnotations,
  konductorAnnotationsOf,
} from './templateAnnotations.ts';
export type PrimitiveExists = (
  kind: PrimitiveKind,
  namespace: string,
  name: string,
) => boolean | Promise<boolean>;

export interface AdmissionDeps {
  injection: InjectionConfig;
  /** Whether a referenced primitive exists; absent = no existence warnings. */
  primitiveExists?: PrimitiveExists;
  /**
   * The `spec.permits` of an existing Semaphore (undefined when unknown): a pod asking for more gets an
   * admission warning, since it can never be granted.
   */
  semaphorePermits?: (namespace: string, name: string) => number | undefined;
  /** Bound on all primitiveExists lookups of one review together, default 1000 ms. */
  lookupTimeoutMs?: number;
  /** Clock for the konductor.io/admitted-at annotation; absent = no annotation (pure tests). */
  now?: () => number;
}

/** A decision with what it found wrong: the annotation problems a denial names (none for any other). */
export interface AdmissionOutcome {
  review: AdmissionReview;
  problems: readonly AnnotationProblem[];
}

/** A response, with the annotation problems it denies for (the annotations are parsed once per review). */
type Decision = AdmissionResponse | { response: AdmissionResponse; problems: readonly AnnotationProblem[] };

/** Decides one AdmissionReview. Never rejects; the response always carries request.uid. */
export async function decideAdmission(
  review: AdmissionReview,
  deps: AdmissionDeps,
): Promise<AdmissionOutcome> {
  let uid = '';
  try {
    const req = (review as { request?: unknown })?.request;
    uid = isObject(req) && typeof req.uid === 'string' ? req.uid : '';
    const problem = admissionReviewProblem(review);
    if (problem !== null)
      return outcome(deny(uid, 400, 'BadRequest', `malformed AdmissionReview: ${problem}`));
    return outcome(await decide(review.request as AdmissionRequest, deps));
  } catch (err) {
    return outcome(deny(uid, 500, 'InternalError', `konductor webhook failed: ${errorMessage(err)}`));
  }
}

/** decideAdmission's response alone. */
export async function reviewAdmission(
  review: AdmissionReview,
  deps: AdmissionDeps,
): Promise<AdmissionReview> {
  return (await decideAdmission(review, deps)).review;
}

async function decide(req: AdmissionRequest, deps: AdmissionDeps): Promise<Decision> {
  const { uid, operation } = req;
  if (req.subResource) return allow(uid);
  const group = req.kind.group ?? '';
  const kind = req.kind.kind;

  if (group === '' && kind === 'Pod') {
    if (operation === 'CREATE') return admitPodCreate(req, deps);
    if (operation === 'UPDATE') return validatePodUpdate(req);
    return allow(uid);
  }
  if (group === 'batch' && kind === 'Job') {
    if (operation === 'CREATE') return admitTemplateOwner(req, 'Job');
    if (operation === 'UPDATE') return validateUpdate(req, jobEffectiveAnnotations('Job'));
    return allow(uid);
  }
  if (group === 'batch' && kind === 'CronJob') {
    if (operation === 'CREATE' || operation === 'UPDATE') return admitTemplateOwner(req, 'CronJob');
    return allow(uid);
  }
  return allow(uid);
}

async function admitPodCreate(req: AdmissionRequest, deps: AdmissionDeps): Promise<Decision> {
  const pod = req.object;
  if (!isObject(pod)) return deny(req.uid, 400, 'BadRequest', 'request.object is not a Pod');
  const annotations = annotationsOf(pod);
  if (!hasKonductorAnnotations(annotations)) return allow(req.uid);
  const parsed = parseAnnotations(annotations);
  if (!parsed.ok) return denyProblems(req.uid, 'Pod', describeObject(req, pod), parsed.problems);
  const request = parsed.request;
  if (request === null) return allow(req.uid);
  if (!isObject(pod.spec)) return deny(req.uid, 400, 'BadRequest', 'request.object has no spec');
  const malformed = podSpecShapeProblem(pod.spec);
  if (malformed !== undefined)
    return deny(req.uid, 400, 'BadRequest', `Pod ${describeObject(req, pod)}: ${malformed}`);
  const impostor = reservedContainerImpostor(pod as unknown as Pod, deps.injection);
  if (impostor !== undefined) {
    return deny(
      req.uid,
      403,
      'Forbidden',
      `Pod ${describeObject(req, pod)}: init container ${impostor} is not the agent konductor injects ` +
        `(image ${deps.injection.agentImage}); the names ${WAIT_CONTAINER} and ${HOLD_CONTAINER} are reserved ` +
        'for the konductor webhook: rename the container',
    );
  }

  const nodeName = (pod.spec as { nodeName?: unknown }).nodeName;
  if (request.waitMode === 'scheduling-gate' && typeof nodeName === 'string' && nodeName !== '') {
    return deny(
      req.uid,
      400,
      'BadRequest',
      `Pod ${describeObject(req, pod)}: ${ANNOTATIONS.waitMode}: "scheduling-gate" needs a pod the scheduler ` +
        `places, but spec.nodeName is set (${nodeName}) and the API server refuses scheduling gates on it: ` +
        `remove spec.nodeName, or use ${ANNOTATIONS.waitMode}: "init-container"`,
    );
  }

  const injection = deps.now
    ? { ...deps.injection, admittedAt: new Date(deps.now()).toISOString() }
    : deps.injection;
  const patch = buildInjectionPatch(pod as unknown as Pod, injection, request);
  const namespace = namespaceOf(req, pod);
  const warnings = [
    ...(await missingPrimitiveWarnings(request, namespace, deps)),
    ...permitsWarnings(request, namespace, deps),
  ];
  return allow(req.uid, patch, warnings);
}

function validatePodUpdate(req: AdmissionRequest): AdmissionResponse {
  const changed = changedKonductorMetadata(req.oldObject, req.object);
  if (changed.length === 0) return allow(req.uid);
  return deny(
    req.uid,
    403,
    'Forbidden',
    `Pod ${describeObject(req, req.object)}: ${IMMUTABLE_METADATA_MESSAGE} (changed: ${changed.join(', ')})`,
  );
}

function permitsWarnings(request: KonductorRequest, namespace: string, deps: AdmissionDeps): string[] {
  const sem = request.semaphore;
  if (!sem || !deps.semaphorePermits) return [];
  let capacity: number | undefined;
  try {
    capacity = deps.semaphorePermits(namespace, sem.name);
  } catch {
    return [];
  }
  if (capacity === undefined || sem.permits <= capacity) return [];
  return [
    `konductor.io/permits: ${sem.permits} exceeds the ${capacity} permits of Semaphore ${namespace}/${sem.name}: ` +
      'the pod will wait until the Semaphore has that many (PermitsExceedCapacity)',
  ];
}

async function admitTemplateOwner(req: AdmissionRequest, kind: 'Job' | 'CronJob'): Promise<Decision> {
  const obj = req.object;
  if (!isObject(obj)) return deny(req.uid, 400, 'BadRequest', `request.object is not a ${kind}`);
  const result = buildTemplateAnnotationPatch(obj as unknown as Job | CronJob, kind);
  if (Object.keys(result.effective).length === 0) return allow(req.uid);
  if (!result.parsed.ok) {
    if (req.operation === 'UPDATE' && !annotationsChanged(req, jobEffectiveAnnotations(kind))) {
      return allow(
        req.uid,
        [],
        [
          `${kind} ${describeObject(req, obj)} carries invalid konductor annotations; its pods will be denied`,
        ],
      );
    }
    return denyProblems(req.uid, kind, describeObject(req, obj), result.parsed.problems);
  }
  return allow(req.uid, result.patch);
}

function validateUpdate(
  req: AdmissionRequest,
  effectiveOf: (obj: unknown) => Record<string, string> | undefined,
): Decision {
  if (!annotationsChanged(req, effectiveOf)) return allow(req.uid);
  const parsed: ParseResult = parseAnnotations(effectiveOf(req.object));
  if (parsed.ok) return allow(req.uid);
  return denyProblems(req.uid, req.kind.kind, describeObject(req, req.object), parsed.problems);
}

function annotationsChanged(
  req: AdmissionRequest,
  effectiveOf: (obj: unknown) => Record<string, string> | undefined,
): boolean {
  const now = konductorAnnotationsOf(effectiveOf(req.object));
  const before = konductorAnnotationsOf(effectiveOf(req.oldObject));
  const keys = new Set([...Object.keys(now), ...Object.keys(before)]);
  for (const k of keys) if (now[k] !== before[k]) return true;
  return false;
}

function jobEffectiveAnnotations(kind: 'Job' | 'CronJob'): (obj: unknown) => Record<string, string> {
  return (obj) => (isObject(obj) ? effectiveTemplateAnnotations(obj as unknown as Job, kind) : {});
}

async function missingPrimitiveWarnings(
  request: KonductorRequest,
  namespace: string,
  deps: AdmissionDeps,
): Promise<string[]> {
  const exists = deps.primitiveExists;
  if (!exists) return [];
  const refs = primitivesOf(request);
  if (refs.length === 0) return [];
  const timeoutMs = deps.lookupTimeoutMs ?? 1000;
  const lookups = refs.map(async (ref): Promise<string | null> => {
    const where = `${ref.kind} ${namespace}/${ref.name}`;
    try {
      const found = await exists(ref.kind, namespace, ref.name);
      return found ? null : `${where} does not exist yet: the pod will wait until it is created`;
    } catch (err) {
      return `could not check that ${where} exists (${errorMessage(err)}): the pod will wait for it`;
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const results = await Promise.race([Promise.all(lookups), timeout]);
    if (results === 'timeout') {
      return [`could not check within ${timeoutMs} ms that the referenced primitives exist`];
    }
    return results.filter((w): w is string => w !== null);
  } finally {
    clearTimeout(timer);
  }
}

function denyProblems(
  uid: string,
  kind: string,
  what: string,
  problems: readonly AnnotationProblem[],
): Decision {
  const lines = problems.map((p) => p.message);
  const noun = problems.length === 1 ? 'annotation' : 'annotations';
  const response = deny(
    uid,
    400,
    'BadRequest',
    `${kind} ${what}: invalid konductor ${noun}: ${lines.join('; ')}`,
  );
  return { response, problems };
}

function outcome(decision: Decision): AdmissionOutcome {
  const { response, problems } = 'response' in decision ? decision : { response: decision, problems: [] };
  return { review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response }, problems };
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'unknown error';
  }
}
