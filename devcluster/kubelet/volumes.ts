/**
 * Pod volumes of the process kubelet (a TEST HARNESS): every volume is a per-pod host directory that
 * the container wrapper bind-mounts at each mountPath (see containerProcess.ts).
 *
 * - emptyDir: an empty directory (medium and sizeLimit are not enforced);
 * - projected: serviceAccountToken (a real token from the TokenRequest API, bound to the pod,
 *   audience/expiry from the spec, refreshed at 80% of its lifetime), configMap, secret, downwardAPI;
 * - configMap, secret, downwardAPI volumes; hostPath (the host directory itself);
 * - anything else (PVCs, CSI, ...) fails the pod's setup with a clear message.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { KonductorError, konductorError } from '../../api/errors.ts';
import { isNotFound, type KubeClient } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import { fieldRefValue, resourceFieldValue } from './env.ts';
import type { DownwardApiFile, KeyToPath, KPod, KVolume } from './podTypes.ts';

export interface VolumeContext {
  client: KubeClient;
  pod: KPod;
  /** Per-pod directory; volumes live under <podDir>/volumes/<name>. */
  podDir: string;
  nodeName: string;
  podIP: string;
  hostIP: string;
  nodeCapacity: Record<string, string>;
  /** Used for the kube-root-ca.crt ConfigMap when the cluster has not published it (yet). */
  clusterCaPem?: string;
  log: (msg: string) => void;
}

interface TokenRequestResponse {
  status: { token: string; expirationTimestamp: string };
}

const MIN_REFRESH_MS = 5_000;

function volumeError(pod: KPod, volume: string, message: string): KonductorError {
  return konductorError(
    'KDR_KUBELET_VOLUME',
    volume,
    `${pod.metadata.namespace}/${pod.metadata.name}`,
    message,
  );
}

/** Rejects absolute paths and `..` (as the API server's validation does). */
function safeJoin(dir: string, rel: string): string {
  const n = normalize(rel);
  if (n.startsWith('/') || n === '..' || n.startsWith('../')) throw new Error(`invalid path ${rel}`);
  return join(dir, n);
}

