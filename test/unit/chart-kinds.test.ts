/**
 * The chart's lists of primitive kinds (the manager's RBAC rules, the status-writer and require-injection
 * admission policies) follow the CRD files in charts/konductor/files/crds/: adding a kind's CRD adds it to
 * each list, with no template to edit (docs/architecture.md "Adding a primitive").
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KINDS } from '../../api/kinds.ts';
import {
  CHART_DIR,
  type ChartTools,
  findChartTools,
  helm,
  type Json,
  NAMESPACE,
  parseManifests,
  RELEASE,
} from '../helpers/chartTools.ts';

let tools: ChartTools;
let home: string;

beforeAll(async () => {
  tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-chart-kinds-'));
}, 900_000);

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

/** A copy of the chart with `extra` CRD files (name -> content) in files/crds/. */
function chartWith(label: string, extra: Record<string, string>): string {
  const dir = join(home, label);
  cpSync(CHART_DIR, dir, { recursive: true });
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, 'files/crds', name), text);
  return dir;
}

function render(chartDir: string) {
  return helm(tools, home, ['template', RELEASE, chartDir, '--namespace', NAMESPACE]);
}

/** The Semaphore CRD renamed to another kind (Widget, widgets). */
function widgetCrd(): string {
  return readFileSync(join(CHART_DIR, 'files/crds/semaphores.sync.konductor.io.yaml'), 'utf8')
    .replaceAll('semaphores.sync.konductor.io', 'widgets.sync.konductor.io')
    .replace(/plural: semaphores/, 'plural: widgets')
    .replace(/singular: semaphore/, 'singular: widget')
    .replace(/kind: Semaphore\n/, 'kind: Widget\n')
    .replace(/listKind: SemaphoreList/, 'listKind: WidgetList')
    .replace(/shortNames: \[[^\]]*\]/, 'shortNames: [kwid]');
}

const one = (ms: Json[], kind: string, suffix = ''): Json => {
  const found = ms.filter((m) => m.kind === kind && (m.metadata.name as string).endsWith(suffix));
  expect(found, `${kind} *${suffix}`).toHaveLength(1);
  return found[0];
};

/** What the chart's three kind lists say, from a rendering. */
function kindLists(ms: Json[]) {
  const rules: Json[] = one(ms, 'ClusterRole').rules;
  const primitiveRules = rules.filter((r) => r.apiGroups.includes('sync.konductor.io'));
  return {
    read: primitiveRules.find((r) => r.verbs.includes('watch'))?.resources,
    writeStatus: primitiveRules.find((r) => r.verbs.includes('update'))?.resources,
    statusWriter: one(ms, 'ValidatingAdmissionPolicy', '-status-writer').spec.matchConstraints
      .resourceRules[0].resources,
    requireInjection: one(ms, 'ValidatingAdmissionPolicy', '-require-injection').spec.matchConditions[0]
      .expression as string,
    crds: ms.filter((m) => m.kind === 'CustomResourceDefinition').map((m) => m.metadata.name),
  };
}

describe("the chart's kind lists follow files/crds/", () => {
  it('the chart as it is lists exactly the kinds of api/kinds.ts', () => {
    const r = render(CHART_DIR);
    expect(r.status, r.stderr).toBe(0);
    const lists = kindLists(parseManifests(r.stdout));
    const plurals = Object.values(KINDS)
      .map((k) => k.plural)
      .sort();
    expect(lists.read).toEqual(plurals);
    expect(lists.writeStatus).toEqual(plurals.map((p) => `${p}/status`));
    expect(lists.statusWriter).toEqual(plurals.map((p) => `${p}/status`));
    for (const k of Object.values(KINDS)) expect(lists.requireInjection).toContain(`'${k.annotation}'`);
  });

  it('a CRD file added for a new kind puts it in the RBAC rules and both admission policies', () => {
    const r = render(chartWith('widget', { 'widgets.sync.konductor.io.yaml': widgetCrd() }));
    expect(r.status, r.stderr).toBe(0);
    const lists = kindLists(parseManifests(r.stdout));
    expect(lists.crds).toContain('widgets.sync.konductor.io');
    expect(lists.read).toContain('widgets');
    expect(lists.read).toContain('semaphores');
    expect(lists.writeStatus).toContain('widgets/status');
    expect(lists.statusWriter).toContain('widgets/status');
    expect(lists.statusWriter).toHaveLength(Object.keys(KINDS).length + 1);
    expect(lists.requireInjection).toContain(`'konductor.io/widget'`);
    // Not the manager's leader-election Leases (coordination.k8s.io), which stay as they are.
    expect(one(parseManifests(r.stdout), 'Role').rules[0]).toEqual({
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'create', 'update'],
    });
  });

  it('refuses to render with a file in files/crds/ that is not a sync.konductor.io CRD', () => {
    const other = widgetCrd().replace('group: sync.konductor.io', 'group: example.com');
    const r = render(chartWith('foreign', { 'widgets.example.com.yaml': other }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      'widgets.example.com.yaml is not a CustomResourceDefinition of sync.konductor.io',
    );
  });
});
