/**
 * Preloaded into the manager by bench/handoff.ts (`node --import=<this file>?out=<ndjson file>`, through
 * KONDUCTOR_MANAGER_NODE_ARGS), to split a handoff into its parts without touching the manager's code.
 * It appends one JSON line per mark, wall-clock ms with µs precision (performance.timeOrigin + now):
 *
 *   {"mark":"podMainTerminatedSeen","pod":N,"at":T}   first watch chunk showing pod N's `main` terminated
 *   {"mark":"statusPut","path":P,"created":T,"start":T,"end":T}   a status PUT (diagnostics_channel
 *      http.client.*: request object created, request sent on a socket, response)
 *   {"mark":"grantedWritten","pod":N,"at":T}     the agent API wrote a `granted` event for pod N
 *   {"mark":"grantedFlushed","pod":N,"at":T}     ... and it went to the socket (http corks until next tick)
 *
 * Marks are buffered and written every 100 ms off the hot path (and at exit). Not loaded outside the bench.
 */
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import http, { type ClientRequest } from 'node:http';
import net from 'node:net';

const out = new URL(import.meta.url).searchParams.get('out');
const now = () => performance.timeOrigin + performance.now();
const lines: string[] = [];
const record = (mark: Record<string, unknown>) => lines.push(`${JSON.stringify(mark)}\n`);
const flush = () => {
  if (out && lines.length) appendFileSync(out, lines.splice(0).join(''));
};
setInterval(flush, 100).unref();
process.on('exit', flush);

const putCreated = new WeakMap<ClientRequest, number>();
const putStarted = new WeakMap<ClientRequest, number>();
const isStatusPut = (r: ClientRequest) => r.method === 'PUT' && r.path.endsWith('/status');
subscribe('http.client.request.created', (msg) => {
  const { request } = msg as { request: ClientRequest };
  if (isStatusPut(request)) putCreated.set(request, now());
});
subscribe('http.client.request.start', (msg) => {
  const { request } = msg as { request: ClientRequest };
  if (isStatusPut(request)) putStarted.set(request, now());
});
subscribe('http.client.response.finish', (msg) => {
  const { request } = msg as { request: ClientRequest };
  const start = putStarted.get(request);
  if (start !== undefined)
    record({ mark: 'statusPut', path: request.path, created: putCreated.get(request), start, end: now() });
});

const write = http.ServerResponse.prototype.write;
http.ServerResponse.prototype.write = function (
  this: http.ServerResponse,
  chunk: unknown,
  ...rest: unknown[]
) {
  if (typeof chunk === 'string' && chunk.startsWith('{"type":"granted"'))
    record({ mark: 'grantedWritten', pod: /"pod":"([^"]+)"/.exec(chunk)?.[1], at: now() });
  return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
} as typeof write;

// Pod watch streams, line by line (an event can span several chunks): the first event that shows a pod's
// container `main` terminated (the handoff benchmark's pods), marked when its last byte arrived.
// When that line actually leaves for the socket (http responses cork and flush on the next tick).
type WriteGeneric = (writev: boolean, data: unknown, encoding: string, cb: unknown) => unknown;
const socketProto = net.Socket.prototype as unknown as { _writeGeneric: WriteGeneric };
const writeGeneric = socketProto._writeGeneric;
socketProto._writeGeneric = function (this: net.Socket, writev, data, encoding, cb) {
  const chunks = writev ? (data as { chunk: unknown }[]).map((c) => c.chunk) : [data];
  for (const c of chunks) {
    const text = typeof c === 'string' ? c : Buffer.isBuffer(c) ? c.toString('latin1') : '';
    if (text.includes('{"type":"granted"'))
      record({ mark: 'grantedFlushed', pod: /"pod":"([^"]+)"/.exec(text)?.[1], at: now() });
  }
  return writeGeneric.call(this, writev, data, encoding, cb);
};

const seen = new Set<string>();
const partial = new WeakMap<http.IncomingMessage, string>();
const MAIN_TERMINATED = '{"name":"main","state":{"terminated"';
const push = http.IncomingMessage.prototype.push;
http.IncomingMessage.prototype.push = function (
  this: http.IncomingMessage & { req?: ClientRequest },
  chunk: unknown,
  encoding?: BufferEncoding,
) {
  const path = this.req?.path ?? '';
  if (Buffer.isBuffer(chunk) && path.includes('/pods?') && path.includes('watch=')) {
    let text = (partial.get(this) ?? '') + chunk.toString('latin1');
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (!line.includes(MAIN_TERMINATED)) continue;
      const pod = /"metadata":\{"name":"([^"]+)"/.exec(line)?.[1];
      if (pod && !seen.has(pod)) {
        seen.add(pod);
        record({ mark: 'podMainTerminatedSeen', pod, at: now() });
      }
    }
    partial.set(this, text);
  }
  return push.call(this, chunk, encoding);
};
