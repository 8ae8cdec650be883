/**
 * The manifests of a round's workload (pure): the primitives, the Job the Gate waits for, and the pods.
 *
 * Every pod's one main container writes its own clock readings (`date +%s%N`) to a file of its own on a
 * hostPath volume (the campaign's ground truth: `start`, `term` when SIGTERM arrives, `end`), traps SIGTERM
 * and finishes its work anyway (graceful deletion: it keeps running through its grace period, which is
 * longer than any work), then exits with its planned code. The file is named after the pod and its UID, so
 * a pod recreated under the same name writes a file of its own.
 */
import type { PlannedPod, RoundPlan } from './plan.ts';

export const STAMPS_MOUNT = '/campaign-stamps';
/**
 * The image of the workload's shell on the process kubelet: its sh, date and sleep are the host's (GNU date
 * has `%N`). A real node runs the campaign's shell image instead (campaign/shellImage.ts: busybox's `date`
 * has no `%N`).
 */
export const PROCESS_SHELL_IMAGE = 'busybox';
/**
 * GNU `date` by its path, on the host (process kubelet) and in the campaign's shell image: a bare `date` in
 * busybox's `sh` is its applet, without `%N`.
 */
export const STAMP_DATE = '/usr/bin/date';
/** Longer than any planned work (at most 14 s): a graceful deletion never ends in SIGKILL. */
export const GRACE_SECONDS = 30;

const API = 'sync.konductor.io/v1';

/** The main container's script: stamps, trapped SIGTERM, work, exit code (OnFailure: the first run fails). */
export function workScript(pod: PlannedPod): string {
  const seconds = (pod.workMs / 1000).toFixed(3);
  const exit = pod.failFirstRun
    ? `if grep -q '^end' "$F.done" 2>/dev/null; then X=0; else X=1; fi; echo end >> "$F.done"`
    : `X=${pod.exitCode}`;
  return [
    `F=${STAMPS_MOUNT}/$POD_NAME.$POD_UID`,
    `trap 'echo term $(${STAMP_DATE} +%s%N) >> "$F"' TERM`,
    `echo start $(${STAMP_DATE} +%s%N) >> "$F"`,
    `sleep ${seconds} & p=$!`,
    // `wait` returns early when the trapped TERM arrives: keep waiting while the work runs.
    'while :; do wait $p && break; kill -0 $p 2>/dev/null || break; done',
    exit,
    `echo end $(${STAMP_DATE} +%s%N) >> "$F"`,
    'exit $X',
  ].join('\n');
}

export function podManifest(pod: PlannedPod, stampsDir: string, image = PROCESS_SHELL_IMAGE) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.name,
      annotations: pod.annotations,
      labels: { 'campaign.konductor.io/pod': 'true' },
    },
    spec: {
      restartPolicy: pod.restartPolicy,
      terminationGracePeriodSeconds: GRACE_SECONDS,
      volumes: [{ name: 'stamps', hostPath: { path: stampsDir, type: 'DirectoryOrCreate' } }],
      containers: [
        {
          name: 'main',
          image,
          command: ['sh', '-c', workScript(pod)],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
          ],
          volumeMounts: [{ name: 'stamps', mountPath: STAMPS_MOUNT }],
        },
      ],
    },
  };
}

export function semaphoreManifest(name: string, spec: { permits: number; ttl?: string }) {
  return { apiVersion: API, kind: 'Semaphore', metadata: { name }, spec };
}

export function leaseManifest(name: string, spec: { ttl: string }) {
  return { apiVersion: API, kind: 'Lease', metadata: { name }, spec };
}

/** Every primitive of the round and the Job (its container runs `image`), in creation order. */
export function primitiveManifests(plan: RoundPlan, image = PROCESS_SHELL_IMAGE) {
  const p = plan.primitives;
  return {
    semaphores: [semaphoreManifest('slots', p.slots), semaphoreManifest('pool', p.pool)],
    lease: leaseManifest('lock', p.lock),
    barrier: { apiVersion: API, kind: 'Barrier', metadata: { name: 'start' }, spec: p.start },
    gate: {
      apiVersion: API,
      kind: 'Gate',
      metadata: { name: 'ready' },
      spec: {
        timeout: p.ready.timeout,
        conditions: [
          { type: 'Job', name: 'prep', state: 'Complete' },
          { type: 'Semaphore', name: 'pool', state: 'Available', value: 1 },
        ],
      },
    },
    job: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'prep' },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'job',
                image,
                command: ['sh', '-c', `sleep ${(p.prepMs / 1000).toFixed(1)}`],
              },
            ],
          },
        },
      },
    },
  };
}
