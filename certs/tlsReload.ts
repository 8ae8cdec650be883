/**
 * Hot reload of a TLS certificate + key from a directory (DESIGN §5: "TLS certificate hot-reloaded from its
 * directory without dropping connections").
 *
 * The directory is watched with fs.watch (which also sees Kubernetes' atomic `..data` symlink swap of a
 * Secret volume); events are debounced, both files are re-read, and the pair is handed to `apply` only when
 * it differs from the last one applied. `apply` is expected to validate the pair (for a node TLS server:
 * `server.setSecureContext({cert, key})` throws on a mismatched or half-written pair); on failure the
 * previous context stays in place and the next event retries. An optional poll interval covers filesystems
 * where fs.watch delivers nothing.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { konductorError } from '../api/errors.ts';

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';

export interface TlsMaterial {
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface TlsFiles {
  certDir: string;
  /** File name of the certificate inside certDir, default `tls.crt`. */
  certFile?: string;
  /** File name of the key inside certDir, default `tls.key`. */
  keyFile?: string;
}

/** Reads `tls.crt` and `tls.key` from the directory; throws KDR_CERTS_TLS_READ_FAILED naming the file. */
export async function readTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const certPath = join(files.certDir, files.certFile ?? TLS_CERT_FILE);
  const keyPath = join(files.certDir, files.keyFile ?? TLS_KEY_FILE);
  const [cert, key] = await Promise.all([readText(certPath), readText(keyPath)]);
  return { cert, key };
}

async function readText(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw konductorError('KDR_CERTS_TLS_READ_FAILED', path, (err as Error).message).causedBy(err);
  }
  if (text.trim() === '') throw konductorError('KDR_CERTS_TLS_READ_FAILED', path);
  return text;
}

export interface TlsReloaderOptions extends TlsFiles {
  /** Installs a new pair; throw to reject it (the previous one stays in use). */
  apply: (material: TlsMaterial) => void;
  /** The pair currently in use, so an unchanged directory does not trigger a reload. */
  initial?: TlsMaterial;
  /** Quiet time after the last filesystem event before reloading, default 200 ms. */
  debounceMs?: number;
  /** Also re-check the files this often (0 = never, the default). */
  pollIntervalMs?: number;
  /** Called after a pair was applied. */
  onReload?: (material: TlsMaterial) => void;
  /** Called when reading or applying failed (the previous pair stays in use). */
  onError?: (err: unknown) => void;
}

export interface TlsReloader {
  /** Re-reads the files now; resolves true when a new pair was applied. Never rejects. */
  reload(): Promise<boolean>;
  /** Stops watching; pending debounced reloads are dropped. */
  close(): void;
}

/** Starts watching `certDir`. The caller installs the initial pair itself (pass it as `initial`). */
export function watchTlsDirectory(opts: TlsReloaderOptions): TlsReloader {
  const debounceMs = opts.debounceMs ?? 200;
  let current: TlsMaterial | undefined = opts.initial;
  let timer: NodeJS.Timeout | undefined;
  let poller: NodeJS.Timeout | undefined;
  let closed = false;
  // Serialise reloads: a reload requested while one runs is run once more after it.
  let running: Promise<boolean> | undefined;
  let again = false;

  const reportError = (err: unknown): void => {
    try {
      opts.onError?.(err);
    } catch {
      // an error reporter that throws must not break the watcher
    }
  };

  const reloadOnce = async (): Promise<boolean> => {
    let material: TlsMaterial;
    try {
      material = await readTlsMaterial(opts);
    } catch (err) {
      reportError(err);
      return false;
    }
    if (closed) return false;
    if (current && current.cert === material.cert && current.key === material.key) return false;
    try {
      opts.apply(material);
    } catch (err) {
      reportError(err);
      return false;
    }
    current = material;
    try {
      opts.onReload?.(material);
    } catch (err) {
      reportError(err);
    }
    return true;
  };

  const reload = (): Promise<boolean> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let applied = false;
      do {
        again = false;
        applied = (await reloadOnce()) || applied;
      } while (again && !closed);
      running = undefined;
      return applied;
    })();
    return running;
  };

  const schedule = (): void => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, debounceMs);
    timer.unref();
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.certDir, { persistent: false }, schedule);
    watcher.on('error', reportError);
  } catch (err) {
    reportError(err);
  }
  if (opts.pollIntervalMs && opts.pollIntervalMs > 0) {
    poller = setInterval(() => void reload(), opts.pollIntervalMs);
    poller.unref();
  }

  return {
    reload,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (poller) clearInterval(poller);
      watcher?.close();
    },
  };
}
