/**
 * Text output of `kubectl konductor`, in kubectl's manner: upper-case column headers, columns padded and
 * separated by three spaces, ages like `kubectl get` prints them (45s, 3m12s, 5h, 2d3h). `-o json` and
 * `-o yaml` print the views themselves (plugin/views.ts).
 */
import { stringify } from 'yaml';
import { rulesOf } from '../controller/arbitration/kinds.ts';
import type { HoldersView, PrimitiveSummary, QueueView, StatusRow } from './views.ts';
import type { WhyView } from './why.ts';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function formatStructured(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data);
}

/** kubectl's HumanDuration (k8s.io/apimachinery/pkg/util/duration), from seconds. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const since = (isoTime: string | undefined, now: number) =>
  isoTime ? age((now - Date.parse(isoTime)) / 1000) : '<none>';
const until = (isoTime: string | undefined, now: number) => {
  if (!isoTime) return '<none>';
  const left = (Date.parse(isoTime) - now) / 1000;
  return left >= 0 ? `in ${age(left)}` : `${age(-left)} ago`;
};

/** Columns padded to their widest cell, separated by three spaces (the last column is not padded). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function renderStatus(rows: readonly StatusRow[], now: number, allNamespaces: boolean): string {
  if (rows.length === 0) return 'No konductor primitives found.\n';
  const headers = [
    ...(allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'PHASE',
    'CAPACITY',
    'IN-USE',
    'WAITING',
    'OLDEST-WAIT',
  ];
  return table(
    headers,
    rows.map((r) => [
      ...(allNamespaces ? [r.namespace] : []),
      `${r.kind.toLowerCase()}/${r.name}`,
      r.phase || '<none>',
      String(r.capacity),
      String(r.inUse),
      String(r.waiting),
      r.oldestWaitingSince ? since(r.oldestWaitingSince, now) : '-',
    ]),
  );
}

function headline(v: PrimitiveSummary) {
  const use = rulesOf(v.kind).explain.use({ capacity: v.capacity, inUse: v.inUse, waiting: 0 });
  return `${v.kind.toLowerCase()} ${v.namespace}/${v.name}: ${use} (${v.phase})`;
}

export function renderQueue(v: QueueView, now: number): string {
  const head = `${headline(v)}, ${v.waiting} waiting\n`;
  if (v.entries.length === 0) return `${head}No pods wait.\n`;
  return (
    head +
    table(
      ['POSITION', 'POD', 'PRIORITY', 'PERMITS', 'WAITING', 'WHY NOT GRANTED'],
      v.entries.map((e) => [
        e.position === null ? '-' : String(e.position),
        e.pod,
        String(e.priority),
        String(e.permits),
        since(e.waitingSince, now),
        e.reason,
      ]),
    )
  );
}

export function renderHolders(v: HoldersView, now: number): string {
  const head = `${headline(v)}\n${v.note ? `${v.note}\n` : ''}`;
  const columns = rulesOf(v.kind).explain.holderColumns;
  if (v.holders.length === 0) return `${head}${columns === 'none' ? '' : 'No holders.\n'}`;
  if (columns === 'arrivals') {
    return (
      head +
      table(
        ['POD', 'ARRIVED'],
        v.holders.map((h) => [h.pod, `${since(h.grantedAt, now)} ago`]),
      )
    );
  }
  return (
    head +
    table(
      ['POD', 'PERMITS', 'TOKEN', 'GRANTED', 'EXPIRES'],
      v.holders.map((h) => [
        h.pod,
        String(h.permits),
        String(h.token),
        `${since(h.grantedAt, now)} ago`,
        h.expiresAt ? until(h.expiresAt, now) : '<none>',
      ]),
    )
  );
}

const MARK = {
  passed: 'passed',
  waiting: 'WAITING',
  failed: 'FAILED',
  missing: 'MISSING',
  'not-reached': 'later',
};

/** One screen: the summary, each primitive in acquisition order, what must happen, the wait-timeout. */
export function renderWhy(v: WhyView, now: number): string {
  const lines = [`${v.summary}.`];
  const ann = Object.entries(v.annotations).filter(
    ([k]) => k !== 'konductor.io/injected' && k !== 'konductor.io/admitted-at',
  );
  if (ann.length > 0) lines.push(`Annotations: ${ann.map(([k, val]) => `${k}=${val}`).join(', ')}`);
  if (v.stages.length > 0) {
    lines.push('');
    lines.push(
      table(
        ['#', 'PRIMITIVE', 'STATE', 'WHERE'],
        v.stages.map((s, i) => [
          String(i + 1),
          `${s.kind.toLowerCase()}/${s.name}`,
          MARK[s.state],
          `${s.position ? `position ${s.position} of ${s.queueLength}; ` : ''}${s.detail}`,
        ]),
      ).trimEnd(),
    );
    const blocking = v.stages.find((s) => s.toStart);
    if (blocking && v.waiting) lines.push('', `To start: ${blocking.toStart}.`);
    const later = v.stages.filter((s) => s.state === 'not-reached');
    if (later.length > 0 && v.waiting) {
      lines.push(
        `Then: ${later.map((s) => `${s.kind.toLowerCase()}/${s.name}`).join(', ')} (acquired in this order).`,
      );
    }
  }
  if (v.waitTimeout) {
    lines.push(
      `Gives up: konductor.io/wait-timeout ${v.waitTimeout.duration}${v.waitTimeout.deadline ? `, ${until(v.waitTimeout.deadline, now)} (${v.waitTimeout.deadline})` : ''}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}
