/**
 * Self-managed certificates (`--cert-mode=self-managed`, DESIGN §6): the manager's own CA and serving
 * certificate, kept in one Secret (certs/secretStore.ts), written to the cert dir (certs/certDir.ts), trusted
 * by the API server through the webhook configuration's caBundle (certs/caBundle.ts) and rotated before
 * expiry by the pure planner (certs/rotationPlan.ts).
 *
 * Every replica runs the same loop; there is no leader. One sync:
 *   read the Secret (or create it if absent — the first creator's CA wins) ->
 *   plan -> apply the actions (generate.ts) -> PUT with the resourceVersion read (409: re-read, plan again) ->
 *   write the cert dir if it differs -> make the caBundle match.
 * Syncs run at the plan's next check time, at most `pollIntervalMs` apart, so a replica that did not rotate
 * adopts another replica's rotation within one interval. Timers are unref'd.
 */
import { backoffDelay, CERTIFICATE_SETUP_BACKOFF } from '../api/backoff.ts';
import { konductorError } from '../api/errors.ts';
import { isConflict, type KubeClient } from '../api/kubeClient.ts';
import { ensureCaBundle } from './caBundle.ts';
import { writeCertDir } from './certDir.ts';
import { type CertMaterial, inspectMaterial, serialOf, trustBundle } from './certMaterial.ts';
import { generateCA, generateServingCert } from './generate.ts';
import {
  canonicalIp,
  planRotation,
  type RotationAction,
  type RotationPolicy,
  rotationPolicy,
} from './rotationPlan.ts';
import { CertSecretStore, type StoredCerts } from './secretStore.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
/** The shortest serving validity accepted (a rotation needs a few seconds of headroom). */
export const MIN_SERVING_VALIDITY_MS = 10_000;

/** Minimal logger (pino's satisfies it). */
export interface CertLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface SelfManagedCertsOptions {
  client: KubeClient;
  /** Namespace of the Secret (the service namespace). */
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  certDir: string;
  dnsNames: string[];
  ipAddresses: string[];
  servingValidityMs: number;
  /** Longest time between two syncs, default clamp(validity/10, 1 s, 60 s). */
  pollIntervalMs?: number;
  /** RSA key size, default 2048. */
  keyBits?: number;
  logger?: CertLogger;
  /** Clock, for tests. */
  now?: () => number;
  /**
   * For tests: runs after a sync has planned its material and just before it POSTs (`create`) or PUTs
   * (`update`) the Secret — where another replica's write turns into a real AlreadyExists or 409.
   */
  beforeSecretWrite?: (write: 'create' | 'update') => void | Promise<void>;
}

export interface SelfManagedCerts {
  /** Runs one sync now (serialised with the timer's). */
  sync(): Promise<void>;
  /** Stops the timer. */
  close(): void;
}

export interface SanInputs {
  serviceName: string;
  serviceNamespace: string;
  /** Extra DNS names and IPs (--cert-dns-names, --cert-ip-sans). */
  extraDnsNames?: string[];
  extraIpAddresses?: string[];
  /** --agent-url: its host is added (as an IP SAN when it is an IP) — pods verify it. */
  agentUrl?: string;
}

