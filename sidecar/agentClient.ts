/**
 * The agent's HTTPS client for the manager's agent API (DESIGN §4): node:https only, the manager's CA from
 * the injected bundle, one fresh connection per request (no pool to linger after the agent is done).
 * It reports what happened as plain data; what to do about it (retry, give up) is decided in wait.ts/hold.ts.
 */
import { readFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { type ErrorCode, konductorError } from '../api/errors.ts';
import {
  AGENT_API,
  BEARER_PREFIX,
  decodeWaitEvent,
  HEARTBEAT_INTERVAL_MS,
  NDJSON_CONTENT_TYPE,
  type ReleaseRequest,
  type ReleaseResponse,
  type WaitEvent,
} from '../api/protocol.ts';

export const AGENT_TOKEN_UNREADABLE = 'KDR_AGENT_TOKEN_UNREADABLE' satisfies ErrorCode;

/** A wait stream with no byte for this long (three missed heartbeats) is considered dead. */
export const WAIT_IDLE_TIMEOUT_MS = 3 * HEARTBEAT_INTERVAL_MS;
const MAX_ERROR_BODY = 64 * 1024;
/**
 * A TCP connect that has not completed in this long is abandoned and retried. Node arms a request's
 * timeout only once its socket is connected, and a SYN sent to a Service whose old endpoint just died
 * (conntrack still points at the gone pod IP) is retransmitted for ~2 minutes before the kernel gives up.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/** How a request ended, as data. */
export type AgentCallResult<T> =
  | { kind: 'ok'; value: T }
  /** The manager answered with a non-2xx status; `code`/`message` from its AgentErrorBody when present. */
  | { kind: 'http'; status: number; code: string; message: string }
  /** No answer: connection refused/reset, TLS failure, timeout, or a stream that ended without a verdict. */
  | { kind: 'network'; reason: string }
  | { kind: 'aborted' };

export interface WaitStreamHandlers {
  /** The manager accepted the request (HTTP 200): the stream is open. */
  onOpen?: () => void;
  /** One decoded event; return true when it is terminal (the stream is then closed and `ok` returned). */
  onEvent: (event: WaitEvent) => boolean;
}

export interface AgentClient {
  /** POST /v1/wait and feed the NDJSON events to `handlers` until a terminal event or the stream ends. */
  wait(token: string, handlers: WaitStreamHandlers, signal?: AbortSignal): Promise<AgentCallResult<void>>;
  /** POST /v1/release. */
  release(token: string, body: ReleaseRequest, timeoutMs: number): Promise<AgentCallResult<ReleaseResponse>>;
}

export interface AgentClientOptions {
  url: string;
  caBundle: string;
  /** Idle timeout of the wait stream, default WAIT_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Connect timeout, default CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
}

/** Reads the projected service-account token (call it for every request: the kubelet rotates it). */
export function readToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw konductorError(AGENT_TOKEN_UNREADABLE, path, code).causedBy(err);
  }
  if (token === '') {
    throw konductorError(AGENT_TOKEN_UNREADABLE, path);
  }
  return token;
}

