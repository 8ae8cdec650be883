/**
 * Test double of the manager's agent API (not a test file itself): an HTTPS server on 127.0.0.1 with a
 * freshly generated CA, whose answers each test scripts, plus a helper that spawns the built agent
 * (dist/konductor-agent.js) against it. Used by test/unit/agent-process.test.ts and bench/ (agent, agent-startup).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeWaitEvent, type Grant, type WaitEvent } from '../../api/protocol.ts';
import { generateCA, generateServingCert } from '../../certs/generate.ts';

export interface TestPki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await generateCA({ commonName: 'konductor-test-ca', validityDays: 1 });
  const serving = await generateServingCert({
    ca,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    validityDays: 1,
  });
  return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem };
}

export interface RecordedRequest {
  /** 0-based index among all requests this server saw. */
  index: number;
  method: string;
  path: string;
  authorization: string | undefined;
  body: string;
  /** performance.now() when the request's headers arrived. */
  at: number;
}

/** Scripted answer to one request. */
export type FakeHandler = (req: RecordedRequest, res: ServerResponse, raw: IncomingMessage) => void;

export interface FakeManager {
  url: string;
  caPem: string;
  requests: RecordedRequest[];
  /** Replaces the handler used for subsequent requests. */
  handle(handler: FakeHandler): void;
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

export async function startFakeManager(pki: TestPki): Promise<FakeManager> {
  const requests: RecordedRequest[] = [];
  const waiters: { count: number; resolve: (r: RecordedRequest[]) => void }[] = [];
  let handler: FakeHandler = (_req, res) => {
    res.writeHead(500).end('no handler');
  };
  const server: Server = createServer({ cert: pki.certPem, key: pki.keyPem }, (raw, res) => {
    const at = performance.now();
    let body = '';
    raw.setEncoding('utf8');
    raw.on('data', (chunk: string) => {
      body += chunk;
    });
    raw.on('end', () => {
      const recorded: RecordedRequest = {
        index: requests.length,
        method: raw.method ?? '',
        path: raw.url ?? '',
        authorization: raw.headers.authorization,
        body,
        at,
      };
      requests.push(recorded);
      for (const w of waiters.filter((w) => requests.length >= w.count)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(requests.slice());
      }
      handler(recorded, res, raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: pki.caPem,
    requests,
    handle(h) {
      handler = h;
    },
    waitForRequests(count) {
      if (requests.length >= count) return Promise.resolve(requests.slice());
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts an NDJSON wait stream and writes `events` to it (the response stays open unless `end`). */
export function streamEvents(res: ServerResponse, events: WaitEvent[], end = false): void {
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const e of events) res.write(encodeWaitEvent(e));
  if (end) res.end();
}

export function jsonError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ code, message }));
}

export const SEMAPHORE = { kind: 'Semaphore' as const, name: 'batch-slots', namespace: 'default' };

export function grantOf(
  primitive: { kind: Grant['kind']; name: string; namespace: string },
  token: number,
  pod = 'job-a-x1',
): Grant {
  return { ...primitive, token, grantedAt: '2025-01-01T00:00:00Z', pod, uid: 'uid-1' };
}

/** A scratch directory with a token file, used as KONDUCTOR_RUN_DIR. */
export interface AgentSandbox {
  dir: string;
  tokenFile: string;
  token: string;
  remove(): void;
}

export function createSandbox(token = 'test-token-1'): AgentSandbox {
  const dir = mkdtempSync(join(tmpdir(), 'konductor-agent-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${token}\n`);
  return { dir, tokenFile, token, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function agentEnv(manager: FakeManager, sandbox: AgentSandbox, extra: Record<string, string> = {}) {
  return {
    PATH: process.env.PATH ?? '',
    KONDUCTOR_URL: manager.url,
    KONDUCTOR_CA_BUNDLE: manager.caPem,
    KONDUCTOR_POD_NAME: 'job-a-x1',
    KONDUCTOR_POD_NAMESPACE: 'default',
    KONDUCTOR_POD_UID: 'uid-1',
    KONDUCTOR_RUN_DIR: sandbox.dir,
    KONDUCTOR_TOKEN_FILE: sandbox.tokenFile,
    ...extra,
  };
}

export interface AgentRun {
  child: ChildProcess;
  /** performance.now() just before spawn. */
  spawnedAt: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout+stderr match `pattern`. */
  output(pattern: RegExp): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runAgent(
  bundle: string,
  args: string[],
  env: Record<string, string>,
  execArgv: string[] = [],
): AgentRun {
  let out = '';
  let err = '';
  const watchers: { pattern: RegExp; resolve: (s: string) => void }[] = [];
  const check = () => {
    for (const w of watchers.slice()) {
      if (w.pattern.test(out + err)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(out + err);
      }
    }
  };
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...execArgv, bundle, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    check();
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s;
    check();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    spawnedAt,
    stdout: () => out,
    stderr: () => err,
    output(pattern) {
      if (pattern.test(out + err)) return Promise.resolve(out + err);
      return new Promise((resolve) => watchers.push({ pattern, resolve }));
    },
    exited,
  };
}
