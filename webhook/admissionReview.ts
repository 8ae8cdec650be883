/**
 * The admission.k8s.io/v1 AdmissionReview as konductor reads and answers it: the wire types, the check that a
 * body is one, the allow (with a JSON patch and warnings) and deny responses, and the reading of the object
 * under review (its metadata, namespace, a name for messages). webhook/admission.ts decides.
 */
import type { Operation } from 'fast-json-patch';
import type { AdmissionReason } from '../api/reasons.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource?: GroupVersionResource;
  subResource?: string;
  requestKind?: GroupVersionKind;
  name?: string;
  namespace?: string;
  operation: AdmissionOperation;
  userInfo?: { username?: string; uid?: string; groups?: string[] };
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  options?: unknown;
}

export interface AdmissionStatus {
  status: 'Failure';
  code: number;
  reason: AdmissionReason;
  message: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  /** base64 of the JSON patch. */
  patch?: string;
  patchType?: 'JSONPatch';
  warnings?: string[];
  status?: AdmissionStatus;
}

export interface AdmissionReview {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/**
 * Why `body` is not an `admission.k8s.io/v1` AdmissionReview with a request, or null when it is one.
 * (The HTTP layer answers 400 with this reason instead of calling reviewAdmission.)
 */
export function admissionReviewProblem(body: unknown): string | null {
  if (!isObject(body)) return 'request body is not a JSON object';
  if (body.kind !== 'AdmissionReview')
    return `kind is ${JSON.stringify(body.kind)}, expected "AdmissionReview"`;
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    return `apiVersion is ${JSON.stringify(body.apiVersion)}, expected "${ADMISSION_API_VERSION}"`;
  }
  const req = body.request;
  if (!isObject(req)) return 'AdmissionReview has no request';
  if (typeof req.uid !== 'string' || req.uid === '') return 'request.uid is missing';
  if (!isObject(req.kind) || typeof req.kind.kind !== 'string') return 'request.kind is missing';
  if (typeof req.operation !== 'string') return 'request.operation is missing';
  return null;
}

export function allow(uid: string, patch: Operation[] = [], warnings: string[] = []): AdmissionResponse {
  const res: AdmissionResponse = { uid, allowed: true };
  if (patch.length > 0) {
    res.patchType = 'JSONPatch';
    res.patch = Buffer.from(JSON.stringify(patch), 'utf8').toString('base64');
  }
  if (warnings.length > 0) res.warnings = warnings.map(sanitizeWarning);
  return res;
}

export function deny(uid: string, code: number, reason: AdmissionReason, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { status: 'Failure', code, reason, message } };
}

/** Warnings travel as HTTP Warning headers: keep them single-line, printable and bounded. */
export function sanitizeWarning(w: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const clean = w.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return clean.length > 512 ? `${clean.slice(0, 509)}...` : clean;
}

export function annotationsOf(obj: unknown): Record<string, string> | undefined {
  return metadataMap(obj, 'annotations');
}

export function labelsOf(obj: unknown): Record<string, string> | undefined {
  return metadataMap(obj, 'labels');
}

export function metadataMap(obj: unknown, key: 'labels' | 'annotations'): Record<string, string> | undefined {
  if (!isObject(obj) || !isObject(obj.metadata)) return undefined;
  const m = obj.metadata[key];
  return isObject(m) ? (m as Record<string, string>) : undefined;
}

export function namespaceOf(req: AdmissionRequest, obj: Record<string, unknown>): string {
  if (typeof req.namespace === 'string' && req.namespace !== '') return req.namespace;
  const ns = isObject(obj.metadata) ? obj.metadata.namespace : undefined;
  return typeof ns === 'string' && ns !== '' ? ns : 'default';
}

export function describeObject(req: AdmissionRequest, obj: unknown): string {
  const meta = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const ns = typeof req.namespace === 'string' && req.namespace !== '' ? req.namespace : meta.namespace;
  let name = typeof req.name === 'string' && req.name !== '' ? req.name : meta.name;
  if (typeof name !== 'string' || name === '') {
    name = typeof meta.generateName === 'string' ? `${meta.generateName}<generated>` : '<unnamed>';
  }
  return typeof ns === 'string' && ns !== '' ? `${ns}/${name}` : String(name);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
