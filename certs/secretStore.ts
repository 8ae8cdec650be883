/**
 * The Secret that is the source of truth of self-managed certificates (DESIGN §6): one `kubernetes.io/tls`
 * Secret in the service namespace with `tls.crt`, `tls.key`, `ca.crt`, `ca.key`, plus `previous-ca.crt` and
 * `previous-ca.key` during a CA rollover, and the CA's creation time as an annotation.
 *
 * Concurrency between replicas is the API server's: creation is create-if-absent (POST; on AlreadyExists
 * the winner's Secret is read and adopted), updates carry the resourceVersion read (PUT; a 409 means
 * another replica wrote first: the caller re-reads and plans again).
 */
import { type KonductorError, konductorError } from '../api/errors.ts';
import { isAlreadyExists, isNotFound, type KubeClient } from '../api/kubeClient.ts';
import type { CertMaterial } from './certMaterial.ts';

export const SECRET_KEYS = {
  tlsCert: 'tls.crt',
  tlsKey: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  previousCaCert: 'previous-ca.crt',
  previousCaKey: 'previous-ca.key',
} as const;

export const CA_ROTATED_AT_ANNOTATION = 'konductor.io/ca-rotated-at';

export interface TlsSecret {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

export interface StoredCerts {
  material: CertMaterial;
  resourceVersion: string;
  /** What an update keeps of the stored object (labels and annotations of others, the immutable type). */
  kept?: { type?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);

/** The Secret object for `material` (pure). */
export function secretFromMaterial(
  name: string,
  namespace: string,
  material: CertMaterial,
  resourceVersion?: string,
): TlsSecret {
  const data: Record<string, string> = {};
  for (const [field, key] of Object.entries(SECRET_KEYS) as [keyof typeof SECRET_KEYS, string][]) {
    const value = material[field];
    if (value) data[key] = b64(value);
  }
  const annotations: Record<string, string> = {};
  if (material.caRotatedAt !== undefined)
    annotations[CA_ROTATED_AT_ANNOTATION] = new Date(material.caRotatedAt).toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/name': 'konductor', 'app.kubernetes.io/managed-by': 'konductor' },
      annotations,
    },
    data,
  };
}

/** The material of a Secret (pure); unknown keys are ignored, missing ones left undefined. */
export function materialFromSecret(secret: TlsSecret): CertMaterial {
  const d = secret.data ?? {};
  const m: CertMaterial = {};
  for (const [field, key] of Object.entries(SECRET_KEYS) as [keyof typeof SECRET_KEYS, string][]) {
    const value = unb64(d[key]);
    if (value) m[field] = value;
  }
  const at = Date.parse(secret.metadata.annotations?.[CA_ROTATED_AT_ANNOTATION] ?? '');
  if (Number.isFinite(at)) m.caRotatedAt = at;
  return m;
}

export class CertSecretStore {
  readonly namespace: string;
  readonly name: string;
  private readonly client: KubeClient;

  constructor(client: KubeClient, namespace: string, name: string) {
    this.client = client;
    this.namespace = namespace;
    this.name = name;
  }

  private get collection(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets`;
  }
  private get path(): string {
    return `${this.collection}/${encodeURIComponent(this.name)}`;
  }

  private stored(secret: TlsSecret): StoredCerts {
    return {
      material: materialFromSecret(secret),
      resourceVersion: secret.metadata.resourceVersion ?? '',
      kept: { type: secret.type, labels: secret.metadata.labels, annotations: secret.metadata.annotations },
    };
  }

  private fail(what: string, err: unknown): KonductorError {
    return konductorError(
      'KDR_CERTS_SECRET_FAILED',
      what,
      `${this.namespace}/${this.name}`,
      (err as Error).message,
    ).causedBy(err);
  }

  /** The stored certificates, or undefined when the Secret does not exist. */
  async read(): Promise<StoredCerts | undefined> {
    try {
      return this.stored(await this.client.get<TlsSecret>(this.path));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.fail('read', err);
    }
  }

  /**
   * Creates the Secret with `material` unless it exists; `created` says whose material is stored (ours,
   * or the replica's that created it first).
   */
  async createIfAbsent(material: CertMaterial): Promise<{ stored: StoredCerts; created: boolean }> {
    try {
      const secret = await this.client.create<TlsSecret>(
        this.collection,
        secretFromMaterial(this.name, this.namespace, material),
      );
      return { stored: this.stored(secret), created: true };
    } catch (err) {
      if (!isAlreadyExists(err)) throw this.fail('create', err);
    }
    const winner = await this.read();
    if (!winner) throw this.fail('read', new Error('it was reported to exist, then was not found'));
    return { stored: winner, created: false };
  }

  /**
   * Replaces the Secret's material, preconditioned on `previous.resourceVersion` (the version the decision
   * was made on); other labels and annotations are kept. Throws the API server's 409 (isConflict) when another writer got there first.
   */
  async update(previous: StoredCerts, material: CertMaterial): Promise<StoredCerts> {
    const body = secretFromMaterial(this.name, this.namespace, material, previous.resourceVersion);
    const kept = previous.kept ?? {};
    if (kept.type) body.type = kept.type;
    body.metadata.labels = { ...kept.labels, ...body.metadata.labels };
    body.metadata.annotations = { ...kept.annotations, ...body.metadata.annotations };
    if (material.caRotatedAt === undefined) delete body.metadata.annotations[CA_ROTATED_AT_ANNOTATION];
    const secret = await this.client.replace<TlsSecret>(this.path, body);
    return this.stored(secret);
  }
}
