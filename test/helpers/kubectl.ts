/** Runs the devcluster's kubectl against the run's control plane, as a user would. */
import { spawn } from 'node:child_process';
import { clusterInfo } from './cluster.ts';

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Adds `--namespace`. */
  namespace?: string;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  timeoutMs?: number;
  kubeconfigPath?: string;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function kubectl(args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  const info = clusterInfo();
  const fullArgs = opts.namespace ? ['--namespace', opts.namespace, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(info.kubectlPath, fullArgs, {
      env: { ...process.env, KUBECONFIG: opts.kubeconfigPath ?? info.kubeconfigPath },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const res = { stdout, stderr, code: code ?? 1 };
      if (res.code !== 0 && !opts.allowFailure) {
        reject(
          new Error(
            `kubectl ${fullArgs.join(' ')} failed (exit ${code}${signal ? `, ${signal}` : ''}):\n${stderr || stdout}`,
          ),
        );
      } else resolve(res);
    });
    child.stdin.end(opts.input ?? '');
  });
}
