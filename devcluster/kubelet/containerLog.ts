/**
 * Container log files of the process kubelet (a TEST HARNESS): one file per container attempt, in the
 * CRI log format the real kubelet reads (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`), so that
 * `timestamps`, `tailLines`, `sinceSeconds`, `sinceTime`, `limitBytes` and `previous` can be served.
 */
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export interface LogEntry {
  time: string;
  stream: 'stdout' | 'stderr';
  /** false for a partial line (P): the text continues in the next entry, no newline. */
  full: boolean;
  text: string;
}

/** Appends CRI-format entries; emits 'append' after each write and 'close' once the process is gone. */
export class ContainerLogWriter extends EventEmitter {
  readonly path: string;
  private fd: number | undefined;
  closed = false;

  constructor(path: string) {
    super();
    this.path = path;
    this.fd = openSync(path, 'a', 0o640);
  }

  /** Writes a chunk of a stream: complete lines as F entries, a trailing fragment as a P entry. */
  write(stream: 'stdout' | 'stderr', chunk: Buffer | string): void {
    if (this.fd === undefined) return;
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (!text) return;
    const time = new Date().toISOString().replace(/Z$/, '000000Z'); // RFC 3339 with nanoseconds
    const parts = text.split('\n');
    const last = parts.pop() ?? '';
    let out = '';
    for (const line of parts) out += `${time} ${stream} F ${line}\n`;
    if (last) out += `${time} ${stream} P ${last}\n`;
    writeSync(this.fd, out);
    this.emit('append');
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    this.closed = true;
    this.emit('close');
  }
}

export function parseLogLine(line: string): LogEntry | undefined {
  const m = /^(\S+) (stdout|stderr) ([FP]) ?(.*)$/.exec(line);
  if (!m) return undefined;
  return { time: m[1] ?? '', stream: m[2] as LogEntry['stream'], full: m[3] === 'F', text: m[4] ?? '' };
}

export interface LogQuery {
  timestamps?: boolean;
  tailLines?: number;
  sinceTime?: string;
  limitBytes?: number;
}

/** Renders entries as the kubelet serves them: text, newline after full lines, optional timestamp prefix. */
export function renderEntries(
  entries: LogEntry[],
  timestamps: boolean,
  atLineStart: { value: boolean },
): string {
  let out = '';
  for (const e of entries) {
    if (timestamps && atLineStart.value) out += `${e.time} `;
    out += e.text;
    if (e.full) out += '\n';
    atLineStart.value = e.full;
  }
  return out;
}

/** Keeps the last n logical lines (a logical line = P entries followed by their F entry). */
export function tailEntries(entries: LogEntry[], n: number): LogEntry[] {
  if (n < 0) return entries;
  let lines = 0;
  for (let i = entries.length - 1; i >= 0; i--) {
    if (entries[i]?.full || i === entries.length - 1) {
      if (lines === n) return entries.slice(i + 1);
      if (entries[i]?.full) lines++;
    }
  }
  return entries;
}

/** Incremental reader of a log file from a byte offset (used for follow). */
export class LogFileReader {
  private offset = 0;
  private rest = '';
  private readonly path: string;
  constructor(path: string) {
    this.path = path;
  }
  readNew(): LogEntry[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const chunks: Buffer[] = [];
    try {
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        chunks.push(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      closeSync(fd);
    }
    const text = this.rest + Buffer.concat(chunks).toString('utf8');
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    const out: LogEntry[] = [];
    for (const l of lines) {
      const e = parseLogLine(l);
      if (e) out.push(e);
    }
    return out;
  }
}
