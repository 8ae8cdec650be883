/**
 * The kubelet-style log endpoint of the process kubelet (a TEST HARNESS): HTTPS on 127.0.0.1, serving
 * `GET /containerLogs/{namespace}/{pod}/{container}` with follow, tailLines, timestamps, previous,
 * sinceSeconds, sinceTime and limitBytes, so `kubectl logs` (and `-f`) work through the API server.
 * Clients must present a certificate signed by the cluster CA (the API server's kubelet client
 * certificate); there is no further authorization (the real kubelet also asks a SubjectAccessReview).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type CertAndKey, createCa, signCertificate } from '../pki.ts';
import { type LogEntry, LogFileReader, renderEntries, tailEntries } from './containerLog.ts';
import type { LogLookup } from './containerSlot.ts';

export interface LogServerOptions {
  /** PEM of the CA that signs clients (the API server's kubelet client certificate). */
  clientCaPem: string;
  /** The cluster CA; when given with its key, the serving certificate is signed by it, else by a throwaway CA. */
  caCertPath?: string;
  caKeyPath?: string;
  nodeName: string;
  findLog: (namespace: string, pod: string, container: string, previous: boolean) => LogLookup;
  log: (msg: string) => void;
}

export interface LogServer {
  port: number;
  close(): Promise<void>;
}

async function servingCert(opts: LogServerOptions): Promise<CertAndKey> {
  let ca: CertAndKey;
  if (opts.caCertPath && opts.caKeyPath) {
    ca = { certPem: readFileSync(opts.caCertPath, 'utf8'), keyPem: readFileSync(opts.caKeyPath, 'utf8') };
  } else {
    ca = await createCa('konductor-process-kubelet-selfsigned-ca', 365);
  }
  return signCertificate(ca, {
    commonName: `system:node:${opts.nodeName}`,
    organizations: ['system:nodes'],
    dnsNames: [opts.nodeName, 'localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
}

function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message);
}

function filterEntries(entries: LogEntry[], q: URLSearchParams): LogEntry[] {
  let out = entries;
  const sinceSeconds = Number(q.get('sinceSeconds') ?? '');
  const sinceTime = q.get('sinceTime');
  const since = sinceTime ? Date.parse(sinceTime) : sinceSeconds > 0 ? Date.now() - sinceSeconds * 1000 : NaN;
  if (!Number.isNaN(since)) out = out.filter((e) => Date.parse(e.time) >= since);
  const tail = q.get('tailLines');
  if (tail !== null && tail !== '' && Number(tail) >= 0) out = tailEntries(out, Number(tail));
  return out;
}

function handle(opts: LogServerOptions, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://localhost');
  if (req.method !== 'GET') {
    fail(res, 405, 'method not allowed');
    return;
  }
  if (url.pathname === '/healthz') {
    res.end('ok');
    return;
  }
  const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
  if (!m) {
    fail(res, 404, `not found: ${url.pathname} (the process kubelet serves only /containerLogs)`);
    return;
  }
  const [ns, pod, container] = [m[1], m[2], m[3]].map((s) => decodeURIComponent(s ?? ''));
  const q = url.searchParams;
  const bool = (k: string) => q.get(k) === 'true' || q.get(k) === '1';
  const found = opts.findLog(ns ?? '', pod ?? '', container ?? '', bool('previous'));
  if (!found.ok) {
    fail(res, found.status, found.message);
    return;
  }
  const timestamps = bool('timestamps');
  const follow = bool('follow') && !bool('previous');
  let budget = Number(q.get('limitBytes') ?? '') > 0 ? Number(q.get('limitBytes')) : Number.POSITIVE_INFINITY;
  const lineStart = { value: true };
  const reader = new LogFileReader(found.writer.path);
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
  const send = (entries: LogEntry[]): boolean => {
    let text = renderEntries(entries, timestamps, lineStart);
    if (!text) return true;
    const bytes = Buffer.byteLength(text);
    if (bytes > budget) text = Buffer.from(text).subarray(0, budget).toString('utf8');
    budget -= Math.min(bytes, budget);
    res.write(text);
    return budget > 0;
  };
  const more = send(filterEntries(reader.readNew(), q));
  const writer = found.writer;
  if (!follow || !more || writer.closed) {
    res.end();
    return;
  }
  const onAppend = () => {
    if (!send(reader.readNew())) finish();
  };
  const onClose = () => {
    send(reader.readNew());
    finish();
  };
  const finish = () => {
    writer.off('append', onAppend);
    writer.off('close', onClose);
    res.end();
  };
  writer.on('append', onAppend);
  writer.on('close', onClose);
  res.on('close', () => {
    writer.off('append', onAppend);
    writer.off('close', onClose);
  });
}

export async function startLogServer(opts: LogServerOptions): Promise<LogServer> {
  const cert = await servingCert(opts);
  const server: Server = createServer(
    {
      cert: cert.certPem,
      key: cert.keyPem,
      ca: opts.clientCaPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      try {
        handle(opts, req, res);
      } catch (err) {
        opts.log(`log server error: ${(err as Error).stack ?? err}`);
        if (!res.headersSent) fail(res, 500, (err as Error).message);
        else res.end();
      }
    },
  );
  server.on('tlsClientError', () => {
    /* clients without a valid certificate are refused; nothing to log */
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
