/**
 * Waiting for a control-plane component to become ready: poll its probe, fail fast (with the end of its log)
 * when the process exits or the deadline passes.
 */
import { request as httpRequest } from 'node:http';
import { type BackoffPolicy, backoffCeiling } from '../api/backoff.ts';
import { type KonductorError, konductorError } from '../api/errors.ts';
import { isNotFound, type KubeClient } from '../api/kubeClient.ts';
import type { ManagedProcess } from './processes.ts';
import { logTail } from './processInfo.ts';

/** Pause between two probes: 25 ms doubling to 250 ms (a component is usually up within a second or two). */
export const READINESS_POLL_BACKOFF: BackoffPolicy = { baseMs: 25, maxMs: 250 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** KDR_DEVCLUSTER_PORT_IN_USE when the log says so, else KDR_DEVCLUSTER_COMPONENT_FAILED; with the log's tail. */
export function componentError(proc: ManagedProcess, what: string): KonductorError {
  const tail = logTail(proc.logPath, 30);
  const portInUse = /address already in use/i.test(tail);
  const exit = proc.exitInfo
    ? ` (exit ${proc.exitInfo.code ?? ''}${proc.exitInfo.signal ? ` signal ${proc.exitInfo.signal}` : ''})`
    : '';
  return konductorError(
    portInUse ? 'KDR_DEVCLUSTER_PORT_IN_USE' : 'KDR_DEVCLUSTER_COMPONENT_FAILED',
    [
      `${proc.component} ${what}${exit}${portInUse ? ': its port is already in use by another process' : ''}.`,
      `Log: ${proc.logPath}`,
      'Last lines:',
      ...tail.split('\n').map((l) => `  ${l}`),
    ].join('\n'),
  );
}

/** Polls `probe` until it returns true; fails fast if `proc` exits, or at the deadline. */
export async function waitReady(
  proc: ManagedProcess,
  { probe, lastState }: ReadinessProbe,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (proc.exitInfo) throw componentError(proc, 'exited during start-up');
    if (await probe().catch(() => false)) return;
    if (proc.exitInfo) throw componentError(proc, 'exited during start-up');
    if (Date.now() > deadline) {
      const state = lastState();
      throw componentError(
        proc,
        `did not become ready within ${Math.round(timeoutMs / 1000)} s${state ? ` (last check: ${state})` : ''}`,
      );
    }
    await sleep(backoffCeiling(attempt, READINESS_POLL_BACKOFF));
  }
}

/** etcd answers /health with `"health":"true"`. */
export function etcdReadiness(url: string): ReadinessProbe {
  return { probe: () => etcdHealthy(url), lastState: () => '' };
}

function etcdHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(`${url}/health`, { timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** A readiness probe and what its last check saw (for the error at the deadline). */
export interface ReadinessProbe {
  probe: () => Promise<boolean>;
  lastState: () => string;
}

/** kube-apiserver answers `/readyz` with `ok`; otherwise the checks it names as failed. */
export function apiserverReadiness(client: KubeClient): ReadinessProbe {
  let last = '';
  return {
    probe: async () => {
      try {
        const body = String(await client.request<string>('GET', '/readyz', { timeoutMs: 2000 }));
        last = body;
        return body.trim() === 'ok';
      } catch (err) {
        last = (err as Error).message
          .split('\n')
          .filter((l) => l.includes('failed'))
          .join('; ');
        return false;
      }
    },
    lastState: () => last,
  };
}

/** kube-controller-manager is ready once its serviceaccount controller has created default/default. */
export function controllerManagerReadiness(client: KubeClient): ReadinessProbe {
  let last = '';
  return {
    probe: async () => {
      try {
        await client.get('/api/v1/namespaces/default/serviceaccounts/default');
        return true;
      } catch (err) {
        last = isNotFound(err) ? 'serviceaccount default/default not created yet' : (err as Error).message;
        return false;
      }
    },
    lastState: () => last,
  };
}
