/**
 * The webhook of the manager, alone in its own process, for bench/webhook.ts: the same fastify instance
 * and routes as cmd/konductor.ts builds (pino logger at info, no request logging, the caBundle getter
 * that reads ca.crt at each admission, HTTPS from a certificate directory with hot reload), minus the
 * controller: `primitiveExists` answers true at once, as the manager's informer-cache lookup does.
 *
 * Usage: node bench/webhook-server.ts CERT_DIR. Prints `{"port":N}` on stdout once listening; on SIGUSR2
 * prints one JSON line of what it saw since the previous SIGUSR2 (GC pauses, event-loop delay, from
 * node:perf_hooks) and starts over: bench/webhook.ts brackets each run with it, to tell a slow
 * request caused by garbage collection from one caused by the scheduler (other processes on the core).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import pino from 'pino';
import { DEFAULT_AGENT_IMAGE } from '../api/constants.ts';
import { startHttpsServer } from '../webhook/httpsServer.ts';
import { buildServer, mutateRoutes } from '../webhook/server.ts';

async function main(): Promise<void> {
  const certDir = process.argv[2];
  if (!certDir) throw new Error('usage: node bench/webhook-server.ts CERT_DIR');
  const log = pino({ level: 'info', base: { component: 'konductor' } }, pino.destination(2));
  const caFile = join(certDir, 'ca.crt');
  const injection = {
    agentImage: DEFAULT_AGENT_IMAGE,
    agentUrl: 'https://konductor.konductor-system.svc:443',
    get caBundle(): string {
      return existsSync(caFile) ? readFileSync(caFile, 'utf8') : '';
    },
  };
  const app = buildServer({ loggerInstance: log.child({ part: 'https' }), httpsOptions: {} });
  await app.register(mutateRoutes, { injection, primitiveExists: () => true, now: Date.now });
  const https = await startHttpsServer({ app, certDir, port: 0, host: '127.0.0.1' });
  let gcMs: number[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs.push(e.duration);
  }).observe({ entryTypes: ['gc'] });
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  process.on('SIGUSR2', () => {
    const sorted = [...gcMs].sort((a, b) => a - b);
    const stats = {
      gc: {
        count: sorted.length,
        totalMs: Math.round(sorted.reduce((a, b) => a + b, 0) * 100) / 100,
        maxMs: Math.round((sorted[sorted.length - 1] ?? 0) * 100) / 100,
        over1Ms: sorted.filter((d) => d > 1).length,
      },
      eventLoopDelayMs: {
        p50: loopDelay.percentile(50) / 1e6,
        p99: loopDelay.percentile(99) / 1e6,
        max: loopDelay.max / 1e6,
      },
    };
    gcMs = [];
    loopDelay.reset();
    process.stdout.write(`${JSON.stringify(stats)}\n`);
  });
  process.stdout.write(`${JSON.stringify({ port: https.port })}\n`);
  process.on('SIGTERM', () => {
    void https.close().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`webhook-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
