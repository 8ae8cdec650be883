/**
 * The bad-input phase of the campaign (badInput.ts generates the requests): a running manager (one
 * replica, as the chart's default) with a few pods of its own takes N AdmissionReviews and N agent API
 * requests at once, while a well-formed AdmissionReview is sent every 50 ms and timed, and the manager's
 * memory is sampled. Then: no crash, every answer clear, memory back to baseline.
 */
import { request as httpsRequest } from 'node:https';
import { isAlreadyExists } from '../api/kubeClient.ts';
import type { Pod } from '../api/types.ts';
import { mapConcurrent, procSample, type Summary, summarize } from '../bench/common.ts';
import { mintPodToken } from '../test/helpers/agentApi.ts';
import {
  type AgentTokens,
  admissionCases,
  agentCases,
  baseReview,
  type FloodCase,
  httpsAgent,
  type Sent,
  send,
} from './badInput.ts';
import type { CampaignEnv } from './environment.ts';
import { retryApi } from './faults.ts';
import { createRng, seedOf } from './random.ts';

export interface Tally {
  sent: number;
  byStatus: Record<string, number>;
  byCategory: Record<string, number>;
  problems: number;
  /** The first problems, for the report. */
  examples: string[];
}

export interface FloodResult {
  admission: Tally;
  agent: Tally;
  /** Slow bodies: the longest a slow request held its connection before the server cut it. */
  slowBodies: { sent: number; cutWithinMs: number; problems: number };
  /** Wait streams of one pod: opened, still open once settled (the cap is 2). */
  streams: { opened: number; stillOpen: number };
  /** Latency of well-formed reviews: alone, during the whole flood, during the agent API's and admission's part. */
  wellFormed: {
    baseline: Summary;
    duringFlood: Summary;
    duringAgentFlood: Summary;
    duringAdmissionFlood: Summary;
    failures: number;
  };
  /** idle: before any flood; baseline: after the warm-up tenth; after: once settled (up to 2 min). */
  rss: { idleMiB: number; baselineMiB: number; peakMiB: number; afterMiB: number; backToBaseline: boolean };
  crashes: number;
  durationMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tally(results: readonly Sent[]): Tally {
  const t: Tally = { sent: results.length, byStatus: {}, byCategory: {}, problems: 0, examples: [] };
  for (const r of results) {
    const status = r.reset ? 'reset (body over the limit)' : String(r.status);
    t.byStatus[status] = (t.byStatus[status] ?? 0) + 1;
    t.byCategory[r.category] = (t.byCategory[r.category] ?? 0) + 1;
    if (r.problem) {
      t.problems++;
      if (t.examples.length < 10) t.examples.push(`${r.category}: ${r.problem}`);
    }
  }
  return t;
}

/** Opens a /v1/wait stream; resolves when the server ends it. */
function openStream(url: string, ca: string, token: string, onOpen: () => void): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      `${url}/v1/wait`,
      {
        method: 'POST',
        ca,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        onOpen();
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end('{}');
  });
}

export interface FloodOptions {
  seed: string;
  admission: number;
  agent: number;
  log: (line: string) => void;
}

