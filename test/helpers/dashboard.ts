/**
 * The chart's Grafana dashboard for tests: its panels and their PromQL queries, parsed with the Prometheus
 * project's own PromQL grammar (@prometheus-io/lezer-promql), Grafana's variables substituted first.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { REPO_ROOT } from '../../devcluster/konductor.ts';

export const DASHBOARD_FILE = join(REPO_ROOT, 'charts/konductor/files/dashboards/konductor.json');

export interface DashboardPanel {
  type: string;
  id: number;
  title: string;
  options?: unknown;
  fieldConfig?: { defaults: { custom?: unknown }; overrides: unknown[] };
  targets?: { refId: string; expr: string; [k: string]: unknown }[];
  panels?: DashboardPanel[];
}

export interface Dashboard {
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
  [k: string]: unknown;
}

export const loadDashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;

/** Every panel, rows' nested panels included, rows excluded. */
export function panelsOf(d: Dashboard): DashboardPanel[] {
  return d.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** Grafana's variables replaced by values PromQL accepts (their meaning does not matter to the parse). */
export function substituteVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{?(\w+)\}?/g, (_m, name: string) => `var_${name}`);
}

export interface Selector {
  metric: string;
  /** Label names of its matchers. */
  labels: string[];
}

export interface ParsedQuery {
  selectors: Selector[];
  /** Label names of `by (...)` / `without (...)` groupings. */
  groupings: string[];
  /** Syntax errors (text around each). */
  errors: string[];
}

export function parseQuery(expr: string): ParsedQuery {
  const text = substituteVariables(expr);
  const tree = parser.parse(text);
  const out: ParsedQuery = { selectors: [], groupings: [], errors: [] };
  tree.iterate({
    enter: (node) => {
      if (node.type.isError) out.errors.push(text.slice(Math.max(0, node.from - 10), node.to + 10));
      if (node.name === 'VectorSelector') {
        const sel: Selector = { metric: '', labels: [] };
        const cursor = node.node.cursor();
        cursor.iterate((n) => {
          if (n.name === 'Identifier' && !sel.metric) sel.metric = text.slice(n.from, n.to);
          if (n.name === 'LabelName') sel.labels.push(text.slice(n.from, n.to));
        });
        out.selectors.push(sel);
        return false;
      }
      if (node.name === 'GroupingLabels') {
        node.node.cursor().iterate((n) => {
          if (n.name === 'LabelName') out.groupings.push(text.slice(n.from, n.to));
        });
        return false;
      }
      return undefined;
    },
  });
  return out;
}

/** The metric family a sample name belongs to (histogram and summary series). */
export function familyOf(name: string, families: ReadonlySet<string>): string | undefined {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && families.has(name.slice(0, -suffix.length)))
      return name.slice(0, -suffix.length);
  }
  return undefined;
}
