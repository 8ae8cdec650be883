/**
 * The chart's observability options: the ServiceMonitor (serviceMonitor.*) and the Grafana dashboard
 * ConfigMap (grafanaDashboard.*), both off by default; rendered objects valid against the Kubernetes and
 * Prometheus Operator schemas (kubeconform -strict, offline), the ConfigMap carrying the dashboard file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_FILE } from '../helpers/dashboard.ts';
import {
  type ChartTools,
  findChartTools,
  helm,
  type Json,
  kubeconform,
  kubeconformProblems,
  kubernetesDefinitions,
  NAMESPACE,
  parseManifests,
  renderChart,
  templateArgs,
  writeSchemaDir,
} from './chart-tools.ts';

let tools: ChartTools;
let home: string;
let defs: Record<string, Json>;

beforeAll(async () => {
  tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-chart-obs-'));
  defs = kubernetesDefinitions(tools);
}, 900_000);
afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

function validate(yamlText: string, label: string): Json[] {
  const manifests = parseManifests(yamlText);
  const schemaDir = join(home, `schemas-${label}`);
  writeSchemaDir(schemaDir, defs, manifests);
  const report = kubeconform(tools, schemaDir, yamlText);
  expect(kubeconformProblems(report), `kubeconform (${label})`).toEqual([]);
  expect(report.status).toBe(0);
  return manifests;
}
const kinds = (ms: Json[]) => ms.map((m) => m.kind);

describe('defaults', () => {
  it('render neither a ServiceMonitor nor a dashboard ConfigMap', () => {
    const ms = parseManifests(renderChart(tools, home));
    expect(kinds(ms)).not.toContain('ServiceMonitor');
    expect(ms.filter((m) => m.kind === 'ConfigMap')).toEqual([]);
  });
});

describe('serviceMonitor.enabled=true', () => {
  it('renders a valid ServiceMonitor on the Service’s metrics port', () => {
    const ms = validate(
      renderChart(tools, home, {
        'serviceMonitor.enabled': true,
        'serviceMonitor.namespace': 'monitoring',
        'serviceMonitor.additionalLabels': { release: 'prometheus' },
        'serviceMonitor.interval': '15s',
        'serviceMonitor.scrapeTimeout': '5s',
        'serviceMonitor.metricRelabelings': [
          { action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_.*' },
        ],
      }),
      'servicemonitor',
    );
    const sm = ms.find((m) => m.kind === 'ServiceMonitor');
    const svc = ms.find((m) => m.kind === 'Service');
    expect(sm.metadata).toMatchObject({
      namespace: 'monitoring',
      labels: expect.objectContaining({ release: 'prometheus' }),
    });
    // it selects the Service (by its labels) in the release namespace, on the port named metrics
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    expect(svc.spec.ports.map((p: Json) => p.name)).toContain('metrics');
    expect(sm.spec.endpoints).toEqual([
      {
        port: 'metrics',
        path: '/metrics',
        scheme: 'http',
        interval: '15s',
        scrapeTimeout: '5s',
        metricRelabelings: [{ action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_.*' }],
      },
    ]);
  });

  it('refuses to render without a metrics port', () => {
    const r = helm(tools, home, [
      ...templateArgs({ 'serviceMonitor.enabled': true, 'controller.args.metricsBindAddress': '0' }),
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('serviceMonitor.enabled=true needs controller.args.metricsBindAddress');
  });
});

describe('grafanaDashboard.enabled=true', () => {
  it('renders a ConfigMap with the grafana_dashboard label and the dashboard JSON', () => {
    const ms = validate(
      renderChart(tools, home, {
        'grafanaDashboard.enabled': true,
        'grafanaDashboard.namespace': 'monitoring',
        'grafanaDashboard.annotations': { grafana_folder: 'konductor' },
      }),
      'dashboard',
    );
    const cm = ms.find((m) => m.kind === 'ConfigMap');
    expect(cm.metadata).toMatchObject({
      namespace: 'monitoring',
      labels: expect.objectContaining({ grafana_dashboard: '1' }),
      annotations: { grafana_folder: 'konductor' },
    });
    expect(JSON.parse(cm.data['konductor.json'])).toEqual(JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')));
  });

  it('takes another label for the sidecar, and the schema rejects an invalid one', () => {
    const ms = parseManifests(
      renderChart(tools, home, {
        'grafanaDashboard.enabled': true,
        'grafanaDashboard.label': 'dashboards.example.com/grafana',
        'grafanaDashboard.labelValue': 'konductor',
      }),
    );
    expect(ms.find((m) => m.kind === 'ConfigMap').metadata.labels['dashboards.example.com/grafana']).toBe(
      'konductor',
    );
    const r = helm(
      tools,
      home,
      templateArgs({ 'grafanaDashboard.enabled': true, 'grafanaDashboard.label': 'not a label' }),
    );
    expect(r.status).not.toBe(0);
  });
});
