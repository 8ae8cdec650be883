/**
 * A TCP pass-through in front of a real kube-apiserver (TLS goes through untouched: the API server's
 * certificate names 127.0.0.1), which a test can cut and restore: every open connection through it is
 * destroyed and new ones are refused until restore(). A client configured with the proxy's address loses
 * its watches the way it would when the network between it and the API server fails. The fault campaign
 * puts one between the manager and the API server, and one between the agents and the manager.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { parse, stringify } from 'yaml';

export interface TcpProxy {
  port: number;
  /** Destroys every open connection and refuses new ones. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
  /** Connections accepted so far, and cut by cut(). */
  stats(): { accepted: number; cut: number };
  close(): Promise<void>;
}

export interface ProxyTarget {
  host: string;
  port: number;
}

/**
 * `target` may be a function: it is read for every new connection (a target known only later). `listenHost`:
 * the address it listens on (default 127.0.0.1; the campaign's agent proxy on a real node listens on the node
 * IP, which pods reach).
 */
export async function startTcpProxy(
  target: ProxyTarget | (() => ProxyTarget),
  listenHost = '127.0.0.1',
): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let cut = false;
  let accepted = 0;
  let severed = 0;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = createConnection(typeof target === 'function' ? target() : target);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    cut: () => {
      cut = true;
      severed += open.size;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore: () => {
      cut = false;
    },
    stats: () => ({ accepted, cut: severed }),
    close: () =>
      new Promise((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Writes a copy of a kubeconfig whose clusters point at the proxy; returns its path. */
export async function kubeconfigThrough(
  proxy: TcpProxy,
  kubeconfigPath: string,
  outPath: string,
): Promise<string> {
  const kubeconfig = parse(await readFile(kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { server: string } }[];
  };
  for (const c of kubeconfig.clusters) c.cluster.server = `https://127.0.0.1:${proxy.port}`;
  await writeFile(outPath, stringify(kubeconfig), { mode: 0o600 });
  return outPath;
}
