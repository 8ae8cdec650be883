/**
 * The chart's ServiceMonitor and Grafana dashboard ConfigMap accepted by the real API server: rendered with
 * `helm template` (serviceMonitor.enabled, grafanaDashboard.enabled), created in a test namespace (the
 * ServiceMonitor against the Prometheus Operator stand-in CRD of test/fixtures/crds/), read back with every
 * rendered field kept (nothing pruned) and the dashboard intact.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  type ChartTools,
  findChartTools,
  helm,
  type Json,
  parseManifests,
  REPO,
  templateArgs,
} from '../helpers/chartTools.ts';
import { DASHBOARD_FILE } from '../helpers/dashboard.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('chart-obs');
const CRD = join(REPO, 'test/fixtures/crds/servicemonitors.monitoring.coreos.com.yaml');
let tools: ChartTools;
let home: string;

beforeAll(async () => {
  tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-chart-obs-'));
  // idempotent, like test/integration/helm-install.test.ts (same field manager)
  await kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=konductor-test-fixtures',
    '-f',
    CRD,
  ]);
  const name = (parse(readFileSync(CRD, 'utf8')) as Json).metadata.name;
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${name}`]);
  await waitFor(
    async () =>
      (
        await kubectl(['get', 'servicemonitors.monitoring.coreos.com', '-A', '-o', 'name'], {
          allowFailure: true,
        })
      ).code === 0,
    {
      message: 'discovery of servicemonitors',
    },
  );
}, 180_000);
afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

/** Every value of `expected` appears in `actual` (extra fields in `actual` are fine: defaults, metadata). */
function contained(expected: Json, actual: Json, path = ''): string[] {
  if (expected === null || typeof expected !== 'object')
    return expected === actual ? [] : [`${path}: ${JSON.stringify(expected)} != ${JSON.stringify(actual)}`];
  if (Array.isArray(expected)) return expected.flatMap((e, i) => contained(e, actual?.[i], `${path}[${i}]`));
  return Object.entries(expected).flatMap(([k, v]) => contained(v, actual?.[k], `${path}.${k}`));
}

describe('serviceMonitor and grafanaDashboard on the real API server', () => {
  it('are created as rendered, the dashboard intact', async () => {
    const r = helm(tools, home, [
      ...templateArgs({
        'serviceMonitor.enabled': true,
        'serviceMonitor.interval': '30s',
        'serviceMonitor.metricRelabelings': [
          { action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_gc_.*' },
        ],
        'grafanaDashboard.enabled': true,
        'grafanaDashboard.annotations': { grafana_folder: 'konductor' },
      }),
    ]);
    expect(r.status).toBe(0);
    const objects = parseManifests(r.stdout)
      .filter((m) => m.kind === 'ServiceMonitor' || m.kind === 'ConfigMap')
      .map((m) => ({ ...m, metadata: { ...m.metadata, namespace: ns.name } }));
    expect(objects.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'ServiceMonitor']);
    const input = objects.map((m) => JSON.stringify(m)).join('\n');
    await kubectl(['apply', '--server-side', '--field-manager=helm', '-f', '-'], {
      input,
      namespace: ns.name,
    });
    for (const m of objects) {
      const got = JSON.parse(
        (await kubectl(['get', `${m.kind}/${m.metadata.name}`, '-o', 'json'], { namespace: ns.name })).stdout,
      );
      expect(contained(m.spec ?? m.data, got.spec ?? got.data), m.kind).toEqual([]);
      expect(contained(m.metadata.labels, got.metadata.labels), `${m.kind} labels`).toEqual([]);
    }
    const cm = JSON.parse(
      (await kubectl(['get', 'configmap', '-l', 'grafana_dashboard=1', '-o', 'json'], { namespace: ns.name }))
        .stdout,
    );
    expect(cm.items).toHaveLength(1);
    expect(JSON.parse(cm.items[0].data['konductor.json'])).toEqual(
      JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')),
    );
  });
});
