/**
 * Pods without a kubelet, for the benchmarks that measure the controller and not pod start-up
 * (throughput, scale): created directly on the API server in the form the webhook leaves them (the
 * `konductor.io/managed` label, konductor annotations, the injected container names), already bound
 * (spec.nodeName = a Node object without a kubelet), and finished by a "fake kubelet" that patches
 * their status to Succeeded the way the kubelet reports a pod whose containers exited 0.
 */
import jsonpatch from 'fast-json-patch';
import { DEFAULT_AGENT_IMAGE, HOLD_CONTAINER, WAIT_CONTAINER } from '../api/constants.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Pod } from '../api/types.ts';
import { buildInjectionPatch } from '../webhook/injectionPatch.ts';
import { BENCH_NODE, mapConcurrent, type RequestCounter } from './common.ts';

export const BENCH_LABEL = 'konductor.io/bench';

/**
 * A pod exactly as the webhook leaves it (the real injection patch applied: containers, token volume,
 * managed label, annotations), so the devcluster's require-injection admission policy admits it.
 */
export function injectedPod(
  name: string,
  annotations: Record<string, string>,
  tag: string,
): Record<string, unknown> {
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { [BENCH_LABEL]: tag }, annotations },
    spec: {
      nodeName: BENCH_NODE,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
    },
  };
  const patch = buildInjectionPatch(pod, {
    agentImage: DEFAULT_AGENT_IMAGE,
    agentUrl: 'https://127.0.0.1:1',
    caBundle: '',
    version: '0.1.0',
    admittedAt: new Date().toISOString(),
  });
  return jsonpatch.applyPatch(pod, patch, false, true).newDocument as unknown as Record<string, unknown>;
}

/** Creates pods with `concurrency` requests in flight (keep-alive client). */
export async function createPods(
  client: KubeClient,
  namespace: string,
  pods: Record<string, unknown>[],
  concurrency: number,
  counter?: RequestCounter,
): Promise<void> {
  await mapConcurrent(pods, concurrency, async (pod) => {
    await client.create(`/api/v1/namespaces/${namespace}/pods`, pod);
    counter?.add('POST pods');
  });
}

const seconds = (d = new Date()) => d.toISOString().replace(/\.\d+Z$/, 'Z');

/** What the kubelet writes when every container of the pod exited 0. */
export function succeededStatus(): Record<string, unknown> {
  const now = seconds();
  const terminated = (name: string, image: string) => ({
    name,
    image,
    imageID: '',
    ready: false,
    restartCount: 0,
    started: false,
    state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now } },
  });
  return {
    phase: 'Succeeded',
    conditions: [
      { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      { type: 'Initialized', status: 'True', lastTransitionTime: now },
      { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: now },
    ],
    initContainerStatuses: [
      terminated(WAIT_CONTAINER, DEFAULT_AGENT_IMAGE),
      terminated(HOLD_CONTAINER, DEFAULT_AGENT_IMAGE),
    ],
    containerStatuses: [terminated('main', 'busybox')],
  };
}

export async function finishPod(
  client: KubeClient,
  namespace: string,
  name: string,
  counter?: RequestCounter,
): Promise<void> {
  await client.patchMerge(`/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    status: succeededStatus(),
  });
  counter?.add('PATCH pods/status');
}
