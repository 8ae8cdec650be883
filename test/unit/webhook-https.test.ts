import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type CertificateAuthority,
  generateCA,
  generateServingCert,
  type ServingCertificate,
} from '../../certs/generate.ts';
import type { AdmissionReview } from '../../webhook/admissionReview.ts';
import { type RunningHttpsServer, startHttpsServer } from '../../webhook/httpsServer.ts';
import { buildServer, mutateRoutes } from '../../webhook/server.ts';

let caA: CertificateAuthority;
let caB: CertificateAuthority;
let certA: ServingCertificate;
let certB: ServingCertificate;
let dir: string;

beforeAll(async () => {
  [caA, caB] = await Promise.all([
    generateCA({ commonName: 'ca-a', validityDays: 1 }),
    generateCA({ commonName: 'ca-b', validityDays: 1 }),
  ]);
  [certA, certB] = await Promise.all([
    generateServingCert({ ca: caA, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validityDays: 1 }),
    generateServingCert({ ca: caB, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validityDays: 1 }),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'konductor-https-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeCert(c: ServingCertificate): void {
  writeFileSync(join(dir, 'tls.crt'), c.certPem);
  writeFileSync(join(dir, 'tls.key'), c.keyPem);
}

const fixture = readFileSync(new URL('../fixtures/admission/pod-job.json', import.meta.url), 'utf8');
const injection = { agentImage: 'agent:1', agentUrl: 'https://127.0.0.1:1', caBundle: 'x' };

function post(
  port: number,
  agent: Agent,
  body: string,
): Promise<{ status: number; body: string; reusedSocket: boolean; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text,
            reusedSocket: req.reusedSocket,
            localPort: req.socket?.localPort ?? -1,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Serial number of the certificate a fresh TLS handshake presents. */
function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.end();
        resolve(serial);
      },
    );
    socket.on('error', reject);
  });
}

function serialOf(c: ServingCertificate): string {
  return new X509Certificate(c.certPem).serialNumber;
}

describe('startHttpsServer', () => {
  let running: RunningHttpsServer | undefined;
  afterAll(async () => {
    await running?.close();
  });

  it('serves /mutate over TLS and hot-reloads the certificate without dropping connections', async () => {
    writeCert(certA);
    running = await startHttpsServer({
      certDir: dir,
      port: 0,
      host: '127.0.0.1',
      logger: false,
      debounceMs: 20,
      register: (app) => app.register(mutateRoutes, { injection }),
    });
    expect(running.url).toBe(`https://127.0.0.1:${running.port}`);

    // A keep-alive client that trusts both CAs (as the API server does during a CA rollover).
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: [caA.certPem, caB.certPem] });
    try {
      const first = await post(running.port, agent, fixture);
      expect(first.status).toBe(200);
      expect((JSON.parse(first.body) as AdmissionReview).response?.allowed).toBe(true);
      expect(await presentedSerial(running.port)).toBe(serialOf(certA));

      writeCert(certB);
      await vi.waitFor(async () => expect(await presentedSerial(running!.port)).toBe(serialOf(certB)), {
        timeout: 5000,
        interval: 20,
      });

      // The established connection survived the reload and still answers.
      const second = await post(running.port, agent, fixture);
      expect(second.status).toBe(200);
      expect(second.reusedSocket).toBe(true);
      expect(second.localPort).toBe(first.localPort);

      // A new client trusting only the new CA connects.
      const fresh = new Agent({ keepAlive: false, ca: caB.certPem });
      expect((await post(running.port, fresh, fixture)).status).toBe(200);
      // One trusting only the old CA no longer does.
      const stale = new Agent({ keepAlive: false, ca: caA.certPem });
      await expect(post(running.port, stale, fixture)).rejects.toMatchObject({
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      });
    } finally {
      agent.destroy();
    }
  });

  it('a garbage certificate write keeps the previous one in use', async () => {
    const r = running as RunningHttpsServer;
    writeFileSync(join(dir, 'tls.crt'), 'not a certificate');
    expect(await r.reloadCertificate()).toBe(false);
    expect(await presentedSerial(r.port)).toBe(serialOf(certB));
    writeCert(certA);
    expect(await r.reloadCertificate()).toBe(true);
    expect(await presentedSerial(r.port)).toBe(serialOf(certA));
  });

  it('serves a prebuilt app (built for HTTPS) with the directory’s certificate', async () => {
    writeCert(certB);
    const app = buildServer({ logger: false, httpsOptions: {} });
    app.get('/ping', async () => ({ pong: true }));
    const r = await startHttpsServer({ app, certDir: dir, port: 0 });
    try {
      expect(await presentedSerial(r.port)).toBe(serialOf(certB));
    } finally {
      await r.close();
    }
  });

  it('refuses a plain HTTP app and a missing directory', async () => {
    await expect(
      startHttpsServer({ app: buildServer({ logger: false }), certDir: dir, port: 0 }),
    ).rejects.toThrow(/not built for HTTPS/);
    await expect(startHttpsServer({ certDir: join(dir, 'missing'), port: 0 })).rejects.toMatchObject({
      code: 'KDR_CERTS_TLS_READ_FAILED',
    });
  });
});
