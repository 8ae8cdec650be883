/**
 * The Gate end to end on the real control plane: a Gate on a Job that the real Job controller completes,
 * on a Semaphore's free permits, a timeout, the CRD's validation of condition types and states, and a
 * manager crash. An independent watcher checks on every status version that an Open gate has every
 * condition met and that Open and Failed are latched.
 */
import { describe, expect, it } from 'vitest';
import type { Gate, GateCondition, Job, Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import {
  mainStarted,
  namespacePods,
  release,
  startStamped,
  untilReleased,
  waitingInInit,
} from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('gate');
const konductor = useKonductor(ns);
const client = ns.client;
const GATES = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/gates`;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { PODS, JOBS, getPod, waitLog, uniq, loggedUs } = nsPods;

const { violations } = recordVersions<Gate>(client, GATES, (g, earlier, violation) => {
  const previous = earlier.at(-1)?.status;
  const s = g.status;
  if (!s) return;
  if (s.phase === 'Open' && s.conditionStatuses.some((c) => !c.met))
    violation('Open with an unmet condition');
  if (s.phase === 'Open' && s.conditionStatuses.length !== g.spec.conditions.length)
    violation('Open without a status for every condition');
  if ((previous?.phase === 'Open' || previous?.phase === 'Failed') && s.phase !== previous.phase)
    violation(`${previous.phase} -> ${s.phase} (not latched)`);
});

async function createGate(name: string, conditions: GateCondition[], timeout?: string): Promise<void> {
  await client.create(GATES, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Gate',
    metadata: { name },
    spec: { conditions, ...(timeout ? { timeout } : {}) },
  });
}

/** A pod whose main container prints its start time (ns) and then runs `body`. */
const createPod = (name: string, annotations: Record<string, string>, body = 'true') =>
  nsPods.createPod(name, { annotations, script: startStamped(body) });

/** A plain (unannotated) Job whose one pod runs `script`. */
const createJob = (name: string, script: string) => nsPods.createJob(name, script, 2);

const getGate = (name: string) => client.get<Gate>(`${GATES}/${name}`);
const jobComplete = async (name: string) =>
  (await client.get<Job>(`${JOBS}/${name}`)).status?.conditions?.some(
    (c) => c.type === 'Complete' && c.status === 'True',
  ) ?? false;

async function conditionMessage(gate: string): Promise<string | undefined> {
  return (await getGate(gate)).status?.conditionStatuses?.[0]?.message;
}

describe('Gate: wait for conditions', () => {
  it('a Gate on Job preprocessing Complete holds the pod until the Job controller completes it', async () => {
    await createGate('after-prep', [{ type: 'Job', name: 'preprocessing', state: 'Complete' }], '10m');
    await createPod('report', { 'konductor.io/gate': 'after-prep' });
    await waitFor(async () => waitingInInit(await getPod('report')), { message: 'report waits' });
    await waitFor(
      async () => (await conditionMessage('after-prep')) === `job ${ns.name}/preprocessing not found`,
      {
        message: 'condition status: the Job is not there yet',
      },
    );
    const marker = uniq('prep');
    await createJob('preprocessing', `${untilReleased(marker)}; echo end $(date +%s%N)`);
    await waitFor(
      async () => /is not Complete yet \(active 1/.test((await conditionMessage('after-prep')) ?? ''),
      {
        message: 'condition status: the Job runs',
      },
    );
    const gate = await getGate('after-prep');
    expect(gate.status?.phase).toBe('Waiting');
    expect(gate.status?.conditionStatuses?.[0]?.met).toBe(false);
    expect(gate.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    expect(mainStarted(await getPod('report'))).toBe(false);
    await waitFor(async () => (await waitLog('report')).includes('not yet: job'), {
      message: 'the wait log says what it waits for',
    });
    const printed = await kubectl(['get', 'kgate', 'after-prep'], { namespace: ns.name });
    expect(printed.stdout).toMatch(/after-prep\s+Waiting\s/);

    await release(marker);
    await waitFor(() => jobComplete('preprocessing'), { message: 'Job preprocessing Complete' });
    await nsPods.waitForPhase('report', 'Succeeded', { message: 'report ran' });
    const open = await getGate('after-prep');
    expect(open.status?.phase).toBe('Open');
    expect(open.status?.conditionStatuses?.[0]).toMatchObject({ met: true });
    const prepPod = (await client.list<Pod>(PODS, { labelSelector: 'job-name=preprocessing' })).items[0]!;
    const prepEnd = await loggedUs(prepPod.metadata.name ?? '', 'job', 'end');
    expect(await loggedUs('report', 'main', 'start')).toBeGreaterThan(prepEnd);
    expect(await waitLog('report')).toMatch(new RegExp(`gate ${ns.name}/after-prep is open`));
    expect(violations).toEqual([]);
  });

  it('a Semaphore-availability condition (state Available, value 2) opens when 2 permits are free', async () => {
    await client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'pool' },
      spec: { permits: 2 },
    });
    const marker = uniq('pool');
    await createPod('pool-holder', { 'konductor.io/semaphore': 'pool' }, untilReleased(marker));
    await waitFor(async () => (await client.get<Semaphore>(`${SEMS}/pool`)).status?.available === 1, {
      message: 'one permit in use',
    });
    await createGate('two-free', [{ type: 'Semaphore', name: 'pool', state: 'Available', value: 2 }]);
    await createPod('big', { 'konductor.io/gate': 'two-free' });
    await waitFor(
      async () =>
        (await conditionMessage('two-free')) === `semaphore ${ns.name}/pool has 1 available, needs 2`,
      {
        message: 'condition status: 1 available, needs 2',
      },
    );
    await waitFor(async () => waitingInInit(await getPod('big')), { message: 'big waits' });
    expect((await getGate('two-free')).status?.phase).toBe('Waiting');
    await release(marker);
    await nsPods.waitForPhase('big', 'Succeeded', { message: 'big ran' });
    const open = await getGate('two-free');
    expect(open.status?.phase).toBe('Open');
    expect(open.status?.conditionStatuses?.[0]?.message).toBe(
      `semaphore ${ns.name}/pool has at least 2 available`,
    );
    expect(violations).toEqual([]);
  });

  it('a timeout fails the gate; the waiting pod ends with a clear message', async () => {
    await createGate('never', [{ type: 'Job', name: 'missing', state: 'Complete' }], '2s');
    await createPod('never-pod', { 'konductor.io/gate': 'never' });
    const failed = await waitFor(
      async () => {
        const g = await getGate('never');
        return g.status?.phase === 'Failed' ? g : undefined;
      },
      { timeoutMs: 15_000, message: 'gate Failed' },
    );
    expect(Date.parse(failed.status?.failedAt ?? '')).toBeGreaterThanOrEqual(
      Date.parse(failed.metadata.creationTimestamp ?? '') + 2000,
    );
    const pod = await waitFor(
      async () => {
        const p = await getPod('never-pod');
        return p.status?.phase === 'Failed' ? p : undefined;
      },
      { message: 'the pod Failed' },
    );
    const wait = pod.status?.initContainerStatuses?.find((s) => s.name === 'konductor-wait');
    expect(wait?.state?.terminated?.exitCode).not.toBe(0);
    expect(mainStarted(pod)).toBe(false);
    const log = await waitLog('never-pod');
    expect(log).toContain(`gate ${ns.name}/never failed: timed out (2s)`);
    expect(log).toContain(`job ${ns.name}/missing not found`);
    expect(violations).toEqual([]);
  });

  it('the CRD rejects an unknown condition type or state with a readable message', async () => {
    const gateYaml = (type: string, state: string) => `apiVersion: sync.konductor.io/v1
kind: Gate
metadata:
  name: invalid
spec:
  conditions:
  - type: ${type}
    name: x
    state: ${state}
`;
    const badType = await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: gateYaml('Deployment', 'Complete'),
      allowFailure: true,
    });
    expect(badType.code).not.toBe(0);
    expect(badType.stderr).toMatch(/spec\.conditions\[0\]\.type: Unsupported value: "Deployment"/);
    expect(badType.stderr).toMatch(/"Job", "Semaphore", "Barrier", "Lease", "Gate"/);
    const badState = await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: gateYaml('Job', 'Running'),
      allowFailure: true,
    });
    expect(badState.code).not.toBe(0);
    expect(badState.stderr).toMatch(
      /spec\.conditions\[0\]\.state: .*state of a Job condition must be one of: Complete, Failed/,
    );
    const badLeaseState = await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: gateYaml('Lease', 'Open'),
      allowFailure: true,
    });
    expect(badLeaseState.stderr).toMatch(/state of a Lease condition must be one of: Available, Held/);
    const none = await kubectl(['get', 'kgate', 'invalid', '--ignore-not-found'], { namespace: ns.name });
    expect(none.stdout.trim()).toBe('');
  });
});

describe('Gate: the manager is killed while a pod waits at it', () => {
  it('the Job completes while the manager is down; after a restart the gate opens and the pod runs', async () => {
    await createGate('crash', [{ type: 'Job', name: 'crash-prep', state: 'Complete' }]);
    const marker = uniq('crash');
    await createJob('crash-prep', untilReleased(marker));
    await createPod('crash-pod', { 'konductor.io/gate': 'crash' });
    await waitFor(async () => waitingInInit(await getPod('crash-pod')), { message: 'crash-pod waits' });
    await waitFor(async () => /not Complete yet/.test((await conditionMessage('crash')) ?? ''), {
      message: 'the gate waits for the Job',
    });
    await konductor.install.stopManager('SIGKILL');
    await release(marker);
    await waitFor(() => jobComplete('crash-prep'), {
      message: 'the Job completed while the manager was down',
    });
    expect((await getGate('crash')).status?.phase).toBe('Waiting');
    expect(mainStarted(await getPod('crash-pod'))).toBe(false);
    await konductor.install.startManager();
    await nsPods.waitForPhase('crash-pod', 'Succeeded', {
      timeoutMs: 30_000,
      message: 'crash-pod ran after the restart',
    });
    expect((await getGate('crash')).status?.phase).toBe('Open');
    expect(violations).toEqual([]);
  });
});
