/**
 * cert-manager's own Helm chart, from the Go module the binaries are built from (the module zip holds
 * `deploy/charts/cert-manager` and `deploy/crds`), assembled the way cert-manager's release does it
 * (`make/manifests.mk`): templates, helpers, NOTES and values copied as they are, `Chart.yaml` from
 * `Chart.template.yaml` with version and appVersion set, and `templates/crds.yaml` = the CRD sources
 * joined by `---` inside `{{- if .Values.installCRDs }}`, so helm renders their templated labels.
 * Cached under `<cacheRoot>/cert-manager/<version>/chart` (the module's content is immutable per version).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { konductorError } from '../../api/errors.ts';
import { cacheRootDir, GO_TOOLSETS } from '../binaries.ts';

export const CERT_MANAGER_MODULE = 'github.com/cert-manager/cert-manager';
/** Bumped when the assembly below changes. */
const CHART_FORMAT = 'v1';

function toolset() {
  const t = GO_TOOLSETS['cert-manager'];
  if (!t) throw konductorError('KDR_CERTMANAGER_TOOLSET', 'GO_TOOLSETS has no cert-manager entry');
  return t;
}

export const CERT_MANAGER_VERSION = toolset().version;

function go(args: string[], cwd: string): { ok: boolean; out: string } {
  const r = spawnSync('go', args, { cwd, encoding: 'utf8', env: process.env });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** The cert-manager module's directory in the Go module cache (downloaded from the proxy if absent). */
export function certManagerModuleDir(): string {
  const moduleDir = toolset().moduleDir;
  const list = () => go(['list', '-m', '-f', '{{.Dir}}', CERT_MANAGER_MODULE], moduleDir);
  let r = list();
  if (!r.ok || !r.out || !existsSync(r.out)) {
    const dl = go(['mod', 'download', CERT_MANAGER_MODULE], moduleDir);
    if (!dl.ok) {
      throw konductorError(
        'KDR_CERTMANAGER_MODULE',
        `go mod download ${CERT_MANAGER_MODULE} failed in ${moduleDir} (Go and the module proxy are needed):\n${dl.out}`,
      );
    }
    r = list();
  }
  if (!r.ok || !existsSync(r.out)) {
    throw konductorError(
      'KDR_CERTMANAGER_MODULE',
      `cannot locate ${CERT_MANAGER_MODULE} in the module cache: ${r.out}`,
    );
  }
  return r.out;
}

/** `templates/crds.yaml` of the release chart: the CRD sources in name order, joined like hack/concat-yaml.sh. */
export function crdsTemplate(crdDir: string): string {
  const files = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const bodies = files.map((f) => {
    const text = readFileSync(join(crdDir, f), 'utf8');
    if (text.includes('%YAML')) {
      throw konductorError('KDR_CERTMANAGER_CHART', `${f} has a %YAML directive that cannot be concatenated`);
    }
    return text.endsWith('\n') ? text : `${text}\n`;
  });
  return `{{- if .Values.installCRDs }}\n${bodies.join('---\n')}{{- end }}\n`;
}

/** Assembles (once) and returns the chart directory of the pinned cert-manager release. */
export async function ensureCertManagerChart(opts: { cacheRoot?: string } = {}): Promise<string> {
  const dir = join(opts.cacheRoot ?? cacheRootDir(), 'cert-manager', CERT_MANAGER_VERSION, 'chart');
  const stamp = join(dir, '.konductor-stamp');
  const want = `${CERT_MANAGER_VERSION} ${CHART_FORMAT}`;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return dir;
  const module = certManagerModuleDir();
  const src = join(module, 'deploy', 'charts', 'cert-manager');
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'templates'), { recursive: true });
  try {
    await cp(join(src, 'templates'), join(tmp, 'templates'), { recursive: true });
    await cp(join(src, 'values.yaml'), join(tmp, 'values.yaml'));
    const chart = parse(readFileSync(join(src, 'Chart.template.yaml'), 'utf8')) as Record<string, unknown>;
    chart.version = CERT_MANAGER_VERSION;
    chart.appVersion = CERT_MANAGER_VERSION;
    chart.annotations = { ...(chart.annotations as object), 'artifacthub.io/prerelease': 'false' };
    await writeFile(join(tmp, 'Chart.yaml'), stringify(chart));
    await writeFile(join(tmp, 'templates', 'crds.yaml'), crdsTemplate(join(module, 'deploy', 'crds')));
    await writeFile(join(tmp, '.konductor-stamp'), want);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, '..'), { recursive: true });
    await rename(tmp, dir);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}
