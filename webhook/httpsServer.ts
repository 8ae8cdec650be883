/**
 * Serves a fastify instance over HTTPS with the certificate of a directory (`tls.crt` + `tls.key`, the
 * layout of a kubernetes.io/tls Secret volume and of cert-manager), hot-reloaded when the files change:
 * new handshakes use the new pair (`server.setSecureContext`), established connections keep theirs.
 */
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';
import {
  readTlsMaterial,
  type TlsMaterial,
  type TlsReloader,
  watchTlsDirectory,
} from '../certs/tlsReload.ts';
import { type BuildServerOptions, buildServer } from './server.ts';

export interface StartHttpsServerOptions extends Omit<BuildServerOptions, 'httpsOptions'> {
  /** Directory holding tls.crt and tls.key. */
  certDir: string;
  certFile?: string;
  keyFile?: string;
  port: number;
  /** Default 127.0.0.1 (pass 0.0.0.0 / :: in a cluster). */
  host?: string;
  /**
   * An instance to serve. It must have been built for HTTPS (`buildServer({ httpsOptions: {} })`); its TLS
   * context is replaced by the directory's pair before it listens. Absent: one is built with buildServer.
   */
  app?: FastifyInstance;
  /** Registers routes/plugins on the instance before it listens. */
  register?: (app: FastifyInstance) => unknown;
  /** Reload debounce, default 200 ms. */
  debounceMs?: number;
  /** Also re-check the files this often (0 = never, the default). */
  pollIntervalMs?: number;
}

export interface RunningHttpsServer {
  app: FastifyInstance;
  /** https://host:port of the listening socket. */
  url: string;
  port: number;
  /** Re-reads the certificate directory now; true when a new pair was installed. */
  reloadCertificate(): Promise<boolean>;
  /** Stops watching and closes the server (idle keep-alive connections are closed too). */
  close(): Promise<void>;
}

export async function startHttpsServer(opts: StartHttpsServerOptions): Promise<RunningHttpsServer> {
  const files = {
    certDir: opts.certDir,
    ...(opts.certFile ? { certFile: opts.certFile } : {}),
    ...(opts.keyFile ? { keyFile: opts.keyFile } : {}),
  };
  const initial = await readTlsMaterial(files);
  const app =
    opts.app ??
    buildServer({
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
      ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : {}),
      ...(opts.requestLogging !== undefined ? { requestLogging: opts.requestLogging } : {}),
      httpsOptions: { cert: initial.cert, key: initial.key },
    });
  const server = app.server as unknown as HttpsServer;
  if (typeof server.setSecureContext !== 'function') {
    throw new TypeError(
      'startHttpsServer: app was not built for HTTPS (use buildServer({ httpsOptions: {} }))',
    );
  }
  const install = (m: TlsMaterial): void => server.setSecureContext({ cert: m.cert, key: m.key });
  if (opts.app) install(initial);

  if (opts.register) await opts.register(app);

  const reloader: TlsReloader = watchTlsDirectory({
    ...files,
    initial,
    apply: install,
    ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
    ...(opts.pollIntervalMs !== undefined ? { pollIntervalMs: opts.pollIntervalMs } : {}),
    onReload: () => app.log.info({ certDir: opts.certDir }, 'reloaded TLS certificate'),
    onError: (err) =>
      app.log.warn({ certDir: opts.certDir, err }, 'TLS certificate reload failed; keeping the previous one'),
  });
  try {
    await app.listen({ port: opts.port, host: opts.host ?? '127.0.0.1' });
    // A change between the first read and the watcher's start is picked up here.
    await reloader.reload();
  } catch (err) {
    reloader.close();
    await app.close().catch(() => undefined);
    throw err;
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    app,
    url: `https://${urlHost}:${port}`,
    port,
    reloadCertificate: () => reloader.reload(),
    async close() {
      reloader.close();
      await app.close();
    },
  };
}
