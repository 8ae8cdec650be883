/**
 * Container environment of the process kubelet (a TEST HARNESS, not a real kubelet). PURE: the API
 * objects a container references are fetched by the caller and passed in as plain maps.
 *
 * Follows the kubelet (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables): service variables,
 * then `envFrom` in order, then `env` in order, each `value` expanded with `$(VAR)` over what is
 * defined so far (third_party/forked/golang/expansion); `command` and `args` expanded over the result.
 * The image's environment has no equivalent here: a few host variables (PATH, ...) stand in for it so
 * that `sh` works. The kubelet's own environment (KUBECONFIG, ...) never reaches a container.
 */
import type { EnvVar } from '../../api/types.ts';
import type { KContainer, KPod } from './podTypes.ts';

/** ConfigMap data / decoded Secret data by object name; `undefined` = the object does not exist. */
export interface EnvSources {
  configMaps: ReadonlyMap<string, Record<string, string> | undefined>;
  secrets: ReadonlyMap<string, Record<string, string> | undefined>;
}

export interface EnvContext {
  pod: KPod;
  nodeName: string;
  podIP: string;
  hostIP: string;
  /** Stand-in for the image's environment (PATH, HOME, ...); container variables override it. */
  baseEnv: Readonly<Record<string, string>>;
  /** Service variables the kubelet adds (KUBERNETES_SERVICE_HOST, ...); visible to `$(VAR)`. */
  serviceEnv?: Readonly<Record<string, string>>;
  /** Node capacity used for resourceFieldRef when the container sets no limit. */
  nodeCapacity?: Readonly<Record<string, string>>;
}

export type EnvResult =
  | { ok: true; env: Record<string, string> }
  | { ok: false; reason: 'CreateContainerConfigError'; message: string };

/** Host variables that stand in for an image's environment. */
export const BASE_ENV_NAMES = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'] as const;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The base environment taken from the host: only BASE_ENV_NAMES, and PATH always set. */
export function hostBaseEnv(hostEnv: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of BASE_ENV_NAMES) {
    const v = hostEnv[n];
    if (v !== undefined && v !== '') out[n] = v;
  }
  out.PATH ??= DEFAULT_PATH;
  return out;
}

/**
 * `$(VAR)` expansion exactly as the kubelet does it: `$$` is an escaped `$`, `$(NAME)` is replaced
 * when NAME is defined and left as written otherwise, any other `$` is kept.
 */