export function createAgentClient(opts: AgentClientOptions): AgentClient {
  const base = opts.url.replace(/\/+$/, '');
  const idleTimeoutMs = opts.idleTimeoutMs ?? WAIT_IDLE_TIMEOUT_MS;
  const connectTimeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;

  function post(
    path: string,
    token: string,
    body: unknown,
    accept: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ) {
    const payload = JSON.stringify(body);
    const req = request(`${base}${path}`, {
      method: 'POST',
      ca: opts.caBundle,
      agent: false,
      signal,
      // The socket's timeout from its creation, so it covers the connect; req.setTimeout below
      // replaces it with the request's own once the socket is connected.
      timeout: Math.min(connectTimeoutMs, timeoutMs),
      headers: {
        authorization: `${BEARER_PREFIX}${token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        accept,
      },
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    req.end(payload);
    return req;
  }

  return {
    wait(token, handlers, signal) {
      return new Promise((resolve) => {
        let settled = false;
        const settle = (result: AgentCallResult<void>) => {
          if (settled) return;
          settled = true;
          resolve(result);
          req.destroy();
        };
        let req: ClientRequest;
        try {
          req = post(AGENT_API.wait.path, token, {}, NDJSON_CONTENT_TYPE, idleTimeoutMs, signal);
        } catch (err) {
          // e.g. an unusable CA bundle: createSecureContext throws synchronously.
          resolve(networkFailure(err));
          return;
        }
        req.on('error', (err) => settle(signal?.aborted ? { kind: 'aborted' } : networkFailure(err)));
        req.on('response', (res) => {
          if (res.statusCode !== 200) {
            readErrorBody(res).then(settle, (err) => settle(networkFailure(err)));
            return;
          }
          handlers.onOpen?.();
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let newline = buffer.indexOf('\n');
            while (newline >= 0 && !settled) {
              const event = decodeWaitEvent(buffer.slice(0, newline));
              buffer = buffer.slice(newline + 1);
              if (event !== null && handlers.onEvent(event)) settle({ kind: 'ok', value: undefined });
              newline = buffer.indexOf('\n');
            }
          });
          res.on('end', () => {
            // A final line without its newline still counts.
            const event = decodeWaitEvent(buffer);
            if (event !== null && handlers.onEvent(event)) settle({ kind: 'ok', value: undefined });
            else settle({ kind: 'network', reason: 'stream ended' });
          });
          res.on('error', (err) => settle(signal?.aborted ? { kind: 'aborted' } : networkFailure(err)));
          // 'close' after 'end' is a no-op (already settled); before it, the connection was cut mid-stream.
          res.on('close', () =>
            settle(signal?.aborted ? { kind: 'aborted' } : { kind: 'network', reason: 'ECONNRESET' }),
          );
        });
      });
    },

    release(token, body, timeoutMs) {
      return new Promise((resolve) => {
        let req: ClientRequest;
        try {
          req = post(AGENT_API.release.path, token, body, 'application/json', timeoutMs);
        } catch (err) {
          resolve(networkFailure(err));
          return;
        }
        req.on('error', (err) => resolve(networkFailure(err)));
        req.on('response', (res) => {
          if (res.statusCode !== 200) {
            readErrorBody(res).then(resolve, (err) => resolve(networkFailure(err)));
            return;
          }
          readBody(res).then(
            (text) => {
              try {
                const value = JSON.parse(text) as ReleaseResponse;
                resolve({
                  kind: 'ok',
                  value: {
                    released: Array.isArray(value?.released) ? value.released : [],
                    held: Array.isArray(value?.held) ? value.held : [],
                  },
                });
              } catch {
                resolve({ kind: 'ok', value: { released: [] } });
              }
            },
            (err) => resolve(networkFailure(err)),
          );
        });
      });
    },
  };
}

function networkFailure(err: unknown): AgentCallResult<never> {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  // Connection-level codes speak for themselves; TLS verification failures need their message too.
  if (/^E[A-Z]+$/.test(code)) return { kind: 'network', reason: code };
  const message = e?.message ?? String(err);
  return { kind: 'network', reason: code ? `${code}: ${message}` : message };
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (text.length < MAX_ERROR_BODY) text += chunk;
    });
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

async function readErrorBody(res: IncomingMessage): Promise<AgentCallResult<never>> {
  const status = res.statusCode ?? 0;
  const text = await readBody(res);
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body?.message === 'string') {
      return {
        kind: 'http',
        status,
        code: typeof body.code === 'string' ? body.code : '',
        message: body.message,
      };
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  const raw = text.trim().slice(0, 500);
  return { kind: 'http', status, code: '', message: raw || res.statusMessage || `HTTP ${status}` };
}
