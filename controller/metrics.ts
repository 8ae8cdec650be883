/**
 * A tiny Prometheus registry (counters, gauges and histograms with labels) rendered in the text
 * exposition format. konductor exports a handful of series; a full client library is not needed.
 */
type Labels = Record<string, string>;

const labelKey = (labels: Labels | undefined) =>
  labels
    ? Object.entries(labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
        .join(',')
    : '';

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  private readonly name: string;
  private readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly name: string;
  private readonly help: string;
  private readonly read: () => number;
  constructor(name: string, help: string, read: () => number) {
    this.name = name;
    this.help = help;
    this.read = read;
  }
  render(): string {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${this.read()}`,
    ].join('\n');
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  private readonly name: string;
  private readonly help: string;
  private readonly buckets: number[];
  constructor(
    name: string,
    help: string,
    buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
  ) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
  }
  observe(labels: Labels | undefined, value: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      this.buckets.forEach((b, i) => {
        lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`);
      });
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** What the scrape-time gauges read of the controller. */
export interface MetricsSource {
  /** Managed pods in the controller's pod index. */
  readonly podIndexSize: number;
}

export interface ControllerMetrics {
  grants: Counter;
  statusWrites: Counter;
  conflicts: Counter;
  reconcileSeconds: Histogram;
  admissions: Counter;
  agentWaits: Counter;
  /** The controller whose caches the scrape-time gauges read. */
  observe(source: MetricsSource): void;
  render(): string;
}

export function createMetrics(extra: Metric[] = []): ControllerMetrics {
  const grants = new Counter('konductor_grants_total', 'Grants of permits and leases, by primitive kind.');
  const statusWrites = new Counter('konductor_status_writes_total', 'Status writes of primitives, by kind.');
  const conflicts = new Counter(
    'konductor_status_conflicts_total',
    'Status writes lost to a resourceVersion conflict.',
  );
  const reconcileSeconds = new Histogram(
    'konductor_reconcile_duration_seconds',
    'Time to arbitrate and write one primitive.',
  );
  const admissions = new Counter(
    'konductor_admission_reviews_total',
    'AdmissionReviews answered, by result.',
  );
  const agentWaits = new Counter('konductor_agent_waits_total', 'Wait streams opened by konductor-wait.');
  let source: MetricsSource | undefined;
  const podIndexPods = new Gauge(
    'konductor_pod_index_pods',
    "Managed pods in the manager's pod index (equals the live pods labelled konductor.io/managed when the cache is in sync).",
    () => source?.podIndexSize ?? 0,
  );
  const all: Metric[] = [
    grants,
    statusWrites,
    conflicts,
    reconcileSeconds,
    admissions,
    agentWaits,
    podIndexPods,
    ...extra,
  ];
  return {
    grants,
    statusWrites,
    conflicts,
    reconcileSeconds,
    admissions,
    agentWaits,
    observe: (s) => {
      source = s;
    },
    render: () => `${all.map((m) => m.render()).join('\n')}\n`,
  };
}
