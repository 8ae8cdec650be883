/**
 * `kubectl konductor` on the real control plane, run as users run it: the bundled dist/kubectl-konductor.js
 * (built here from the current sources) installed as `kubectl-konductor` on PATH and called through the
 * real kubectl's plugin mechanism. Each subcommand, its table and its JSON (and YAML) output, `-w`, and
 * the whole queue past the 20 the primitive's status lists, in the order the manager grants.
 */

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Lease, Pod, Semaphore } from '../../api/types.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';
import type { HoldersView, QueueView, StatusRow } from '../../plugin/views.ts';
import type { WhyView } from '../../plugin/why.ts';
import { buildPlugin, PLUGIN_BUNDLE } from '../../scripts/build.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, release, untilReleased, waitingInInit } from '../helpers/pods.ts';
import { runProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('plugin');
useKonductor(ns);
const client = ns.client;
const nsPods = namespacePods(ns);
const { uniq, getPod } = nsPods;
const API = `/apis/sync.konductor.io/v1/namespaces/${ns.name}`;
const binDir = join(clusterInfo().dataDir, `plugin-bin-${ns.name}`);

beforeAll(async () => {
  await buildPlugin();
  mkdirSync(binDir, { recursive: true });
  symlinkSync(PLUGIN_BUNDLE, join(binDir, 'kubectl-konductor'));
}, 60_000);

const env = () => ({
  ...process.env,
  KUBECONFIG: clusterInfo().kubeconfigPath,
  PATH: `${binDir}:${process.env.PATH}`,
});

/** `kubectl konductor ARGS -n <test namespace>` through the real kubectl. */
async function plugin(args: string[], allowFailure = false) {
  const res = await runProcess(clusterInfo().kubectlPath, ['konductor', ...args, '-n', ns.name], {
    env: env(),
  });
  if (res.code !== 0 && !allowFailure)
    throw new Error(`kubectl konductor ${args.join(' ')}: exit ${res.code}\n${res.stderr}`);
  return res;
}
const json = async <T>(args: string[]) => JSON.parse((await plugin([...args, '-o', 'json'])).stdout) as T;

async function create(plural: string, name: string, spec: unknown): Promise<void> {
  const kind = { semaphores: 'Semaphore', leases: 'Lease', barriers: 'Barrier', gates: 'Gate' }[plural];
  await client.create(`${API}/${plural}`, {
    apiVersion: 'sync.konductor.io/v1',
    kind,
    metadata: { name },
    spec,
  });
}
const podOn = (name: string, annotations: Record<string, string>, marker: string) =>
  nsPods.createPod(name, { annotations, script: untilReleased(marker) });

describe('the demo: a Job of 6 pods on a Semaphore of 2 permits', () => {
  const marker = uniq('demo');
  afterAll(() => release(marker));
  let waiting: string[] = [];

  beforeAll(async () => {
    const sem = readFileSync(join(REPO_ROOT, 'examples/semaphore.yaml'), 'utf8');
    const job = readFileSync(join(REPO_ROOT, 'examples/semaphore-job.yaml'), 'utf8');
    await kubectl(['apply', '-f', '-'], { namespace: ns.name, input: sem });
    await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: job.replace(/sleep 2; echo done/, untilReleased(marker)),
    });
    await waitFor(
      async () => {
        const s = await client.get<Semaphore>(`${API}/semaphores/batch-slots`);
        return s.status?.inUse === 2 && s.status.waiting === 4;
      },
      { timeoutMs: 60_000, message: '2 holders and 4 waiters on batch-slots' },
    );
    const q = await client.get<Semaphore>(`${API}/semaphores/batch-slots`);
    waiting = (q.status?.queue ?? []).map((e) => e.pod);
  });

  it('status: every primitive with capacity, in use, waiting and the oldest wait (table and JSON)', async () => {
    const table = (await plugin(['status'])).stdout;
    expect(table).toMatch(/^NAME\s+PHASE\s+CAPACITY\s+IN-USE\s+WAITING\s+OLDEST-WAIT\n/);
    expect(table).toMatch(/semaphore\/batch-slots\s+Full\s+2\s+2\s+4\s+\d+s\n/);
    const out = await json<{ namespace: string; primitives: StatusRow[] }>(['status']);
    const row = out.primitives.find((r) => r.name === 'batch-slots');
    expect(out.namespace).toBe(ns.name);
    expect(row).toMatchObject({ kind: 'Semaphore', phase: 'Full', capacity: 2, inUse: 2, waiting: 4 });
    expect(Date.parse(row!.oldestWaitingSince!)).toBeLessThanOrEqual(Date.now());
  });

  it('queue: the waiters in the manager’s order, with why each is not granted', async () => {
    const q = await json<QueueView>(['queue', 'semaphore/batch-slots']);
    expect(q).toMatchObject({ kind: 'Semaphore', name: 'batch-slots', capacity: 2, inUse: 2, waiting: 4 });
    expect(q.entries.map((e) => e.pod)).toEqual(waiting);
    expect(q.entries.map((e) => e.position)).toEqual([1, 2, 3, 4]);
    expect(q.entries[0]!.reason).toMatch(/needs 1 permit, 0 free/);
    expect(q.entries[1]!.reason).toMatch(/behind 1 pod/);
    const table = (await plugin(['queue', 'sem/batch-slots'])).stdout;
    expect(table).toMatch(/POSITION\s+POD\s+PRIORITY\s+PERMITS\s+WAITING\s+WHY NOT GRANTED/);
  });

  it('holders: pods, permits, fencing tokens, granted and expiry, as the status says', async () => {
    const s = await client.get<Semaphore>(`${API}/semaphores/batch-slots`);
    const h = await json<HoldersView>(['holders', 'semaphores.sync.konductor.io/batch-slots']);
    expect(h.holders.map((x) => [x.pod, x.token, x.permits, x.grantedAt])).toEqual(
      (s.status?.holders ?? []).map((x) => [x.pod, x.token, x.permits, x.grantedAt]),
    );
    expect((await plugin(['holders', 'sem/batch-slots'])).stdout).toMatch(
      /POD\s+PERMITS\s+TOKEN\s+GRANTED\s+EXPIRES/,
    );
  });

  it('why: a waiting pod of the demo gets its answer in one screen', async () => {
    const pod = waiting[2]!;
    const text = (await plugin(['why', pod])).stdout;
    const lines = text.trimEnd().split('\n');
    expect(lines.length).toBeLessThanOrEqual(24);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(200);
    expect(text).toContain(
      `pod ${ns.name}/${pod} waits for semaphore ${ns.name}/batch-slots (position 3 of 4)`,
    );
    expect(text).toMatch(
      /To start: the 2 pods ahead of it \(.+\) must be granted first; then 3 permits must be released/,
    );
    const w = await json<WhyView>(['why', pod]);
    expect(w).toMatchObject({ pod, managed: true, waiting: true });
    expect(w.stages).toEqual([
      expect.objectContaining({
        kind: 'Semaphore',
        name: 'batch-slots',
        state: 'waiting',
        position: 3,
        queueLength: 4,
      }),
    ]);
    const y = parseYaml((await plugin(['why', pod, '-o', 'yaml'])).stdout) as WhyView;
    expect(y).toEqual(w);
  });

  it('-w follows: a new document when the queue moves', async () => {
    const child = spawn(
      clusterInfo().kubectlPath,
      ['konductor', 'queue', 'sem/batch-slots', '-w', '-o', 'json', '-n', ns.name],
      {
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    try {
      const docs = () => splitJson(out) as QueueView[];
      await waitFor(() => docs().length >= 1, { message: 'the first document' });
      expect(docs()[0]!.waiting).toBe(4);
      await release(marker); // every pod of the job may finish: the queue drains
      await waitFor(() => docs().some((d) => d.waiting < 4), {
        timeoutMs: 60_000,
        message: 'a document with fewer waiters',
      });
    } finally {
      child.kill('SIGINT');
    }
  });
});

describe('a queue longer than the 20 the status lists', () => {
  const marker = uniq('long');
  afterAll(() => release(marker));
  const names = Array.from({ length: 22 }, (_, i) => `long-${String(i).padStart(2, '0')}`);

  it('comes whole from the pods, in the order the manager grants, the priority pod first', async () => {
    await create('semaphores', 'one', { permits: 1 });
    for (const n of names) await podOn(n, { 'konductor.io/semaphore': 'one' }, marker);
    await podOn('urgent', { 'konductor.io/semaphore': 'one', 'konductor.io/priority': '5' }, marker);
    const s = await waitFor(
      async () => {
        const x = await client.get<Semaphore>(`${API}/semaphores/one`);
        return x.status?.waiting === 22 ? x : undefined;
      },
      { timeoutMs: 90_000, message: '22 waiters on semaphore one' },
    );
    expect(s.status?.queue).toHaveLength(20);
    const q = await json<QueueView>(['queue', 'semaphore/one']);
    expect(q.waiting).toBe(22);
    expect(q.entries).toHaveLength(22);
    expect(q.entries[0]).toMatchObject({ pod: 'urgent', priority: 5, position: 1 });
    // the head the manager wrote is the head the plugin computed
    expect(q.entries.slice(0, 20).map((e) => e.uid)).toEqual(s.status!.queue!.map((e) => e.uid));
    expect(q.entries.at(-1)!.position).toBe(22);
    const w = await json<WhyView>(['why', q.entries[21]!.pod]);
    expect(w.stages[0]).toMatchObject({ state: 'waiting', position: 22, queueLength: 22 });
  });
});

describe('Lease, Barrier and Gate', () => {
  const marker = uniq('kinds');
  afterAll(() => release(marker));

  it('a lease: its holder, and the waiter behind it', async () => {
    await create('leases', 'lock', { ttl: '10m' });
    await podOn('lock-a', { 'konductor.io/lease': 'lock' }, marker);
    await waitFor(async () => mainRunning(await getPod('lock-a')), { message: 'lock-a holds the lease' });
    await podOn('lock-b', { 'konductor.io/lease': 'lock' }, marker);
    await waitFor(async () => waitingInInit(await getPod('lock-b')), { message: 'lock-b waits' });
    const h = await json<HoldersView>(['holders', 'klease/lock']);
    const lease = await client.get<Lease>(`${API}/leases/lock`);
    const token = lease.status?.holder?.token;
    expect(token).toBeGreaterThan(0);
    expect(h.holders).toEqual([expect.objectContaining({ pod: 'lock-a', permits: 1, token })]);
    const q = await waitFor(async () => {
      const v = await json<QueueView>(['queue', 'lease/lock']);
      return v.entries.length === 1 ? v : undefined;
    });
    expect(q.entries[0]).toMatchObject({ pod: 'lock-b', position: 1 });
    expect(q.entries[0]!.reason).toMatch(/held by pod lock-a/);
  });

  it('a barrier: who arrived, and how many more must come', async () => {
    await create('barriers', 'meet', { expected: 3 });
    await podOn('meet-a', { 'konductor.io/barrier': 'meet' }, marker);
    const w = await waitFor(async () => {
      const v = await json<WhyView>(['why', 'meet-a']);
      return v.stages[0]?.detail === '1 of 3 pods arrived' ? v : undefined;
    });
    expect(w.stages[0]).toMatchObject({
      kind: 'Barrier',
      state: 'waiting',
      toStart: '2 more pods must arrive',
    });
    const q = await json<QueueView>(['queue', 'kbar/meet']);
    expect(q.entries).toEqual([expect.objectContaining({ pod: 'meet-a', position: null })]);
    const h = await json<HoldersView>(['holders', 'barrier/meet']);
    expect(h.holders.map((x) => x.pod)).toEqual(['meet-a']);
  });

  it('a gate before a semaphore: why names the unmet condition and what comes after', async () => {
    await create('gates', 'ready', {
      conditions: [{ type: 'Job', name: 'never-created', state: 'Complete' }],
    });
    await create('semaphores', 'after-gate', { permits: 1 });
    await podOn('gated', { 'konductor.io/gate': 'ready', 'konductor.io/semaphore': 'after-gate' }, marker);
    const w = await waitFor(async () => {
      const v = await json<WhyView>(['why', 'gated']);
      return v.stages[0]?.state === 'waiting' && v.stages[0].toStart?.includes('never-created')
        ? v
        : undefined;
    });
    expect(w.stages.map((s) => [s.kind, s.state])).toEqual([
      ['Gate', 'waiting'],
      ['Semaphore', 'not-reached'],
    ]);
    const text = (await plugin(['why', 'gated'])).stdout;
    expect(text).toMatch(/Then: semaphore\/after-gate/);
    const q = await json<QueueView>(['queue', 'sem/after-gate']);
    expect(q.entries).toEqual([
      expect.objectContaining({
        pod: 'gated',
        position: null,
        reason: 'not in the queue: waits for gate ready first',
      }),
    ]);
    expect((await json<HoldersView>(['holders', 'kgate/ready'])).note).toMatch(/holds nothing/);
  });
});

describe('scheduling-gate mode', () => {
  it('why and queue: unscheduled waiters have their place in the one queue', async () => {
    await create('semaphores', 'gated-slots', { permits: 1 });
    const marker = uniq('gated');
    const annotations = {
      'konductor.io/semaphore': 'gated-slots',
      'konductor.io/wait-mode': 'scheduling-gate',
    };
    await nsPods.createPod('gated-holder', { annotations, script: untilReleased(marker) });
    await waitFor(async () => mainRunning(await getPod('gated-holder')), { message: 'gated-holder runs' });
    for (const name of ['gated-1', 'gated-2']) await nsPods.createPod(name, { annotations, script: 'true' });
    await waitFor(async () => (await json<QueueView>(['queue', 'sem/gated-slots'])).entries.length === 2, {
      message: 'two unscheduled waiters',
    });
    const q = await json<QueueView>(['queue', 'sem/gated-slots']);
    expect(q.entries.map((e) => [e.pod, e.position])).toEqual([
      ['gated-1', 1],
      ['gated-2', 2],
    ]);
    const text = (await plugin(['why', 'gated-2'])).stdout;
    expect(text).toContain(
      `pod ${ns.name}/gated-2 waits for semaphore ${ns.name}/gated-slots (position 2 of 2), unscheduled (scheduling gate konductor.io/wait)`,
    );
    expect((await getPod('gated-2')).spec.nodeName).toBeUndefined();
    await release(marker);
    await nsPods.waitForPhase(['gated-1', 'gated-2'], 'Succeeded', { timeoutMs: 60_000 });
  });
});

describe('errors', () => {
  it('a pod without konductor annotations, an unknown primitive, a bad reference, an unknown pod', async () => {
    await client.create(`/api/v1/namespaces/${ns.name}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'plain' },
      spec: { containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'sleep 1'] }] },
    } satisfies Pod);
    const plain = await json<WhyView>(['why', 'plain']);
    expect(plain).toMatchObject({
      managed: false,
      summary: expect.stringMatching(/no konductor.io\/ annotations/),
    });
    const missing = await plugin(['queue', 'sem/nope'], true);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`semaphore ${ns.name}/nope not found`);
    const bad = await plugin(['queue', 'deployment/x'], true);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/expected KIND\/NAME/);
    const noPod = await plugin(['why', 'ghost'], true);
    expect(noPod.stderr).toContain(`pod ${ns.name}/ghost not found`);
  });
});

/** Consecutive pretty-printed JSON documents, as `-o json -w` prints them. */
function splitJson(text: string): unknown[] {
  const docs: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 0) docs.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return docs;
}
