/** Runs the devcluster's kubectl against the run's control plane, as a user would. */
import { clusterInfo } from './cluster.ts';
import { runProcess } from './process.ts';

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

export async function kubectl(args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  const info = clusterInfo();
  const fullArgs = opts.namespace ? ['--namespace', opts.namespace, ...args] : args;
  const env = { ...process.env, KUBECONFIG: opts.kubeconfigPath ?? info.kubeconfigPath };
  const res = await runProcess(info.kubectlPath, fullArgs, {
    env,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
  if (res.code !== 0 && !opts.allowFailure) {
    throw new Error(
      `kubectl ${fullArgs.join(' ')} failed (exit ${res.code}${res.signal ? `, ${res.signal}` : ''}):\n${res.stderr || res.stdout}`,
    );
  }
  return { stdout: res.stdout, stderr: res.stderr, code: res.code };
}

/**
 * The rows of `kubectl get`'s table keyed by its headers, sliced at the headers' columns (an empty cell
 * — OLDEST-WAIT when nobody waits — stays empty instead of shifting the cells after it).
 */
export function tableRows(stdout: string): Record<string, string>[] {
  const [header, ...lines] = stdout.split('\n').filter((l) => l.trim() !== '');
  if (!header) return [];
  const starts = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return lines.map((line) =>
    Object.fromEntries(
      starts.map((col, i) => [col.name, line.slice(col.at, starts[i + 1]?.at ?? line.length).trim()]),
    ),
  );
}
