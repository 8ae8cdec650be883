/** Loopback port helpers: pick a free port, and check that a requested port is free. */
import { createServer } from 'node:net';
import { konductorError } from '../api/errors.ts';

export const LOOPBACK = '127.0.0.1';

/** A port the kernel reports free on 127.0.0.1 right now (the caller binds it soon after). */
export function getFreePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct free ports. */
export async function getFreePorts(count: number, host = LOOPBACK): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort(host));
  return [...ports];
}

/** Resolves when `port` can be bound; throws KDR_DEVCLUSTER_PORT_IN_USE naming `component` if not. */
export function assertPortFree(port: number, component: string, host = LOOPBACK): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? konductorError(
              'KDR_DEVCLUSTER_PORT_IN_USE',
              `${component}: port ${host}:${port} is already in use by another process. ` +
                `Stop that process (e.g. \`ss -ltnp 'sport = :${port}'\` shows it) or choose another port ` +
                '(leave the port unset to pick a free one).',
            )
          : err,
      );
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve()));
  });
}
