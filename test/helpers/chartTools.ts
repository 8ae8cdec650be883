/**
 * Helpers of the chart tests: find the chart tools (helm, kubeconform, models-schema; built from
 * devcluster/chart-tools), render the chart, and validate manifests offline with kubeconform against
 * JSON schemas generated here:
 *   - Kubernetes kinds: from the OpenAPI definitions compiled into Kubernetes v1.37 (`models-schema`
 *     prints them; the same definitions the API server serves), made strict (no unknown fields);
 *   - konductor's CRDs: converted from charts/konductor/files/crds/*.yaml;
 *   - cert-manager Certificate/Issuer and Prometheus Operator PodMonitor and ServiceMonitor: hand-written fixtures in
 *     test/fixtures/schemas/.
 * Nothing is downloaded: kubeconform gets only a local schema location, and a kind without a schema fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { cacheRootDir, ensureGoTools } from '../../devcluster/binaries.ts';
import { GO_TOOLSETS } from '../../devcluster/goToolsets.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART_DIR = join(REPO, 'charts/konductor');
export const FIXTURE_SCHEMAS = join(REPO, 'test/fixtures/schemas');
/** The helm release the chart-tools cache directory is named after (like k8s-tools uses the k8s release). */
export const CHART_TOOLS_VERSION = 'v3.22.0';
const TOOLS = ['helm', 'kubeconform', 'models-schema'] as const;

export interface ChartTools {
  helm: string;
  kubeconform: string;
  modelsSchema: string;
}

const BUILD_HINT = [
  'Build them once (Go >= 1.26 and the Go module proxy are needed):',
  '  cd devcluster/chart-tools && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w',
  '    -X helm.sh/helm/v3/internal/version.version=v3.22.0',
  '    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37',
  '    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37',
  '    -X main.version=v0.8.0"',
  `    -o ~/.cache/konductor/chart-tools/${CHART_TOOLS_VERSION}/bin/ helm.sh/helm/v3/cmd/helm`,
  '    github.com/yannh/kubeconform/cmd/kubeconform k8s.io/kubernetes/pkg/generated/openapi/cmd/models-schema',
  'or point KONDUCTOR_CHART_TOOLS_BIN at a directory holding helm, kubeconform and models-schema (see docs/helm.md).',
].join('\n');

/**
 * The chart tools: $KONDUCTOR_CHART_TOOLS_BIN, else the build cache (built on demand through
 * devcluster/binaries.ts once it lists the `chart-tools` tool set). Throws, never skips, when missing.
 */
