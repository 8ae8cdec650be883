/**
 * The agent's client abandons a TCP connect that never completes. Node arms a request's timeout only
 * after its socket connects; on a real node, a reconnect to a Service whose old endpoint just died sends
 * SYNs into nothing and hung konductor-wait for minutes after the manager was replaced
 * (test/e2e/manager-restart.test.ts). Here the SYNs are dropped by a listener whose accept queue is full
 * (Linux drops a SYN when the queue of a listen(0) socket that never accepts holds a connection).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCA } from '../../certs/generate.ts';
import { createAgentClient } from '../../sidecar/agentClient.ts';

const LISTENER = `
import socket, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

describe('agent client connect timeout', () => {
  let listener: ChildProcess;
  let port = 0;
  const fillers: Socket[] = [];

  beforeAll(async () => {
    listener = spawn('python3', ['-c', LISTENER], { stdio: ['pipe', 'pipe', 'inherit'] });
    port = await new Promise<number>((resolve, reject) => {
      listener.once('error', reject);
      listener.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    });
    // Fill the accept queue: these connect (the kernel completes the handshake), nobody accepts them.
    for (let i = 0; i < 2; i++) {
      const s = connect(port, '127.0.0.1');
      fillers.push(s);
      await new Promise<void>((resolve) => {
        s.once('connect', () => resolve());
        s.once('error', () => resolve());
        s.setTimeout(500, () => resolve()); // the second may already be dropped: fine, the queue is full
      });
    }
  });

  afterAll(() => {
    for (const s of fillers) s.destroy();
    listener?.stdin?.end();
    listener?.kill();
  });

  it('a wait whose connect never completes ends as a network failure after the connect timeout', async () => {
    const { certPem } = await generateCA({ commonName: 'connect-timeout-test', validityDays: 1 });
    const client = createAgentClient({
      url: `https://127.0.0.1:${port}`,
      caBundle: certPem,
      connectTimeoutMs: 300,
      idleTimeoutMs: 120_000, // longer than the test's own timeout: only the connect timeout can end it
    });
    const result = await client.wait('token', { onEvent: () => true });
    expect(result).toEqual({ kind: 'network', reason: expect.stringContaining('ETIMEDOUT') });
  }, 20_000);

  it('a release whose connect never completes ends the same way', async () => {
    const { certPem } = await generateCA({ commonName: 'connect-timeout-test', validityDays: 1 });
    const client = createAgentClient({
      url: `https://127.0.0.1:${port}`,
      caBundle: certPem,
      connectTimeoutMs: 300,
    });
    const result = await client.release('token', {}, 120_000);
    expect(result).toMatchObject({ kind: 'network' });
  }, 20_000);
});
