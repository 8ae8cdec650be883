/**
 * The chart's Grafana dashboard (charts/konductor/files/dashboards/konductor.json) against Grafana's
 * published JSON schemas (grafana-foundation-sdk's jsonschema/, vendored in test/fixtures/schemas/grafana):
 * the dashboard, each panel's options and field config for its panel type, each query as a Prometheus
 * data query; and every query is valid PromQL naming metrics the manager defines. The integration test
 * metrics.test.ts checks the same queries against what a real run exports.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../controller/metrics.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';
import { familyOf, loadDashboard, panelsOf, parseQuery } from '../helpers/dashboard.ts';

const SCHEMAS = join(REPO_ROOT, 'test/fixtures/schemas/grafana');
const schema = (name: string) => JSON.parse(readFileSync(join(SCHEMAS, `${name}.jsonschema.json`), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });

function validator(file: string, definition?: string) {
  const s = schema(file);
  return ajv.compile(definition ? { ...s, $ref: `#/definitions/${definition}` } : s);
}

const errorsOf = (v: ReturnType<typeof validator>, data: unknown) =>
  v(data) ? [] : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);

const dashboard = loadDashboard();
const panels = panelsOf(dashboard);

describe('the dashboard against Grafana’s published schemas', () => {
  it('is a valid dashboard (dashboard.jsonschema.json)', () => {
    expect(errorsOf(validator('dashboard'), dashboard)).toEqual([]);
  });

  it('a schema violation is caught (the check can fail)', () => {
    expect(errorsOf(validator('dashboard'), { ...dashboard, graphTooltip: 7 })).not.toEqual([]);
    expect(errorsOf(validator('timeseries', 'Options'), { legend: {} })).not.toEqual([]);
  });

  it.each(panels.map((p) => [p.title, p] as const))(
    '%s: options, field config and queries of its panel type',
    (_t, p) => {
      const kind = p.type;
      expect(['timeseries', 'heatmap', 'stat']).toContain(kind);
      expect(errorsOf(validator(kind, 'Options'), p.options)).toEqual([]);
      if (kind !== 'stat')
        expect(errorsOf(validator(kind, 'FieldConfig'), p.fieldConfig?.defaults.custom ?? {})).toEqual([]);
      for (const t of p.targets ?? []) expect(errorsOf(validator('prometheus'), t)).toEqual([]);
      expect(p.targets?.length).toBeGreaterThan(0);
    },
  );

  it('panel ids are unique', () => {
    const all = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
  });
});

describe('the queries', () => {
  const families = new Set(
    createMetrics()
      .registry.getMetricsAsArray()
      .map((m) => (m as unknown as { name: string }).name),
  );

  it.each(panels.flatMap((p) => (p.targets ?? []).map((t) => [`${p.title} ${t.refId}`, t.expr] as const)))(
    '%s: valid PromQL on metrics the manager defines',
    (_name, expr) => {
      const q = parseQuery(expr);
      expect(q.errors).toEqual([]);
      expect(q.selectors.length).toBeGreaterThan(0);
      for (const s of q.selectors)
        expect(familyOf(s.metric, families), `${s.metric} in ${expr}`).toBeDefined();
    },
  );

  it('the template variable’s query is valid PromQL on a defined metric', () => {
    const v = dashboard.templating.list.find((x) => x.name === 'namespace');
    const inner = /^label_values\((\w+), *(\w+)\)$/.exec(String(v?.query));
    expect(inner && familyOf(inner[1]!, families)).toBeTruthy();
  });

  it('a misspelt metric is caught', () => {
    const q = parseQuery('sum(rate(konductor_grant_total[$__rate_interval]))');
    expect(familyOf(q.selectors[0]!.metric, families)).toBeUndefined();
    expect(parseQuery('sum(rate(konductor_grants_total[5m])').errors).not.toEqual([]);
  });
});
