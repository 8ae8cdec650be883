/**
 * The floor of the webhook benchmark: a bare fastify HTTPS server that answers the same AdmissionReviews
 * with a fixed response, i.e. everything the webhook does except deciding. Same TLS (the same certificate
 * directory, read once), same keep-alive timeout and body limit, the same JSON body parsing (fastify's
 * default parser, as the webhook's route uses), no logging; the response for each fixture is the webhook's
 * own answer to it, captured by bench/webhook.ts before the run and looked up here by request uid.
 *
 * Usage: node bench/webhook-floor-server.ts CERT_DIR RESPONSES_JSON ({"<uid>": "<response body>", ...}).
 * Prints `{"port":N}` once listening; SIGUSR2 as bench/webhook-server.ts (serverStats.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { reportStatsOnSigusr2 } from './serverStats.ts';

async function main(): Promise<void> {
  const [certDir, responsesFile] = process.argv.slice(2);
  if (!certDir || !responsesFile)
    throw new Error('usage: node bench/webhook-floor-server.ts CERT_DIR RESPONSES_JSON');
  const responses = new Map(
    Object.entries(JSON.parse(readFileSync(responsesFile, 'utf8')) as Record<string, string>),
  );
  const app = Fastify({
    logger: false,
    keepAliveTimeout: 75_000,
    https: {
      cert: readFileSync(join(certDir, 'tls.crt')),
      key: readFileSync(join(certDir, 'tls.key')),
    },
  });
  app.post('/mutate', { bodyLimit: 10 * 1024 * 1024 }, async (req, reply) => {
    const uid = (req.body as { request?: { uid?: string } } | null)?.request?.uid ?? '';
    const body = responses.get(uid);
    if (body === undefined) return reply.code(400).send({ message: `no fixed response for uid ${uid}` });
    return reply.code(200).type('application/json; charset=utf-8').send(body);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  reportStatsOnSigusr2((line) => process.stdout.write(line));
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.on('SIGTERM', () => {
    void app.close().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`webhook-floor-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
