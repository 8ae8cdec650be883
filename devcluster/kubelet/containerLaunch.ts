/**
 * Starting one attempt of a container in the process kubelet (a TEST HARNESS): its environment (with the
 * ConfigMaps and Secrets it references), its image, its volume mounts, then the process. Each failure
 * leaves the waiting state the kubelet would show (CreateContainerConfigError, ErrImageNeverPull, ...).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isNotFound, type KubeClient } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import { ContainerLogWriter } from './containerLog.ts';
import {
  type BindMount,
  type ContainerProcess,
  type ProcessTools,
  spawnContainer,
} from './containerProcess.ts';
import type { Slot } from './containerSlot.ts';
import { envReferences, expandCommand, resolveEnv } from './env.ts';
import { type ImageHandler, resolveImage } from './imageTable.ts';
import { terminatedState } from './podStatus.ts';
import type { KContainer, KPod } from './podTypes.ts';

export interface ContainerLaunchDeps {
  client: KubeClient;
  nodeName: string;
  hostIP: string;
  podIP: string;
  /** Per-pod directory (volumes, logs). */
  podDir: string;
  images: readonly ImageHandler[];
  tools: ProcessTools;
  baseEnv: Record<string, string>;
  serviceEnv: Record<string, string>;
  nodeCapacity: Record<string, string>;
}

/** What the launch needs of its pod's runner. */
export interface LaunchContext {
  pod: KPod;
  deps: ContainerLaunchDeps;
  /** The host directory of a pod volume, or undefined if the pod has no such volume. */
  volumePath: (name: string) => string | undefined;
  stopping: () => boolean;
  /** The slot's state changed (the status writer coalesces). */
  changed: () => void;
}

/** Started; worth retrying after a back-off; or never startable (the runner waits for deletion). */
export type LaunchResult =
  | { kind: 'started'; proc: ContainerProcess }
  | { kind: 'retry' }
  | { kind: 'blocked' };

export const nowIso = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** The ConfigMaps and Secrets (decoded) the container's env refers to; a missing one maps to undefined. */
async function fetchEnvSources(ctx: LaunchContext, c: KContainer) {
  const refs = envReferences(c);
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  const get = async (plural: 'configmaps' | 'secrets', name: string) => {
    try {
      const o = await ctx.deps.client.get<{ data?: Record<string, string> }>(
        resourcePath({ version: 'v1', plural, namespace, name }),
      );
      const data = o.data ?? {};
      if (plural === 'secrets') {
        for (const k of Object.keys(data)) data[k] = Buffer.from(data[k] ?? '', 'base64').toString('utf8');
      }
      return [name, data] as const;
    } catch (err) {
      if (isNotFound(err)) return [name, undefined] as const;
      throw err;
    }
  };
  const [cms, secrets] = await Promise.all([
    Promise.all(refs.configMaps.map((n) => get('configmaps', n))),
    Promise.all(refs.secrets.map((n) => get('secrets', n))),
  ]);
  return { configMaps: new Map(cms), secrets: new Map(secrets) };
}

function waiting(ctx: LaunchContext, slot: Slot, reason: string, message: string): void {
  slot.rt.state = { kind: 'waiting', reason, message };
  ctx.changed();
}

/** The container's environment, or undefined (its waiting state set) when it cannot be resolved yet. */
async function containerEnv(ctx: LaunchContext, slot: Slot): Promise<Record<string, string> | undefined> {
  const { pod, deps } = ctx;
  try {
    const sources = await fetchEnvSources(ctx, slot.spec);
    const r = resolveEnv(
      slot.spec,
      {
        pod,
        nodeName: deps.nodeName,
        podIP: deps.podIP,
        hostIP: deps.hostIP,
        baseEnv: { ...deps.baseEnv, HOSTNAME: pod.spec.hostname ?? pod.metadata.name ?? '' },
        serviceEnv: deps.serviceEnv,
        nodeCapacity: deps.nodeCapacity,
      },
      sources,
    );
    if (r.ok) return r.env;
    waiting(ctx, slot, r.reason, r.message);
  } catch (err) {
    waiting(ctx, slot, 'CreateContainerConfigError', (err as Error).message);
  }
  return undefined;
}

/** Starts one attempt of `slot`'s container; its state follows the process until it exits. */
export async function launchContainer(ctx: LaunchContext, slot: Slot): Promise<LaunchResult> {
  const c = slot.spec;
  const env = await containerEnv(ctx, slot);
  if (!env) return { kind: 'retry' };
  if (ctx.stopping()) return { kind: 'blocked' };
  // Image
  const image = resolveImage(ctx.deps.images, c.image ?? '', expandCommand(c, env));
  if (!image.ok) {
    waiting(ctx, slot, image.reason, image.message);
    return image.reason === 'ErrImageNeverPull' ? { kind: 'blocked' } : { kind: 'retry' };
  }
  slot.rt.imageID = image.imageID;
  // Mounts
  const mounts: BindMount[] = [];
  for (const m of c.volumeMounts ?? []) {
    const dir = ctx.volumePath(m.name);
    if (!dir) {
      waiting(ctx, slot, 'CreateContainerConfigError', `volume "${m.name}" not found in the pod's volumes`);
      return { kind: 'blocked' };
    }
    const source = m.subPath ? join(dir, m.subPath) : dir;
    if (m.subPath) mkdirSync(source, { recursive: true });
    mounts.push({ source, target: m.mountPath, readOnly: m.readOnly === true });
  }
  // Process
  const log = new ContainerLogWriter(join(ctx.deps.podDir, 'logs', `${c.name}-${slot.logs.length}.log`));
  slot.logs.push(log);
  const startedAt = nowIso();
  let proc: ContainerProcess;
  try {
    proc = await spawnContainer(ctx.deps.tools, {
      argv: image.argv,
      env,
      workingDir: c.workingDir ?? '/',
      mounts,
      log,
    });
  } catch (err) {
    log.close();
    slot.rt.state = {
      kind: 'terminated',
      exitCode: 128,
      reason: 'StartError',
      message: `process kubelet could not start ${image.argv[0]}: ${(err as Error).message}`,
      startedAt,
      finishedAt: nowIso(),
    };
    ctx.changed();
    return { kind: 'retry' };
  }
  slot.proc = proc;
  slot.rt.containerID = `process://${proc.pid}`;
  slot.rt.state = { kind: 'running', startedAt };
  ctx.changed();
  void proc.exited.then((exit) => {
    slot.rt.state = terminatedState(exit, startedAt, nowIso());
    ctx.changed();
  });
  if (ctx.stopping()) proc.signal('SIGKILL');
  return { kind: 'started', proc };
}
