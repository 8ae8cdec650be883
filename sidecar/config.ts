/**
 * The agent's configuration, read from the environment the webhook injects (DESIGN §4).
 * `parseAgentConfig(env)` takes a plain record and throws a KonductorError naming the variable that is
 * missing or malformed, so `kubectl logs -c konductor-wait` says exactly what is misconfigured. No I/O:
 * the CA bundle's certificates are parsed in memory; files are read later, per request.
 */
import { X509Certificate } from 'node:crypto';
import { AGENT_ENV, GRANT_FILE, SHARED_MOUNT_PATH, TOKEN_FILE } from '../api/constants.ts';
import { type ErrorCode, type KonductorError, konductorError } from '../api/errors.ts';

export const AGENT_CONFIG_INVALID = 'KDR_AGENT_CONFIG_INVALID' satisfies ErrorCode;

/** Re-exported for existing importers; defined in api/constants.ts. */
export { AGENT_ENV };

export interface AgentConfig {
  /** Base URL of the manager's agent API, without a trailing slash (always https). */
  url: string;
  /** PEM of the CA that signed the manager's serving certificate. */
  caBundle: string;
  podName: string;
  podNamespace: string;
  /** Empty when the webhook did not pass it (informational only: the token identifies the pod). */
  podUid: string;
  /** Give up waiting after this many milliseconds (konductor.io/wait-timeout); undefined = wait forever. */
  waitTimeoutMs: number | undefined;
  /** Directory shared with the main containers (grant.json lives here). */
  runDir: string;
  /** Projected service-account token; re-read on every request (the kubelet rotates it). */
  tokenFile: string;
  /** `${runDir}/grant.json`. */
  grantFile: string;
}

export function parseAgentConfig(env: Readonly<Record<string, string | undefined>>): AgentConfig {
  const url = required(env, AGENT_ENV.url).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`${AGENT_ENV.url}=${JSON.stringify(url)} is not a URL (expected https://host:port)`);
  }
  if (parsed.protocol !== 'https:') {
    throw invalid(
      `${AGENT_ENV.url}=${JSON.stringify(url)} must be an https:// URL (the agent API is TLS only)`,
    );
  }
  const caBundle = required(env, AGENT_ENV.caBundle);
  checkCaBundle(caBundle);
  const runDir = (env[AGENT_ENV.runDir] || SHARED_MOUNT_PATH).replace(/\/+$/, '');
  return {
    url,
    caBundle,
    podName: required(env, AGENT_ENV.podName),
    podNamespace: required(env, AGENT_ENV.podNamespace),
    podUid: env[AGENT_ENV.podUid]?.trim() ?? '',
    waitTimeoutMs: parseWaitTimeout(env[AGENT_ENV.waitTimeout]),
    runDir,
    tokenFile: env[AGENT_ENV.tokenFile] || TOKEN_FILE,
    grantFile: runDir === SHARED_MOUNT_PATH ? GRANT_FILE : `${runDir}/grant.json`,
  };
}

/** Every PEM block must parse: a broken bundle is a misconfiguration, not a network outage to retry. */
function checkCaBundle(pem: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw invalid(`${AGENT_ENV.caBundle} does not contain a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw invalid(
        `${AGENT_ENV.caBundle}: certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`,
      );
    }
  });
}

function parseWaitTimeout(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const text = raw.trim();
  if (!/^[0-9]+$/.test(text)) {
    throw invalid(`${AGENT_ENV.waitTimeout}=${JSON.stringify(raw)} is not a whole number of milliseconds`);
  }
  const ms = Number(text);
  if (!Number.isSafeInteger(ms))
    throw invalid(`${AGENT_ENV.waitTimeout}=${JSON.stringify(raw)} is out of range`);
  // 0 means "no timeout", the way the annotation's `0` duration reads.
  return ms === 0 ? undefined : ms;
}

function required(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name]?.trim();
  if (!value) {
    throw invalid(
      `environment variable ${name} is not set (the konductor webhook injects it; was this pod injected?)`,
    );
  }
  return value;
}

function invalid(problem: string): KonductorError {
  return konductorError(AGENT_CONFIG_INVALID, problem);
}