export async function findChartTools(env: NodeJS.ProcessEnv = process.env): Promise<ChartTools> {
  let dir = env.KONDUCTOR_CHART_TOOLS_BIN;
  let source = 'KONDUCTOR_CHART_TOOLS_BIN';
  if (!dir) {
    dir = join(cacheRootDir(env), 'chart-tools', CHART_TOOLS_VERSION, 'bin');
    source = 'the chart-tools build cache';
    if (!TOOLS.every((t) => existsSync(join(dir as string, t))) && GO_TOOLSETS['chart-tools']) {
      dir = await ensureGoTools('chart-tools', { env });
    }
  }
  const missing = TOOLS.filter((t) => !existsSync(join(dir, t)));
  if (missing.length > 0) {
    throw new Error(`chart tools missing in ${dir} (${source}): ${missing.join(', ')}.\n${BUILD_HINT}`);
  }
  return {
    helm: join(dir, 'helm'),
    kubeconform: join(dir, 'kubeconform'),
    modelsSchema: join(dir, 'models-schema'),
  };
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input,
    env: opts.env ?? process.env,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs helm with its config/cache/data homes in `home` (nothing written to the user's ~). */
export function helm(tools: ChartTools, home: string, args: string[]): RunResult {
  return run(tools.helm, args, {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
}

export const RELEASE = 'konductor';
export const NAMESPACE = 'konductor-system';

/** `helm template` of the chart with --set-json pairs; throws with helm's message when rendering fails. */
export function renderChart(tools: ChartTools, home: string, setJson: Record<string, unknown> = {}): string {
  const r = helm(tools, home, templateArgs(setJson));
  if (r.status !== 0) throw new Error(`helm template failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

export function templateArgs(setJson: Record<string, unknown>): string[] {
  const sets = Object.entries(setJson).flatMap(([k, v]) => ['--set-json', `${k}=${JSON.stringify(v)}`]);
  return ['template', RELEASE, CHART_DIR, '--namespace', NAMESPACE, ...sets];
}

// biome-ignore lint/suspicious/noExplicitAny: manifests and schemas are untyped JSON
export type Json = any;

export function parseManifests(yamlText: string): Json[] {
  return parseAllDocuments(yamlText)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]?.message}`);
      return d.toJSON();
    })
    .filter((d) => d !== null && d !== undefined);
}

// ------------------------------------------------------------------------------------------------
// JSON schemas for kubeconform
// ------------------------------------------------------------------------------------------------

/** kubeconform's file name for a kind: `{{ .ResourceKind }}{{ .KindSuffix }}.json`. */
export function schemaFileName(apiVersion: string, kind: string): string {
  const [groupOrVersion, version] = apiVersion.split('/');
  const suffix = version
    ? `-${(groupOrVersion ?? '').split('.')[0]?.toLowerCase()}-${version.toLowerCase()}`
    : `-${(groupOrVersion ?? '').split('.')[0]?.toLowerCase()}`;
  return `${kind.toLowerCase()}${suffix}.json`;
}

export const SCHEMA_LOCATION_TEMPLATE = '{{ .ResourceKind }}{{ .KindSuffix }}.json';

/** The Kubernetes OpenAPI (v2) definitions compiled into Kubernetes (`models-schema`). */
export function kubernetesDefinitions(tools: ChartTools): Record<string, Json> {
  const r = run(tools.modelsSchema, []);
  if (r.status !== 0) throw new Error(`models-schema failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { definitions: Record<string, Json> }).definitions;
}

const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** Name of the definition of a built-in kind (`io.k8s.api.apps.v1.Deployment`), if Kubernetes has it. */
export function definitionName(
  defs: Record<string, Json>,
  apiVersion: string,
  kind: string,
): string | undefined {
  const [g, v] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const group = g ?? '';
  if (group !== '' && group.includes('.') && !group.endsWith('.k8s.io')) return undefined;
  const first = group === '' ? 'core' : group.split('.')[0];
  const suffix = `.${first}.${v}.${kind}`;
  const names = Object.keys(defs).filter((n) => n.endsWith(suffix) && n.startsWith('io.k8s.'));
  return names.length === 1 ? names[0] : undefined;
}

/** Swagger v2 -> strict JSON schema: unknown fields rejected, int-or-string and quantities typed. */
function strictify(s: Json): Json {
  if (Array.isArray(s)) return s.map(strictify);
  if (s === null || typeof s !== 'object') return s;
  if (typeof s.$ref === 'string') return { $ref: s.$ref };
  if (s.format === 'int-or-string') return { type: ['string', 'integer'] };
  const out: Json = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-') || k === 'description' || k === 'default' || k === 'example') continue;
    if (k === 'properties') {
      out.properties = Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, strictify(ps)]));
    } else if (
      k === 'items' ||
      k === 'additionalProperties' ||
      k === 'allOf' ||
      k === 'oneOf' ||
      k === 'anyOf'
    ) {
      out[k] = strictify(v);
    } else out[k] = v;
  }
  if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function strictDefinition(defs: Record<string, Json>, name: string): Json {
  if (name === QUANTITY) return { type: ['string', 'number'] };
  if (name === INT_OR_STRING) return { type: ['string', 'integer'] };
  const def = defs[name];
  if (!def) throw new Error(`no Kubernetes definition ${name}`);
  return strictify(def);
}

function refsOf(s: Json, into: Set<string>): void {
  if (Array.isArray(s)) for (const x of s) refsOf(x, into);
  else if (s && typeof s === 'object') {
    for (const [k, v] of Object.entries(s)) {
      if (k === '$ref' && typeof v === 'string') into.add(v.replace('#/definitions/', ''));
      else refsOf(v, into);
    }
  }
}

/** The strict definitions reachable from `roots`, keyed by name. */
function definitionClosure(defs: Record<string, Json>, roots: string[]): Record<string, Json> {
  const out: Record<string, Json> = {};
  const todo = [...roots];
  while (todo.length > 0) {
    const name = todo.pop() as string;
    if (out[name]) continue;
    out[name] = strictDefinition(defs, name);
    const refs = new Set<string>();
    refsOf(out[name], refs);
    todo.push(...[...refs].filter((r) => !out[r]));
  }
  return out;
}

function pinKind(schema: Json, apiVersion: string, kind: string): Json {
  return {
    ...schema,
    properties: {
      ...schema.properties,
      apiVersion: { type: 'string', enum: [apiVersion] },
      kind: { type: 'string', enum: [kind] },
    },
    required: [...new Set([...(schema.required ?? []), 'apiVersion', 'kind'])],
  };
}

/** A standalone strict schema for a built-in kind. */
export function builtinSchema(
  defs: Record<string, Json>,
  apiVersion: string,
  kind: string,
): Json | undefined {
  const name = definitionName(defs, apiVersion, kind);
  if (!name) return undefined;
  const definitions = definitionClosure(defs, [name]);
  return { ...pinKind(definitions[name], apiVersion, kind), definitions };
}

/** A CRD version's openAPIV3Schema -> strict JSON schema (structural schema rules). */
export function crdSchemaToJsonSchema(s: Json): Json {
  if (Array.isArray(s)) return s.map(crdSchemaToJsonSchema);
  if (s === null || typeof s !== 'object') return s;
  const out: Json = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'description' || k === 'default' || k === 'nullable') continue;
    if (k === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(v as object).map(([p, ps]) => [p, crdSchemaToJsonSchema(ps)]),
      );
    } else if (['items', 'additionalProperties', 'allOf', 'oneOf', 'anyOf', 'not'].includes(k)) {
      out[k] = crdSchemaToJsonSchema(v);
    } else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string']) {
    delete out.type;
    out.type = ['string', 'integer'];
  }
  if (s.nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (
    out.type === 'object' &&
    !s['x-kubernetes-preserve-unknown-fields'] &&
    out.additionalProperties === undefined
  ) {
    if (out.properties) out.additionalProperties = false;
  }
  return out;
}

/** Strict schemas of every version of a CustomResourceDefinition, keyed by kubeconform file name. */
export function crdSchemas(defs: Record<string, Json>, crd: Json): Record<string, Json> {
  const out: Record<string, Json> = {};
  const group: string = crd.spec.group;
  const kind: string = crd.spec.names.kind;
  for (const v of crd.spec.versions as Json[]) {
    const apiVersion = `${group}/${v.name}`;
    const schema = crdSchemaToJsonSchema(v.schema.openAPIV3Schema);
    schema.properties = { ...schema.properties, metadata: { $ref: `#/definitions/${OBJECT_META}` } };
    schema.additionalProperties = false;
    out[schemaFileName(apiVersion, kind)] = {
      ...pinKind(schema, apiVersion, kind),
      definitions: definitionClosure(defs, [OBJECT_META]),
    };
  }
  return out;
}

/** The CRDs the chart ships (charts/konductor/files/crds/*.yaml). */
export function chartCrds(): Json[] {
  const dir = join(CHART_DIR, 'files/crds');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseManifests(readFileSync(join(dir, f), 'utf8')));
}

/**
 * Writes into `dir` a schema for every kind of `manifests` (built-in from Kubernetes' definitions),
 * the konductor CRD schemas and the hand-written fixtures. Kinds with no source get no file, so
 * kubeconform reports them as errors.
 */
export function writeSchemaDir(dir: string, defs: Record<string, Json>, manifests: Json[]): void {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(FIXTURE_SCHEMAS).filter((n) => n.endsWith('.json'))) {
    writeFileSync(join(dir, f), readFileSync(join(FIXTURE_SCHEMAS, f)));
  }
  for (const crd of chartCrds()) {
    for (const [file, schema] of Object.entries(crdSchemas(defs, crd))) {
      writeFileSync(join(dir, file), JSON.stringify(schema));
    }
  }
  for (const m of manifests) {
    const file = schemaFileName(m.apiVersion, m.kind);
    if (existsSync(join(dir, file))) continue;
    const schema = builtinSchema(defs, m.apiVersion, m.kind);
    if (schema) writeFileSync(join(dir, file), JSON.stringify(schema));
  }
}

export interface KubeconformResource {
  filename: string;
  kind: string;
  name: string;
  version: string;
  status: string;
  msg: string;
}

export interface KubeconformReport {
  status: number;
  resources: KubeconformResource[];
  stderr: string;
}

/** kubeconform -strict over `yamlText` (stdin), with only the local schema directory. */
export function kubeconform(tools: ChartTools, schemaDir: string, yamlText: string): KubeconformReport {
  const r = run(
    tools.kubeconform,
    [
      '-strict',
      '-verbose',
      '-output',
      'json',
      '-schema-location',
      join(schemaDir, SCHEMA_LOCATION_TEMPLATE),
      '-',
    ],
    { input: yamlText },
  );
  let resources: KubeconformResource[] = [];
  try {
    resources = (JSON.parse(r.stdout) as { resources?: KubeconformResource[] }).resources ?? [];
  } catch {
    throw new Error(`kubeconform printed no JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, resources, stderr: r.stderr };
}

/** Human summary of the resources kubeconform did not find valid. */
export function kubeconformProblems(report: KubeconformReport): string[] {
  return report.resources
    .filter((x) => x.status !== 'statusValid')
    .map((x) => `${x.kind}/${x.name}: ${x.status}: ${x.msg}`);
}