export async function runFlood(env: CampaignEnv, opts: FloodOptions): Promise<FloodResult> {
  const started = Date.now();
  const { log, seed } = opts;
  const { client, install } = env;
  await env.fleet.setTopology('single');
  await env.fleet.heal();
  const manager = install.manager();
  if (!manager) throw new Error('no manager to flood');
  const restartsBefore = install.restarts();
  const ns = `campaign-flood-${(seedOf(seed, Date.now()) % 0xffffff).toString(16)}`;
  await retryApi(() =>
    client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
  );
  const PODS = `/api/v1/namespaces/${ns}/pods`;
  await client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name: 'flood' },
    spec: { permits: 1 },
  });
  const pod = (name: string, annotations: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: env.node.shellImage, command: ['sleep', '3600'] }],
    },
  });
  for (const [name, ann] of [
    ['holder', { 'konductor.io/semaphore': 'flood' }],
    ['waiter', { 'konductor.io/semaphore': 'flood' }],
    ['foreign', {}],
  ] as const)
    await client.create(PODS, pod(name, ann)).catch((err) => {
      if (!isAlreadyExists(err)) throw err;
    });
  const deadline = Date.now() + 60_000;
  let pods: Record<string, Pod> = {};
  for (;;) {
    pods = Object.fromEntries((await client.list<Pod>(PODS)).items.map((p) => [p.metadata.name ?? '', p]));
    const running = (n: string) => pods[n]?.status?.containerStatuses?.some((c) => c.state?.running);
    const waiting = pods.waiter?.status?.initContainerStatuses?.some(
      (c) => c.name === 'konductor-wait' && c.state?.running,
    );
    if (running('holder') && running('foreign') && waiting) break;
    if (Date.now() > deadline) throw new Error('the flood namespace pods did not start');
    await sleep(200);
  }
  const token = (name: string, audience: boolean) =>
    mintPodToken(
      client,
      ns,
      { name, uid: pods[name]?.metadata.uid },
      audience ? ['konductor'] : undefined,
      3600,
    );
  const tokens: AgentTokens = {
    ordinary: await token('foreign', false),
    foreign: await token('foreign', true),
  };
  const waiterToken = await token('waiter', true);

  const admissionUrl = install.admissionUrl;
  const agentUrl = install.url;
  const ca = install.caPem;
  const probeBody = (i: number) => {
    const r = baseReview(ns);
    r.request.uid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    return Buffer.from(JSON.stringify(r));
  };
  let probeFailures = 0;
  const probe = async (i: number, agent: ReturnType<typeof httpsAgent>) => {
    const body = probeBody(i);
    const uid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const r = await send(admissionUrl, ca, agent, {
      category: 'well-formed',
      method: 'POST',
      path: '/mutate',
      headers: { 'content-type': 'application/json' },
      body,
      judge: (status, text) =>
        status === 200 && text.includes(uid) && text.includes('"allowed":true')
          ? undefined
          : `${status} ${text.slice(0, 100)}`,
    });
    if (r.problem) probeFailures++;
    return r.ms;
  };

  const rssNow = () => procSample(manager.pid).vmRssMiB;
  const idleMiB = rssNow();
  const rng = createRng(seedOf(seed, 'flood'));
  const slowCount = Math.min(40, Math.floor(opts.agent * 0.005));
  const streamCount = Math.min(40, Math.floor(opts.agent * 0.005));
  // A tenth of the requests first, as a warm-up: the first TLS load takes the process from its idle size to
  // its working size (V8's heap and the allocator keep what they grew), and a leak shows against that, not
  // against the idle size.
  const warmAdmission = Math.max(1, Math.floor(opts.admission / 10));
  const warmAgent = Math.max(1, Math.floor(opts.agent / 10));
  const admission = admissionCases(rng.fork('admission'), opts.admission, ns);
  const agent = agentCases(
    rng.fork('agent'),
    opts.agent - slowCount - streamCount,
    tokens,
    Math.floor(Date.now() / 1000),
  );
  const admissionAgent = httpsAgent(16);
  const agentAgent = httpsAgent(16);
  const warm = await Promise.all([
    mapConcurrent(admission.slice(0, warmAdmission), 16, (c) => send(admissionUrl, ca, admissionAgent, c)),
    mapConcurrent(agent.slice(0, warmAgent), 16, (c) => send(agentUrl, ca, agentAgent, c)),
  ]);
  await sleep(5000);

  // Baseline: memory and the latency of well-formed reviews with nothing else going on.
  const probeAgent = httpsAgent(4);
  const baselineRss: number[] = [];
  const baselineLatency: number[] = [];
  for (let i = 0; i < 100; i++) {
    baselineLatency.push(await probe(i, probeAgent));
    if (i % 10 === 0) baselineRss.push(rssNow());
    await sleep(50);
  }
  const baselineMiB = Math.max(...baselineRss);
  log(
    `flood: ${admission.length} AdmissionReviews, ${agent.length + slowCount + streamCount} agent API requests (${slowCount} slow bodies, ${streamCount} wait streams of one pod); a tenth sent first as a warm-up (RSS ${idleMiB} MiB idle, ${baselineMiB} MiB after it)`,
  );

  let peakMiB = baselineMiB;
  const sampler = setInterval(() => {
    try {
      peakMiB = Math.max(peakMiB, rssNow());
    } catch {
      /* gone: counted as a crash below */
    }
  }, 250);
  /** Times a well-formed review every 50 ms while `work` runs. */
  let probeIndex = 1000;
  const timedDuring = async <T>(work: Promise<T>): Promise<[T, number[]]> => {
    let running = true;
    const latencies: number[] = [];
    const probes = (async () => {
      while (running) {
        latencies.push(await probe(probeIndex++, probeAgent));
        await sleep(50);
      }
    })();
    const result = await work.finally(() => {
      running = false;
    });
    await probes;
    return [result, latencies];
  };
  const slowCase = (): FloodCase => ({
    category: 'slow-body',
    method: 'POST',
    path: '/v1/release',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.foreign}` },
    body: Buffer.from(`{"reason":"${'s'.repeat(58)}"}`),
    slow: { chunks: 60, everyMs: 1000 },
    judge: (status, body) =>
      status === 408 || (status >= 400 && status < 500)
        ? undefined
        : `slow body got ${status} ${body.slice(0, 80)}`,
  });
  let stillOpen = 0;
  let opened = 0;
  // The agent API's flood (its own port), then admission's: how much each costs well-formed admission.
  const [[agentSent, slowSent], duringAgent] = await timedDuring(
    Promise.all([
      mapConcurrent(agent.slice(warmAgent), 16, (c) => send(agentUrl, ca, agentAgent, c)),
      Promise.all(Array.from({ length: slowCount }, () => send(agentUrl, ca, undefined, slowCase(), 90_000))),
      (async () => {
        let open = 0;
        const ended = Array.from({ length: streamCount }, () =>
          openStream(agentUrl, ca, waiterToken, () => {
            open++;
            opened++;
          }).then(() => {
            open--;
          }),
        );
        await sleep(3000);
        stillOpen = open;
        // The agent of `waiter` keeps its own stream; ours end when the namespace goes.
        void Promise.all(ended);
      })(),
    ]),
  );
  const [admissionSent, duringAdmission] = await timedDuring(
    mapConcurrent(admission.slice(warmAdmission), 16, (c) => send(admissionUrl, ca, admissionAgent, c)),
  );
  const during = [...duringAgent, ...duringAdmission];
  clearInterval(sampler);
  for (const a of [probeAgent, admissionAgent, agentAgent]) a.destroy();

  // Memory back: V8 returns memory lazily; wait up to two minutes.
  let afterMiB = Number.NaN;
  const settleDeadline = Date.now() + 120_000;
  const settled = (mib: number) => mib <= Math.max(baselineMiB + 16, baselineMiB * 1.2);
  for (;;) {
    try {
      afterMiB = rssNow();
    } catch {
      break;
    }
    if (settled(afterMiB) || Date.now() > settleDeadline) break;
    await sleep(1000);
  }
  const crashes =
    (manager.exitInfo ? 1 : 0) +
    (install.manager() !== manager ? 1 : 0) +
    (install.restarts() - restartsBefore);
  void client.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);
  const slowProblems = slowSent.filter((s) => s.problem).length;
  return {
    admission: tally([...warm[0], ...admissionSent]),
    agent: tally([...warm[1], ...agentSent, ...slowSent]),
    slowBodies: {
      sent: slowSent.length,
      cutWithinMs: Math.round(Math.max(0, ...slowSent.map((s) => s.ms))),
      problems: slowProblems,
    },
    streams: { opened, stillOpen },
    wellFormed: {
      baseline: summarize(baselineLatency),
      duringFlood: summarize(during),
      duringAgentFlood: summarize(duringAgent),
      duringAdmissionFlood: summarize(duringAdmission),
      failures: probeFailures,
    },
    rss: { idleMiB, baselineMiB, peakMiB, afterMiB, backToBaseline: settled(afterMiB) },
    crashes: Math.max(0, crashes),
    durationMs: Date.now() - started,
  };
}
