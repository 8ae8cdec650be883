/**
 * "Annotate the Job" (DESIGN §2): copies the `konductor.io/` annotations of a Job's (or CronJob's) own
 * metadata into its pod template, so the pods it creates carry them and get injected. Values already set
 * on the template win. Pure.
 */
import jsonpatch, { type Operation } from 'fast-json-patch';
import { type ParseResult, parseAnnotations } from '../api/annotations.ts';
import { ANNOTATION_PREFIX, RESERVED_ANNOTATIONS } from '../api/constants.ts';
import type { CronJob, Job, ObjectMeta } from '../api/types.ts';

export interface TemplateAnnotationResult {
  /** The patch copying the annotations into the template (empty when nothing is to copy). */
  patch: Operation[];
  /** The konductor annotations the pods will carry (object's merged under the template's). */
  effective: Record<string, string>;
  /** Parse result of `effective` (same parser as for pods). */
  parsed: ParseResult;
}

/** JSON-pointer path of the pod template's metadata, per kind. */
const TEMPLATE_PATH = {
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
} as const;

export type TemplateOwnerKind = keyof typeof TEMPLATE_PATH;

/** The konductor.io/ annotations a user can set (reserved keys written by the webhook excluded). */
export function konductorAnnotationsOf(
  annotations: Record<string, string> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!annotations || typeof annotations !== 'object') return out;
  for (const [k, v] of Object.entries(annotations)) {
    if (k.startsWith(ANNOTATION_PREFIX) && !RESERVED_ANNOTATIONS.includes(k) && typeof v === 'string') {
      out[k] = v;
    }
  }
  return out;
}

/** The template's place in the object, and the konductor annotations its pods will carry (nothing parsed). */
function locateTemplate(obj: Job | CronJob, kind: TemplateOwnerKind) {
  const path = TEMPLATE_PATH[kind];
  const fromObject = konductorAnnotationsOf(obj?.metadata?.annotations);
  // Walk to the template, noting the first missing level (created as a whole by the patch).
  let node: unknown = obj;
  let missingAt = -1;
  for (let i = 0; i < path.length; i++) {
    const next = isObject(node) ? node[path[i] as string] : undefined;
    if (!isObject(next)) {
      missingAt = i;
      break;
    }
    node = next;
  }
  const template = missingAt < 0 ? (node as { metadata?: ObjectMeta }) : undefined;
  const templateMeta = isObject(template?.metadata) ? template.metadata : undefined;
  const templateAnnotations = isObject(templateMeta?.annotations)
    ? (templateMeta.annotations as Record<string, string>)
    : undefined;
  const effective = { ...fromObject, ...konductorAnnotationsOf(templateAnnotations) };
  return { path, fromObject, missingAt, templateMeta, templateAnnotations, effective };
}

/** The konductor annotations a Job's (CronJob's) pods will carry: the object's merged under the template's. */
export function effectiveTemplateAnnotations(
  obj: Job | CronJob,
  kind: TemplateOwnerKind,
): Record<string, string> {
  return locateTemplate(obj, kind).effective;
}

export function buildTemplateAnnotationPatch(job: Job): TemplateAnnotationResult;
export function buildTemplateAnnotationPatch(cronJob: CronJob, kind: 'CronJob'): TemplateAnnotationResult;
export function buildTemplateAnnotationPatch(
  obj: Job | CronJob,
  kind?: TemplateOwnerKind,
): TemplateAnnotationResult;
export function buildTemplateAnnotationPatch(
  obj: Job | CronJob,
  kind: TemplateOwnerKind = (obj as { kind?: string }).kind === 'CronJob' ? 'CronJob' : 'Job',
): TemplateAnnotationResult {
  const { path, fromObject, missingAt, templateMeta, templateAnnotations, effective } = locateTemplate(
    obj,
    kind,
  );
  const toCopy: Record<string, string> = {};
  for (const [k, v] of Object.entries(fromObject)) {
    if (templateAnnotations?.[k] === undefined) toCopy[k] = v;
  }
  const parsed = parseAnnotations(effective);

  const patch: Operation[] = [];
  if (Object.keys(toCopy).length > 0) {
    const base = `/${path.join('/')}`;
    if (missingAt >= 0) {
      // The template itself is missing (the API server will reject the object anyway); build it up.
      let value: Record<string, unknown> = { metadata: { annotations: toCopy } };
      for (let i = path.length - 1; i > missingAt; i--) value = { [path[i] as string]: value };
      patch.push({ op: 'add', path: `/${path.slice(0, missingAt + 1).join('/')}`, value });
    } else if (!templateMeta) {
      patch.push({ op: 'add', path: `${base}/metadata`, value: { annotations: toCopy } });
    } else if (!templateAnnotations) {
      patch.push({ op: 'add', path: `${base}/metadata/annotations`, value: toCopy });
    } else {
      for (const [k, v] of Object.entries(toCopy)) {
        patch.push({
          op: 'add',
          path: `${base}/metadata/annotations/${jsonpatch.escapePathComponent(k)}`,
          value: v,
        });
      }
    }
  }
  return { patch, effective, parsed };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
