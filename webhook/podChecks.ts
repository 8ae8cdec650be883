/**
 * What admission checks in a pod beyond its annotations: a spec of the shape the injection reads, no
 * container posing as the injected agent, and konductor metadata unchanged by an update.
 */
import { ANNOTATION_PREFIX, HOLD_CONTAINER, MANAGED_LABEL, WAIT_CONTAINER } from '../api/constants.ts';
import type { Container, Pod } from '../api/types.ts';
import { annotationsOf, isObject, labelsOf } from './admissionReview.ts';
import type { InjectionConfig } from './injectionPatch.ts';

/**
 * What is not a list (of objects) in a pod spec where the API server always sends one: the lists the
 * injection reads or extends. The API server decodes a pod before calling webhooks, so only a review sent by
 * something else can have it; it gets a clear 400 instead of failing the handler.
 */
export function podSpecShapeProblem(spec: Record<string, unknown>): string | undefined {
  const listOfObjects = (v: unknown) => Array.isArray(v) && v.every(isObject);
  for (const field of ['containers', 'initContainers', 'volumes'] as const) {
    const v = spec[field];
    if ((v !== undefined || field === 'containers') && !listOfObjects(v))
      return `spec.${field} is not a list of objects`;
  }
  for (const field of ['containers', 'initContainers'] as const) {
    for (const [i, c] of ((spec[field] ?? []) as Record<string, unknown>[]).entries()) {
      for (const list of ['volumeMounts', 'env', 'envFrom'] as const)
        if (c[list] !== undefined && !listOfObjects(c[list]))
          return `spec.${field}[${i}].${list} is not a list of objects`;
    }
  }
  return undefined;
}

/**
 * The name of a `konductor-wait` / `konductor-hold` init container the webhook did not inject, if any.
 * Injected (by an earlier invocation for the same request, `reinvocationPolicy: IfNeeded`) means: the
 * managed label, and a wait container with the agent image and `args: [wait]`.
 */
export function reservedContainerImpostor(pod: Pod, injection: InjectionConfig): string | undefined {
  const inits: Container[] = Array.isArray(pod.spec?.initContainers) ? pod.spec.initContainers : [];
  const reserved = inits.filter((c) => c?.name === WAIT_CONTAINER || c?.name === HOLD_CONTAINER);
  if (reserved.length === 0) return undefined;
  const wait = inits.find((c) => c?.name === WAIT_CONTAINER);
  const genuine =
    pod.metadata?.labels?.[MANAGED_LABEL] === 'true' &&
    wait !== undefined &&
    wait.image === injection.agentImage &&
    JSON.stringify(wait.args ?? []) === JSON.stringify(['wait']);
  return genuine ? undefined : reserved[0]?.name;
}

/** The konductor metadata keys (managed label, konductor.io/ annotations) that differ between two pods. */
export function changedKonductorMetadata(before: unknown, after: unknown): string[] {
  const changed: string[] = [];
  if (labelsOf(before)?.[MANAGED_LABEL] !== labelsOf(after)?.[MANAGED_LABEL]) changed.push(MANAGED_LABEL);
  const a = annotationsOf(after) ?? {};
  const b = annotationsOf(before) ?? {};
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => k.startsWith(ANNOTATION_PREFIX)));
  for (const k of [...keys].sort()) if (a[k] !== b[k]) changed.push(k);
  return changed;
}
