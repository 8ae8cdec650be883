import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCA, generateServingCert, type ServingCertificate } from '../../certs/generate.ts';
import {
  readTlsMaterial,
  type TlsMaterial,
  type TlsReloader,
  watchTlsDirectory,
} from '../../certs/tlsReload.ts';

let first: ServingCertificate;
let second: ServingCertificate;

beforeAll(async () => {
  const ca = await generateCA({ commonName: 'reload-ca', validityDays: 1 });
  [first, second] = await Promise.all([
    generateServingCert({ ca, dnsNames: ['first.test'], validityDays: 1 }),
    generateServingCert({ ca, dnsNames: ['second.test'], validityDays: 1 }),
  ]);
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'konductor-tls-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(dir: string, cert: string, key: string): void {
  writeFileSync(join(dir, 'tls.crt'), cert);
  writeFileSync(join(dir, 'tls.key'), key);
}

interface Harness {
  applied: TlsMaterial[];
  errors: unknown[];
  reloader: TlsReloader;
}

function start(dir: string, initial?: TlsMaterial): Harness {
  const applied: TlsMaterial[] = [];
  const errors: unknown[] = [];
  const reloader = watchTlsDirectory({
    certDir: dir,
    ...(initial ? { initial } : {}),
    debounceMs: 20,
    // Same validation a TLS server's setSecureContext performs.
    apply: (m) => {
      createSecureContext({ cert: m.cert, key: m.key });
      applied.push(m);
    },
    onError: (e) => errors.push(e),
  });
  cleanups.unshift(() => reloader.close());
  return { applied, errors, reloader };
}

describe('readTlsMaterial', () => {
  it('reads tls.crt and tls.key, and names a missing or empty file', async () => {
    const dir = tempDir();
    write(dir, first.certPem, first.keyPem);
    expect(await readTlsMaterial({ certDir: dir })).toEqual({ cert: first.certPem, key: first.keyPem });
    writeFileSync(join(dir, 'tls.key'), '');
    await expect(readTlsMaterial({ certDir: dir })).rejects.toThrow(/tls\.key is empty/);
    rmSync(join(dir, 'tls.crt'));
    await expect(readTlsMaterial({ certDir: dir })).rejects.toMatchObject({
      code: 'KDR_CERTS_TLS_READ_FAILED',
    });
  });
});

describe('watchTlsDirectory', () => {
  it('applies a new pair written into the directory', async () => {
    const dir = tempDir();
    write(dir, first.certPem, first.keyPem);
    const h = start(dir, { cert: first.certPem, key: first.keyPem });
    write(dir, second.certPem, second.keyPem);
    await vi.waitFor(() => expect(h.applied.at(-1)?.cert).toBe(second.certPem), {
      timeout: 5000,
      interval: 10,
    });
    expect(h.applied.at(-1)?.key).toBe(second.keyPem);
  });

  it('does not re-apply an unchanged pair', async () => {
    const dir = tempDir();
    write(dir, first.certPem, first.keyPem);
    const h = start(dir, { cert: first.certPem, key: first.keyPem });
    expect(await h.reloader.reload()).toBe(false);
    expect(h.applied).toEqual([]);
  });

  it('keeps the previous pair when the new one is invalid (e.g. key and cert do not match), retries later', async () => {
    const dir = tempDir();
    write(dir, first.certPem, first.keyPem);
    const h = start(dir, { cert: first.certPem, key: first.keyPem });
    write(dir, second.certPem, first.keyPem); // half-rotated
    expect(await h.reloader.reload()).toBe(false);
    expect(h.applied).toEqual([]);
    expect(h.errors.length).toBeGreaterThan(0);
    writeFileSync(join(dir, 'tls.key'), second.keyPem);
    await vi.waitFor(() => expect(h.applied.at(-1)?.cert).toBe(second.certPem), {
      timeout: 5000,
      interval: 10,
    });
  });

  it('follows the atomic ..data symlink swap of a Kubernetes Secret volume', async () => {
    const dir = tempDir();
    const v1 = join(dir, '..2024_01_01_00_00_00.1');
    const v2 = join(dir, '..2024_01_01_00_00_00.2');
    mkdirSync(v1);
    mkdirSync(v2);
    write(v1, first.certPem, first.keyPem);
    write(v2, second.certPem, second.keyPem);
    symlinkSync(v1, join(dir, '..data'));
    symlinkSync(join('..data', 'tls.crt'), join(dir, 'tls.crt'));
    symlinkSync(join('..data', 'tls.key'), join(dir, 'tls.key'));
    const h = start(dir, await readTlsMaterial({ certDir: dir }));
    symlinkSync(v2, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await vi.waitFor(() => expect(h.applied.at(-1)?.cert).toBe(second.certPem), {
      timeout: 5000,
      interval: 10,
    });
  });

  it('stops reacting after close()', async () => {
    const dir = tempDir();
    write(dir, first.certPem, first.keyPem);
    const h = start(dir, { cert: first.certPem, key: first.keyPem });
    h.reloader.close();
    write(dir, second.certPem, second.keyPem);
    expect(await h.reloader.reload()).toBe(false);
    expect(h.applied).toEqual([]);
  });
});
