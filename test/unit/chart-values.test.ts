/**
 * The chart's values contract: every key of the seed chart's values table exists with the same type and
 * default (and the same meaning: our description starts with the seed's), values.schema.json rejects
 * wrong types and unknown keys (helm template fails), the README's values table is current, and the
 * seed README's primitive examples are valid against the CRDs the chart ships.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  formatDefault,
  goJson,
  renderTable,
  TABLE_END,
  TABLE_START,
  updateReadme,
  valuesRows,
} from '../../scripts/chart-docs.ts';
import {
  CHART_DIR,
  type ChartTools,
  findChartTools,
  helm,
  type Json,
  kubeconform,
  kubeconformProblems,
  kubernetesDefinitions,
  parseManifests,
  REPO,
  templateArgs,
  writeSchemaDir,
} from '../helpers/chartTools.ts';

const SEED_README = join(REPO, '..', 'shared', 'seed', 'konductor-chart-README.md');
const SEED_TABLE_FIXTURE = join(REPO, 'test/fixtures/chart/seed-values-table.md');

interface SeedRow {
  key: string;
  type: string;
  default: string;
  description: string;
}

function tableLines(markdown: string): string[] {
  const start = markdown.indexOf('| Key | Type | Default | Description |');
  if (start < 0) throw new Error('no values table');
  const lines: string[] = [];
  for (const line of markdown.slice(start).split('\n')) {
    if (!line.startsWith('|')) break;
    lines.push(line.trimEnd());
  }
  return lines;
}

function parseTable(markdown: string): SeedRow[] {
  return tableLines(markdown)
    .slice(2)
    .map((line) => {
      const cells = line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      const [key = '', type = '', def = '', description = ''] = cells;
      return { key, type, default: def, description };
    });
}

const seedMarkdown = existsSync(SEED_README)
  ? readFileSync(SEED_README, 'utf8')
  : readFileSync(SEED_TABLE_FIXTURE, 'utf8');
const seedRows = parseTable(seedMarkdown);
const valuesYaml = readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8');
const values = parse(valuesYaml) as Json;
const rows = valuesRows(valuesYaml);

function valueAt(obj: Json, path: string): { found: boolean; value: unknown } {
  let cur: Json = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in cur)) return { found: false, value: undefined };
    cur = cur[part];
  }
  return { found: true, value: cur };
}

describe('seed values table compatibility', () => {
  it('has the seed table (from ../shared or the fixture copy)', () => {
    expect(seedRows.length).toBe(42);
    expect(seedRows.map((r) => r.key)).toContain('controller.args.leaderElect');
  });

  it('the fixture copy matches the seed README when ../shared is present', () => {
    if (!existsSync(SEED_README)) {
      // CI without shared/: the fixture is the contract; nothing to compare it with.
      expect(existsSync(SEED_TABLE_FIXTURE)).toBe(true);
      return;
    }
    expect(tableLines(readFileSync(SEED_TABLE_FIXTURE, 'utf8'))).toEqual(tableLines(seedMarkdown));
  });

  it.each(seedRows.map((r) => [r.key, r] as const))(
    '%s exists with the seed type and default',
    (key, seed) => {
      const { found, value } = valueAt(values, key);
      expect(found, `${key} missing from values.yaml`).toBe(true);
      const seedDefault = seed.default === '`nil`' ? null : JSON.parse(seed.default.slice(1, -1));
      expect(value).toEqual(seedDefault);
      const row = rows.find((r) => r.key === key);
      expect(row, `${key} is not a row of the generated table`).toBeDefined();
      expect(row?.type).toBe(seed.type);
      expect(row?.default).toBe(seed.default);
      expect(row?.description.startsWith(seed.description)).toBe(true);
    },
  );

  it('new keys have their documented defaults', () => {
    expect(values.certManager).toEqual({ enabled: true });
    expect(values.webhook).toEqual({
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      namespaceSelector: {},
      port: 9443,
    });
    expect(values.agentImage).toEqual({ repository: 'logiciq/konductor-agent', tag: null });
    expect(values.validatingAdmissionPolicy).toEqual({ enabled: true });
    for (const r of rows) expect(r.description, `${r.key} is undocumented`).not.toBe('');
  });
});

describe('chart README values table', () => {
  it('is current (node scripts/chart-docs.ts --check)', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    expect(updateReadme(readme, renderTable(rows))).toBe(readme);
  });

  it('the generator follows helm-docs conventions', () => {
    const yamlText = [
      'a:',
      '  # -- (string) Typed, over',
      '  # two lines.',
      '  tag:',
      '  # -- An object documented as a whole.',
      '  obj: {z: 1, b: [x]}',
      '  nested:',
      '    # @default -- not this one',
      '    # -- Leaf with a | pipe.',
      '    # @default -- computed',
      '    leaf: 1.5',
      'undocumented: ""',
    ].join('\n');
    const r = valuesRows(yamlText);
    expect(r.map((x) => [x.key, x.type, x.default, x.description])).toEqual([
      ['a.nested.leaf', 'float', 'computed', 'Leaf with a | pipe.'],
      ['a.obj', 'object', '`{"b":["x"],"z":1}`', 'An object documented as a whole.'],
      ['a.tag', 'string', '`nil`', 'Typed, over two lines.'],
      ['undocumented', 'string', '`""`', ''],
    ]);
    expect(renderTable(r)).toContain('| a.nested.leaf | float | computed | Leaf with a \\| pipe. |');
    expect(goJson({ b: 1, a: { d: null, c: [true] } })).toBe('{"a":{"c":[true],"d":null},"b":1}');
    expect(formatDefault(null)).toBe('`nil`');
    expect(() => updateReadme('no markers', '')).toThrow(/markers/);
    expect(updateReadme(`x\n${TABLE_START}\nold\n${TABLE_END}\ny`, 'T')).toBe(
      `x\n${TABLE_START}\nT\n${TABLE_END}\ny`,
    );
  });
});

describe('values.schema.json (helm template)', () => {
  let tools: ChartTools;
  let home: string;
  beforeAll(async () => {
    tools = await findChartTools();
    home = mkdtempSync(join(tmpdir(), 'konductor-chart-values-'));
  }, 900_000);
  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  const template = (setJson: Record<string, unknown>) => helm(tools, home, templateArgs(setJson));

  it('accepts the defaults', () => {
    expect(template({}).status).toBe(0);
  });

  it.each([
    ['an unknown top-level key', { bogus: 1 }, "additional properties 'bogus' not allowed"],
    ['a string replica count', { 'controller.replicas': 'two' }, '/controller/replicas'],
    ['a string boolean', { 'crd.install': 'yes' }, '/crd/install'],
    ['a list where an object belongs', { 'controller.resources': [] }, '/controller/resources'],
    ['an object where a list belongs', { 'controller.tolerations': {} }, '/controller/tolerations'],
    ['a number image tag', { 'image.tag': 1 }, '/image/tag'],
    ['an unknown log level', { 'controller.args.logLevel': 'verbose' }, '/controller/args/logLevel'],
    ['an unknown failure policy', { 'webhook.failurePolicy': 'Retry' }, '/webhook/failurePolicy'],
    ['a timeout above 30 s', { 'webhook.timeoutSeconds': 31 }, '/webhook/timeoutSeconds'],
    ['a typo in a nested key', { 'podMonitor.enable': true }, "additional properties 'enable' not allowed"],
    ['a non-string annotation', { 'serviceAccount.annotations': { a: 1 } }, '/serviceAccount/annotations/a'],
  ])('rejects %s', (_what, setJson, message) => {
    const r = template(setJson);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema");
    expect(r.stderr).toContain(message);
  });
});

describe("the seed README's primitive examples", () => {
  it('are valid against the CRDs the chart ships', async () => {
    const tools = await findChartTools();
    const examples = [...seedMarkdown.matchAll(/```yaml\n(apiVersion: sync\.konductor\.io[\s\S]*?)```/g)].map(
      (m, i) => (m[1] ?? '').replace(/name: (my-\w+)/, `name: $1\n  namespace: ex${i}`),
    );
    if (!existsSync(SEED_README)) return; // the fixture copy holds only the values table
    expect(examples).toHaveLength(4);
    const text = examples.join('---\n');
    const home = mkdtempSync(join(tmpdir(), 'konductor-chart-examples-'));
    try {
      writeSchemaDir(join(home, 'schemas'), kubernetesDefinitions(tools), parseManifests(text));
      const report = kubeconform(tools, join(home, 'schemas'), text);
      expect(kubeconformProblems(report)).toEqual([]);
      expect(report.resources.map((r) => r.kind).sort()).toEqual(['Barrier', 'Gate', 'Lease', 'Semaphore']);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