export function expandVars(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const rest = input.slice(cursor + 1);
    let read: string;
    let advance = 1;
    if (rest[0] === '$') read = '$';
    else if (rest[0] === '(') {
      const close = rest.indexOf(')', 1);
      if (close < 0) read = '$(';
      else {
        const name = rest.slice(1, close);
        read = lookup(name) ?? `$(${name})`;
        advance = close + 1;
      }
    } else read = `$${rest[0]}`;
    out += read;
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

const quote = (v: string) => JSON.stringify(v);

/** `key="value"` lines, sorted, as the downward API writes labels/annotations files. */
export function formatMap(m: Record<string, string> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${quote(m?.[k] ?? '')}`)
    .join('\n');
}

const SUBSCRIPT = /^metadata\.(labels|annotations)\[['"](.+)['"]\]$/;

/** Value of a downward-API fieldRef, or an Error naming the unsupported path. */
export function fieldRefValue(
  fieldPath: string,
  ctx: Pick<EnvContext, 'pod' | 'nodeName' | 'podIP' | 'hostIP'>,
  allowWholeMaps = false,
): string | Error {
  const { pod } = ctx;
  const sub = SUBSCRIPT.exec(fieldPath);
  if (sub) {
    const map = sub[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations;
    return map?.[sub[2] ?? ''] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name ?? '';
    case 'metadata.namespace':
      return pod.metadata.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata.uid ?? '';
    case 'spec.nodeName':
      return pod.spec.nodeName ?? ctx.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.podIP':
    case 'status.podIPs':
      return ctx.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return ctx.hostIP;
    case 'metadata.labels':
      if (allowWholeMaps) return formatMap(pod.metadata.labels);
      break;
    case 'metadata.annotations':
      if (allowWholeMaps) return formatMap(pod.metadata.annotations);
      break;
  }
  return new Error(`unsupported fieldPath: ${fieldPath}`);
}

/**
 * Value of a resourceFieldRef: the container's limit (or request for requests.*) as written in the
 * spec, else the node capacity. The harness does not apply `divisor`.
 */
export function resourceFieldValue(
  resource: string,
  container: KContainer | undefined,
  nodeCapacity: Readonly<Record<string, string>> | undefined,
): string | Error {
  const [kind, name] = resource.split('.', 2);
  if ((kind !== 'limits' && kind !== 'requests') || !name) {
    return new Error(`unsupported resourceFieldRef resource: ${resource}`);
  }
  const fromSpec = container?.resources?.[kind]?.[name] ?? container?.resources?.limits?.[name];
  return fromSpec ?? nodeCapacity?.[name] ?? '0';
}

/** Names of the ConfigMaps and Secrets a container's env/envFrom reference (to fetch before resolveEnv). */
export function envReferences(container: KContainer): { configMaps: string[]; secrets: string[] } {
  const cms = new Set<string>();
  const secrets = new Set<string>();
  for (const f of container.envFrom ?? []) {
    if (f.configMapRef?.name) cms.add(f.configMapRef.name);
    if (f.secretRef?.name) secrets.add(f.secretRef.name);
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom?.configMapKeyRef?.name) cms.add(e.valueFrom.configMapKeyRef.name);
    if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
  }
  return { configMaps: [...cms], secrets: [...secrets] };
}

function envVarValue(
  e: EnvVar,
  container: KContainer,
  ctx: EnvContext,
  sources: EnvSources,
  lookup: (name: string) => string | undefined,
): string | Error | undefined {
  const ns = ctx.pod.metadata.namespace ?? '';
  if (e.value !== undefined) return expandVars(e.value, lookup);
  const from = e.valueFrom;
  if (!from) return '';
  if (from.fieldRef) return fieldRefValue(from.fieldRef.fieldPath, ctx);
  if (from.resourceFieldRef) {
    const target = from.resourceFieldRef.containerName
      ? [...ctx.pod.spec.containers, ...(ctx.pod.spec.initContainers ?? [])].find(
          (c) => c.name === from.resourceFieldRef?.containerName,
        )
      : container;
    return resourceFieldValue(from.resourceFieldRef.resource, target, ctx.nodeCapacity);
  }
  if (from.configMapKeyRef) {
    const { name, key, optional } = from.configMapKeyRef;
    const data = sources.configMaps.get(name);
    if (data === undefined) return optional ? undefined : new Error(`configmap "${name}" not found`);
    if (!(key in data)) {
      return optional ? undefined : new Error(`couldn't find key ${key} in ConfigMap ${ns}/${name}`);
    }
    return data[key];
  }
  if (from.secretKeyRef) {
    const { name, key, optional } = from.secretKeyRef;
    const data = sources.secrets.get(name);
    if (data === undefined) return optional ? undefined : new Error(`secret "${name}" not found`);
    if (!(key in data))
      return optional ? undefined : new Error(`couldn't find key ${key} in Secret ${ns}/${name}`);
    return data[key];
  }
  return '';
}

/** The container's full environment, or the CreateContainerConfigError the kubelet would report. */
export function resolveEnv(container: KContainer, ctx: EnvContext, sources: EnvSources): EnvResult {
  const defined = new Map<string, string>(Object.entries(ctx.serviceEnv ?? {}));
  const fail = (message: string): EnvResult => ({ ok: false, reason: 'CreateContainerConfigError', message });
  for (const f of container.envFrom ?? []) {
    const prefix = f.prefix ?? '';
    let data: Record<string, string> | undefined;
    if (f.configMapRef) {
      data = sources.configMaps.get(f.configMapRef.name);
      if (data === undefined && !f.configMapRef.optional) {
        return fail(`configmap "${f.configMapRef.name}" not found`);
      }
    } else if (f.secretRef) {
      data = sources.secrets.get(f.secretRef.name);
      if (data === undefined && !f.secretRef.optional) return fail(`secret "${f.secretRef.name}" not found`);
    }
    for (const [k, v] of Object.entries(data ?? {})) defined.set(prefix + k, v);
  }
  const lookup = (name: string) => defined.get(name);
  for (const e of container.env ?? []) {
    const v = envVarValue(e, container, ctx, sources, lookup);
    if (v instanceof Error) return fail(v.message);
    if (v !== undefined) defined.set(e.name, v);
  }
  return { ok: true, env: { ...ctx.baseEnv, ...Object.fromEntries(defined) } };
}

/** command + args with `$(VAR)` expanded over the container's environment. */
export function expandCommand(
  container: KContainer,
  env: Readonly<Record<string, string>>,
): { command: string[]; args: string[] } {
  const lookup = (name: string) => env[name];
  return {
    command: (container.command ?? []).map((s) => expandVars(s, lookup)),
    args: (container.args ?? []).map((s) => expandVars(s, lookup)),
  };
}
