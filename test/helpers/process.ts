/** Runs a command to completion, collecting its output (async: the process kubelet shares this process). */
import { spawn } from 'node:child_process';

export interface ProcessResult {
  stdout: string;
  stderr: string;
  code: number;
  signal: NodeJS.Signals | null;
}

export function runProcess(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: opts.env ?? process.env,
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
    // A command that exits without reading its stdin (e.g. kubectl failing early) closes the pipe: that is
    // not an error of the run (its exit code says what happened), so do not let EPIPE crash the test worker.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => resolve({ stdout, stderr, code: code ?? 1, signal }));
    // A command that does not read its stdin (kubectl apply -f FILE) may exit before we wrote it.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
