/**
 * Writes self-managed certificates into the manager's cert dir (`--cert-dir`): `tls.crt`, `tls.key` and
 * `ca.crt` (the trust bundle: current CA + previous CA during a rollover), each atomically (temporary file
 * + rename), so the HTTPS server's reloader (certs/tlsReload.ts) and the injection's read of ca.crt never
 * see a half-written file. Order: ca.crt first (a new CA is trusted before anything it signed is served),
 * then the key, then the certificate; a reload that catches the key and certificate mismatched in between
 * is rejected by the server and retried on the next file event.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TLS_CERT_FILE, TLS_KEY_FILE } from './tlsReload.ts';

export const CA_FILE = 'ca.crt';

export interface CertDirFiles {
  tlsCert: string;
  tlsKey: string;
  /** PEM bundle for ca.crt. */
  caBundle: string;
}

/**
 * The trust bundle (`ca.crt`) of a cert dir as the injection hands it to the agent: the CA may rotate while
 * the manager runs, so the file is read again, but at most once per `maxAgeMs` (not on every admission).
 * '' while the file is missing.
 */
export function caBundleReader(dir: string, maxAgeMs = 1000, now: () => number = Date.now): () => string {
  const file = join(dir, CA_FILE);
  let value = '';
  let readAt = Number.NEGATIVE_INFINITY;
  return () => {
    const t = now();
    if (t - readAt > maxAgeMs) {
      value = existsSync(file) ? readFileSync(file, 'utf8') : '';
      readAt = t;
    }
    return value;
  };
}

async function readOr(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function writeAtomic(dir: string, name: string, content: string, mode: number): Promise<void> {
  const target = join(dir, name);
  const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { mode });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Writes the files that differ from what the directory holds; resolves true when anything was written. */
export async function writeCertDir(dir: string, files: CertDirFiles): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const plan: [string, string, number][] = [
    [CA_FILE, files.caBundle, 0o644],
    [TLS_KEY_FILE, files.tlsKey, 0o600],
    [TLS_CERT_FILE, files.tlsCert, 0o644],
  ];
  let wrote = false;
  for (const [name, content, mode] of plan) {
    if ((await readOr(join(dir, name))) === content) continue;
    await writeAtomic(dir, name, content, mode);
    wrote = true;
  }
  return wrote;
}
