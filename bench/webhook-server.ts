/**
 * The webhook of the manager, alone in its own process, for bench/webhook.ts: the same fastify instance
 * and routes as cmd/konductor.ts builds (pino logger at info, no request logging, the caBundle getter
 * that re-reads ca.crt at most once a second, HTTPS from a certificate directory with hot reload, the
 * admission metrics), minus the controller: `primitiveExists` and `semaphorePermits` answer at once, as the
 * manager's informer-cache lookups do.
 *
 * Usage: node bench/webhook-server.ts CERT_DIR. Prints `{"port":N}` on stdout once listening; on SIGUSR2
 * one JSON line of GC pauses and event-loop delay since the previous one (serverStats.ts).
 */
import pino from 'pino';
import { DEFAULT_AGENT_IMAGE } from '../api/constants.ts';
import { caBundleReader } from '../certs/certDir.ts';
import { createMetrics } from '../controller/metrics.ts';
import { startHttpsServer } from '../webhook/httpsServer.ts';
import { buildServer, mutateRoutes } from '../webhook/server.ts';
import { reportStatsOnSigusr2 } from './serverStats.ts';

async function main(): Promise<void> {
  const certDir = process.argv[2];
  if (!certDir) throw new Error('usage: node bench/webhook-server.ts CERT_DIR');
  const log = pino({ level: 'info', base: { component: 'konductor' } }, pino.destination(2));
  // As cmd/konductor.ts: the CA may rotate, so it is re-read, but at most once a second.
  const readCaBundle = caBundleReader(certDir);
  const injection = {
    agentImage: DEFAULT_AGENT_IMAGE,
    agentUrl: 'https://konductor.konductor-system.svc:443',
    get caBundle(): string {
      return readCaBundle();
    },
  };
  const app = buildServer({ loggerInstance: log.child({ part: 'https' }), httpsOptions: {} });
  // As cmd/konductor.ts: every admission is counted and timed in the manager's metrics.
  const metrics = createMetrics();
  await app.register(mutateRoutes, {
    injection,
    primitiveExists: () => true,
    semaphorePermits: () => 4,
    now: Date.now,
    onReviewed: (review, response, seconds) => metrics.admitted(review, response, seconds),
  });
  const https = await startHttpsServer({ app, certDir, port: 0, host: '127.0.0.1' });
  reportStatsOnSigusr2((line) => process.stdout.write(line));
  process.stdout.write(`${JSON.stringify({ port: https.port })}\n`);
  process.on('SIGTERM', () => {
    void https.close().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`webhook-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
