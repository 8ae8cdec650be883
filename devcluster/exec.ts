/** Runs a host command (ip, iptables, umount, ctr, helm) and collects its output. */
import { spawn } from 'node:child_process';
import { konductorError } from '../api/errors.ts';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: stderr.trim() }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** exec that throws KDR_REALNODE_COMMAND_FAILED (with the command and its stderr) on a non-zero exit. */
export async function execOk(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  const res = await exec(cmd, args, opts);
  if (res.code !== 0) {
    throw konductorError(
      'KDR_REALNODE_COMMAND_FAILED',
      `\`${[cmd, ...args].join(' ')}\` failed (exit ${res.code}): ${res.stderr || res.stdout}`,
    );
  }
  return res.stdout;
}