/** The serving certificate's SANs: the Service's DNS names, the agent URL's host and the extra ones (pure). */
export function servingSans(inputs: SanInputs): { dnsNames: string[]; ipAddresses: string[] } {
  const svc = inputs.serviceName;
  const ns = inputs.serviceNamespace;
  const dns = [`${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, `${svc}.${ns}`, svc];
  const ips: string[] = [];
  const add = (host: string) => {
    const h = host.trim().replace(/^\[|\]$/g, '');
    if (!h) return;
    if (/^[0-9.]+$/.test(h) || h.includes(':')) ips.push(canonicalIp(h));
    else dns.push(h.toLowerCase());
  };
  for (const d of inputs.extraDnsNames ?? []) add(d);
  for (const ip of inputs.extraIpAddresses ?? []) if (ip.trim()) ips.push(canonicalIp(ip));
  if (inputs.agentUrl) {
    try {
      add(new URL(inputs.agentUrl).hostname);
    } catch {
      /* the manager validates --agent-url elsewhere */
    }
  }
  return { dnsNames: [...new Set(dns)], ipAddresses: [...new Set(ips)] };
}

/** clamp(validity/10, 1 s, 60 s). */
export function defaultPollInterval(servingValidityMs: number): number {
  return Math.min(60_000, Math.max(1_000, servingValidityMs / 10));
}

/** Applies planned actions to the material (generating keys and certificates). */
export async function applyActions(
  material: CertMaterial,
  actions: RotationAction[],
  policy: RotationPolicy,
  now: number,
  keyBits?: number,
): Promise<CertMaterial> {
  const m: CertMaterial = { ...material };
  const at = new Date(now);
  for (const action of actions) {
    if (action.type === 'create-ca') {
      const ca = await generateCA({
        commonName: `konductor-ca-${Math.floor(now / 1000)}`,
        validityDays: policy.caValidityMs / DAY_MS,
        now: at,
        ...(keyBits ? { keyBits } : {}),
      });
      if (action.keepPrevious && m.caCert && m.caKey) {
        m.previousCaCert = m.caCert;
        m.previousCaKey = m.caKey;
      } else {
        delete m.previousCaCert;
        delete m.previousCaKey;
      }
      m.caCert = ca.certPem;
      m.caKey = ca.keyPem;
      m.caRotatedAt = now;
    } else if (action.type === 'drop-previous-ca') {
      delete m.previousCaCert;
      delete m.previousCaKey;
    } else {
      const certPem = action.signer === 'previous' ? m.previousCaCert : m.caCert;
      const keyPem = action.signer === 'previous' ? m.previousCaKey : m.caKey;
      if (!certPem || !keyPem) {
        throw konductorError('KDR_CERTS_SELF_MANAGED_FAILED', `no ${action.signer} CA to sign with`);
      }
      const serving = await generateServingCert({
        ca: { certPem, keyPem },
        dnsNames: policy.dnsNames,
        ipAddresses: policy.ipAddresses,
        validityDays: policy.servingValidityMs / DAY_MS,
        now: at,
        ...(keyBits ? { keyBits } : {}),
      });
      m.tlsCert = serving.certPem;
      m.tlsKey = serving.keyPem;
    }
  }
  return m;
}

/** Plans and applies until the plan is empty (at most 3 rounds: CA, then serving, then nothing). */
async function settle(
  material: CertMaterial,
  policy: RotationPolicy,
  now: number,
  keyBits: number | undefined,
): Promise<{ material: CertMaterial; actions: RotationAction[]; nextCheckAt: number }> {
  let m = material;
  const done: RotationAction[] = [];
  for (let round = 0; round < 3; round++) {
    const plan = planRotation(inspectMaterial(m), policy, now);
    if (plan.actions.length === 0) return { material: m, actions: done, nextCheckAt: plan.nextCheckAt };
    m = await applyActions(m, plan.actions, policy, now, keyBits);
    done.push(...plan.actions);
  }
  throw konductorError('KDR_CERTS_SELF_MANAGED_FAILED', 'rotation plan did not settle (a bug)');
}

/** Reads (or creates) the Secret, rotates what is due, writes the cert dir. Starts the sync timer. */
export async function startSelfManagedCerts(opts: SelfManagedCertsOptions): Promise<SelfManagedCerts> {
  if (!(opts.servingValidityMs >= MIN_SERVING_VALIDITY_MS)) {
    throw konductorError(
      'KDR_CERTS_OPTIONS_INVALID',
      `certificate validity must be at least ${MIN_SERVING_VALIDITY_MS / 1000}s, got ${opts.servingValidityMs} ms`,
    );
  }
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  const policy = rotationPolicy(opts.servingValidityMs, opts.dnsNames, opts.ipAddresses);
  const pollIntervalMs = opts.pollIntervalMs ?? defaultPollInterval(opts.servingValidityMs);
  const store = new CertSecretStore(opts.client, opts.namespace, opts.secretName);
  const where = `${opts.namespace}/${opts.secretName}`;

  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running: Promise<number> | undefined;

  /** One sync; resolves with the delay until the next one. */
  const syncOnce = async (): Promise<number> => {
    let stored: StoredCerts | undefined = await store.read();
    let nextCheckAt = now() + pollIntervalMs;
    for (let attempt = 0; ; attempt++) {
      const t = now();
      if (!stored) {
        const { material } = await settle({}, policy, t, opts.keyBits);
        await opts.beforeSecretWrite?.('create');
        const res = await store.createIfAbsent(material);
        stored = res.stored;
        log?.info(
          { secret: where, created: res.created, serial: serialOf(stored.material.tlsCert) },
          res.created
            ? 'created the certificate Secret'
            : 'adopted the certificate Secret of another replica',
        );
        if (res.created) continue; // plan once more on what was stored (normally nothing to do)
      }
      const settled = await settle(stored.material, policy, t, opts.keyBits);
      nextCheckAt = settled.nextCheckAt;
      if (settled.actions.length === 0) break;
      await opts.beforeSecretWrite?.('update');
      try {
        stored = await store.update(stored, settled.material);
        log?.info(
          {
            secret: where,
            actions: settled.actions.map(
              (a) => `${a.type}${'signer' in a ? `(${a.signer})` : ''}: ${a.reason}`,
            ),
            serial: serialOf(stored.material.tlsCert),
          },
          'rotated certificates',
        );
      } catch (err) {
        if (!isConflict(err) || attempt >= 4) throw err;
        log?.info({ secret: where }, 'another replica updated the certificate Secret first; adopting it');
        stored = await store.read();
      }
    }

    const material = stored.material;
    const bundle = trustBundle(material);
    if (
      await writeCertDir(opts.certDir, {
        tlsCert: material.tlsCert ?? '',
        tlsKey: material.tlsKey ?? '',
        caBundle: bundle,
      })
    ) {
      log?.info(
        { certDir: opts.certDir, serial: serialOf(material.tlsCert) },
        'wrote the serving certificate to the cert dir',
      );
    }

    let delay = Math.max(0, nextCheckAt - now());
    const result = await ensureCaBundle(opts.client, opts.webhookConfigName, bundle);
    if (result === 'missing') {
      log?.warn(
        { webhookConfiguration: opts.webhookConfigName },
        'MutatingWebhookConfiguration not found; will set its caBundle once it exists',
      );
      delay = Math.min(delay, 1_000);
    } else if (result === 'updated') {
      log?.info(
        { webhookConfiguration: opts.webhookConfigName, cas: bundle.split('BEGIN CERTIFICATE').length - 1 },
        'set the caBundle of the webhook configuration',
      );
    }
    return Math.min(Math.max(delay, 50), pollIntervalMs);
  };

  /** Syncs run one at a time; a call made while one runs starts a fresh one after it. */
  const sync = (): Promise<number> => {
    const next = (running ?? Promise.resolve(0)).catch(() => 0).then(syncOnce);
    running = next;
    void next.then(
      () => {
        if (running === next) running = undefined;
      },
      () => {
        if (running === next) running = undefined;
      },
    );
    return next;
  };

  const schedule = (delayMs: number) => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      sync().then(schedule, (err: unknown) => {
        log?.warn({ err, secret: where }, 'certificate sync failed; retrying');
        schedule(Math.min(pollIntervalMs, 5_000));
      });
    }, delayMs);
    timer.unref();
  };

  // The first sync must succeed: the HTTPS server needs the cert dir. Transient API errors are retried.
  const deadline = now() + 60_000;
  let first: number | undefined;
  for (let attempt = 0; first === undefined; attempt++) {
    const backoff = backoffDelay(attempt, Math.random, CERTIFICATE_SETUP_BACKOFF);
    try {
      first = await sync();
    } catch (err) {
      if (now() + backoff > deadline) {
        throw konductorError(
          'KDR_CERTS_SELF_MANAGED_FAILED',
          `cannot set up self-managed certificates in Secret ${where}: ${(err as Error).message}`,
        ).causedBy(err);
      }
      log?.warn({ err, secret: where }, 'certificate setup failed; retrying');
      await new Promise((r) => setTimeout(r, backoff));
    }
  }
  schedule(first);

  return {
    sync: async () => {
      await sync();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