async function writeAtomic(path: string, content: string | Buffer, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Prepares and maintains the volumes of one pod. */
export class PodVolumes {
  private readonly ctx: VolumeContext;
  private readonly dirs = new Map<string, string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(ctx: VolumeContext) {
    this.ctx = ctx;
  }

  /** Host directory of a volume (after prepare()). */
  hostPath(name: string): string | undefined {
    return this.dirs.get(name);
  }

  /** Creates every volume's content; throws a KonductorError naming the volume on failure. */
  async prepare(): Promise<void> {
    for (const v of (this.ctx.pod.spec.volumes ?? []) as KVolume[]) {
      if (this.dirs.has(v.name)) continue;
      const dir = join(this.ctx.podDir, 'volumes', v.name.replace(/[^A-Za-z0-9._-]/g, '_'));
      try {
        await this.prepareVolume(v, dir);
      } catch (err) {
        if (err instanceof KonductorError) throw err;
        throw volumeError(this.ctx.pod, v.name, (err as Error).message);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async prepareVolume(v: KVolume, dir: string): Promise<void> {
    const pod = this.ctx.pod;
    if (v.hostPath) {
      const hp = v.hostPath as { path: string; type?: string };
      if (hp.type === 'DirectoryOrCreate') await mkdir(hp.path, { recursive: true });
      this.dirs.set(v.name, hp.path);
      return;
    }
    await mkdir(dir, { recursive: true, mode: 0o777 });
    await chmod(dir, 0o777); // emptyDir semantics: writable by any user the container runs as
    const objectFiles = objectFilesOf({
      configMap: v.configMap,
      secret: v.secret && { ...v.secret, name: v.secret.secretName },
    });
    if (v.emptyDir) {
      // nothing to fill
    } else if (objectFiles) {
      await this.writeObjectFiles(dir, objectFiles, mode(v.configMap ?? v.secret ?? {}), v.name);
    } else if (v.downwardAPI) {
      await this.writeDownward(dir, v.downwardAPI.items ?? [], v.downwardAPI.defaultMode ?? 0o644);
    } else if (v.projected) {
      const defaultMode = v.projected.defaultMode ?? 0o644;
      for (const src of v.projected.sources ?? []) {
        const files = objectFilesOf(src);
        if (src.serviceAccountToken) {
          const t = src.serviceAccountToken;
          await this.writeToken(dir, t.path, t.audience, t.expirationSeconds ?? 3600, defaultMode, v.name);
        } else if (files) {
          await this.writeObjectFiles(dir, files, defaultMode, v.name);
        } else if (src.downwardAPI) {
          await this.writeDownward(dir, (src.downwardAPI.items ?? []) as DownwardApiFile[], defaultMode);
        } else {
          throw volumeError(
            pod,
            v.name,
            `projected source ${Object.keys(src).join(',')} is not supported by the process kubelet test harness`,
          );
        }
      }
    } else {
      const kind = Object.keys(v).filter((k) => k !== 'name');
      throw volumeError(
        pod,
        v.name,
        `volume type ${kind.join(',') || '(none)'} is not supported by the process kubelet test harness ` +
          '(supported: emptyDir, projected, configMap, secret, downwardAPI, hostPath)',
      );
    }
    this.dirs.set(v.name, dir);
  }

  private async fetchData(
    plural: 'configmaps' | 'secrets',
    name: string,
  ): Promise<Record<string, Buffer> | undefined> {
    const ns = this.ctx.pod.metadata.namespace ?? 'default';
    try {
      const obj = await this.ctx.client.get<{
        data?: Record<string, string>;
        binaryData?: Record<string, string>;
      }>(resourcePath({ version: 'v1', plural, namespace: ns, name }));
      const out: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries(obj.data ?? {})) {
        out[k] = plural === 'secrets' ? Buffer.from(v, 'base64') : Buffer.from(v, 'utf8');
      }
      for (const [k, v] of Object.entries(obj.binaryData ?? {})) out[k] = Buffer.from(v, 'base64');
      return out;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (plural === 'configmaps' && name === 'kube-root-ca.crt' && this.ctx.clusterCaPem) {
        return { 'ca.crt': Buffer.from(this.ctx.clusterCaPem) };
      }
      return undefined;
    }
  }

  private async writeObjectFiles(
    dir: string,
    { plural, name, items, optional }: ObjectFiles,
    fileMode: number,
    volume: string,
  ): Promise<void> {
    const data = await this.fetchData(plural, name);
    const kind = plural === 'configmaps' ? 'configmap' : 'secret';
    if (!data) {
      if (optional) return;
      throw volumeError(this.ctx.pod, volume, `${kind} "${name}" not found`);
    }
    const entries = items?.length ? items : Object.keys(data).map((key) => ({ key, path: key }) as KeyToPath);
    for (const it of entries) {
      const content = data[it.key];
      if (content === undefined) {
        if (optional) continue;
        throw volumeError(this.ctx.pod, volume, `configmap references non-existent config key: ${it.key}`);
      }
      await writeAtomic(safeJoin(dir, it.path), content, it.mode ?? fileMode);
    }
  }

  private async writeDownward(dir: string, items: DownwardApiFile[], fileMode: number): Promise<void> {
    const c = this.ctx;
    for (const it of items) {
      let value: string | Error;
      if (it.fieldRef) value = fieldRefValue(it.fieldRef.fieldPath, c, true);
      else if (it.resourceFieldRef) {
        const target = [...c.pod.spec.containers, ...(c.pod.spec.initContainers ?? [])].find(
          (x) => x.name === it.resourceFieldRef?.containerName,
        );
        value = resourceFieldValue(it.resourceFieldRef.resource, target, c.nodeCapacity);
      } else value = '';
      if (value instanceof Error) throw value;
      await writeAtomic(safeJoin(dir, it.path), value, it.mode ?? fileMode);
    }
  }

  private async writeToken(
    dir: string,
    path: string,
    audience: string | undefined,
    expirationSeconds: number,
    fileMode: number,
    volume: string,
  ): Promise<void> {
    const { pod, client } = this.ctx;
    const ns = pod.metadata.namespace ?? 'default';
    const sa = pod.spec.serviceAccountName || 'default';
    let res: TokenRequestResponse;
    try {
      res = await client.create<TokenRequestResponse>(
        `${resourcePath({ version: 'v1', plural: 'serviceaccounts', namespace: ns, name: sa })}/token`,
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            ...(audience ? { audiences: [audience] } : {}),
            expirationSeconds,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
          },
        },
      );
    } catch (err) {
      throw volumeError(
        pod,
        volume,
        `TokenRequest for service account ${ns}/${sa} failed: ${(err as Error).message}`,
      );
    }
    await writeAtomic(safeJoin(dir, path), res.status.token, fileMode);
    const lifetime = Date.parse(res.status.expirationTimestamp) - Date.now();
    this.scheduleRefresh(Math.max(MIN_REFRESH_MS, lifetime * 0.8), () =>
      this.writeToken(dir, path, audience, expirationSeconds, fileMode, volume),
    );
  }

  private scheduleRefresh(ms: number, refresh: () => Promise<void>): void {
    if (this.stopped) return;
    // setTimeout cannot wait longer than 2^31-1 ms (extended tokens live a year).
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        if (this.stopped) return;
        refresh().catch((err: Error) => {
          this.ctx.log(`token refresh failed, retrying in 10s: ${err.message}`);
          this.scheduleRefresh(10_000, refresh);
        });
      },
      Math.min(ms, 2 ** 31 - 1),
    );
    t.unref();
    this.timers.add(t);
  }
}

/** A ConfigMap or Secret whose keys a volume (or a projected source) writes as files. */
interface ObjectFiles {
  plural: 'configmaps' | 'secrets';
  name: string;
  items?: KeyToPath[];
  optional?: boolean;
}

interface ObjectFilesSource {
  name: string;
  items?: KeyToPath[];
  optional?: boolean;
}

function objectFilesOf(src: {
  configMap?: ObjectFilesSource;
  secret?: ObjectFilesSource;
}): ObjectFiles | undefined {
  if (src.configMap) return { plural: 'configmaps', ...src.configMap };
  if (src.secret) return { plural: 'secrets', ...src.secret };
  return undefined;
}

function mode(src: object): number {
  return (src as { defaultMode?: number }).defaultMode ?? 0o644;
}
