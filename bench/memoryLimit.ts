/**
 * The chart's default memory limit (128Mi) under load: how large a cluster it holds, and what happens past
 * that (issue 15, item 9).
 *
 * Method: a fresh devcluster; the manager runs as the image runs it — the bundle dist/konductor.js, the
 * image's node flags (`--max-semi-space-size=2`, no heap size: the manager derives it) — inside a memory
 * cgroup limited to 128 MiB (cgroup v1 memory.limit_in_bytes or v2 memory.max; needs root), so the kernel
 * enforces the limit and the manager reads it from the cgroup as in a container. No kubelet, webhook off:
 * pods are created directly in their injected form (10 per primitive; 80% Semaphores of 5 permits, 20%
 * Leases), in steps; after each step, once every grantable permit is granted and status writes have
 * stopped, the manager's memory is read (cgroup usage and peak, VmRSS, RssAnon). At the 10,000-pod step,
 * /v1/wait streams are opened for waiting pods (a TokenRequest per pod, audience konductor) up to the
 * connection cap the manager derived and 64 beyond: the accepted streams and the memory with them open are
 * recorded. Steps go on until the last, or until the manager dies (OOM kill or heap exhaustion: no
 * supervisor here, so a death ends the run): the last step it held is the figure.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { Semaphore } from '../api/types.ts';
import { buildManager, MANAGER_BUNDLE } from '../scripts/build.ts';
import { type BenchCluster, startBenchCluster } from './cluster.ts';
import {
  BENCH_NODE,
  type BenchOptions,
  byMode,
  describeEnvironment,
  ensureBenchNode,
  environment,
  type Figure,
  managerMetrics,
  mapConcurrent,
  printFigures,
  procSample,
  round,
  sleep,
  sumMetric,
  waitUntil,
  writeResult,
} from './common.ts';
import { createPods, injectedPod } from './fakePods.ts';
import { flooredFigure, idleNodeSample } from './floors.ts';

const LIMIT_MIB = 128;
/** Dockerfile.webhook's ENTRYPOINT flags. */
const MANAGER_IMAGE_NODE_ARGS = ['--max-semi-space-size=2'];
const PODS_PER_PRIMITIVE = 10;
const SEMAPHORE_PERMITS = 5;
const CONCURRENCY = 32;
const MiB = 1024 * 1024;

interface MemoryCgroup {
  dir: string;
  version: 1 | 2;
  /** The command prefix that moves a process into the cgroup before it execs the rest. */
  prefix: string[];
  usageMiB(): number;
  peakMiB(): number | undefined;
  oomKills(): number;
  remove(): void;
}

const readNumber = (path: string) => Number(readFileSync(path, 'utf8').trim().split('\n')[0]);

/** A fresh memory cgroup limited to `limitBytes`, or the reason there is none. */
function createMemoryCgroup(limitBytes: number): MemoryCgroup | string {
  const name = `konductor-bench-${randomBytes(3).toString('hex')}`;
  const v2 =
    existsSync('/sys/fs/cgroup/cgroup.controllers') &&
    readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').includes('memory');
  const dir = v2 ? join('/sys/fs/cgroup', name) : join('/sys/fs/cgroup/memory', name);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limitBytes));
  } catch (err) {
    return `cannot create a memory cgroup at ${dir} (${(err as Error).message}): run as root on a host with cgroups`;
  }
  const events = (key: string) => {
    const file = join(dir, v2 ? 'memory.events' : 'memory.oom_control');
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(file, 'utf8'));
    return Number(m?.[1] ?? 0);
  };
  return {
    dir,
    version: v2 ? 2 : 1,
    prefix: ['/bin/sh', '-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec "$@"`, 'sh'],
    usageMiB: () => round(readNumber(join(dir, v2 ? 'memory.current' : 'memory.usage_in_bytes')) / MiB, 1),
    peakMiB: () => {
      const file = join(dir, v2 ? 'memory.peak' : 'memory.max_usage_in_bytes');
      return existsSync(file) ? round(readNumber(file) / MiB, 1) : undefined;
    },
    oomKills: () => events('oom_kill'),
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        /* a process is still in it: left for the OS */
      }
    },
  };
}

interface StepSample {
  pods: number;
  primitives: number;
  held: boolean;
  settledSeconds?: number;
  cgroupUsageMiB?: number;
  cgroupPeakMiB?: number;
  vmRssMiB?: number;
  rssAnonMiB?: number;
  death?: string;
}

/** The manager's "memory budget" log line (heap limit, agent connection cap). */
function budgetLine(bc: BenchCluster): {
  heapLimitMiB: number;
  maxAgentConnections: number;
  memoryLimitMiB: number;
} {
  const line = readFileSync(bc.managerLog(), 'utf8')
    .split('\n')
    .findLast((l) => l.includes('"msg":"memory budget"'));
  if (!line) throw new Error(`no "memory budget" line in ${bc.managerLog()}`);
  return JSON.parse(line);
}

function deathOf(bc: BenchCluster, cg: MemoryCgroup | undefined): string | undefined {
  const exit = bc.konductor.manager()?.exitInfo;
  if (!exit) return undefined;
  const oom = cg?.oomKills() ?? 0;
  return `exited (code ${exit.code}, signal ${exit.signal})${oom > 0 ? `; the kernel OOM-killed it (${oom})` : ''}`;
}

/** Opens a /v1/wait stream; resolves 'open' on its first event, 'refused' when it ends without one. */
function openStream(
  url: string,
  ca: string,
  token: string,
  streams: { close(): void }[],
): Promise<'open' | 'refused'> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      `${url}/v1/wait`,
      {
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      },
      (res) => {
        res.once('data', () => resolve(res.statusCode === 200 ? 'open' : 'refused'));
        res.once('end', () => resolve('refused'));
      },
    );
    req.on('error', () => resolve('refused'));
    req.setTimeout(30_000, () => {
      req.destroy();
      resolve('refused');
    });
    req.end('{}');
    streams.push({ close: () => req.destroy() });
  });
}

export async function runMemoryLimit(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const log = opts.log;
  const steps = byMode(opts.mode, {
    full: [5_000, 10_000, 12_500, 15_000, 17_500, 20_000, 25_000, 30_000],
    quick: [1_000, 2_000],
    tiny: [100],
  });
  const streamsAt = byMode(opts.mode, { full: 10_000, quick: 2_000, tiny: 100 });
  const bundle = await buildManager();
  if (!bundle) throw new Error('cmd/konductor.ts is missing');
  const cg = createMemoryCgroup(LIMIT_MIB * MiB);
  const enforced = typeof cg !== 'string';
  if (!enforced) log(`    ${cg}; the limit is then only announced (KONDUCTOR_MEMORY_LIMIT), not enforced`);
  const bc = await startBenchCluster({
    name: 'memlimit',
    webhook: false,
    supervise: false,
    managerProcess: {
      entry: MANAGER_BUNDLE,
      nodeArgs: MANAGER_IMAGE_NODE_ARGS,
      ...(enforced
        ? { commandPrefix: cg.prefix }
        : { env: { KONDUCTOR_MEMORY_LIMIT: String(LIMIT_MIB * MiB) } }),
    },
    log,
  });
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const tag = `memlimit-${randomBytes(2).toString('hex')}`;
  const samples: StepSample[] = [];
  let figures: Figure[] = [];
  let streams: Record<string, unknown> = {};
  let managerLog: Record<string, unknown> = {};
  const budget = budgetLine(bc);
  log(
    `    manager in ${enforced ? `cgroup v${cg.version} ${cg.dir}` : 'no cgroup'}: memory limit ${budget.memoryLimitMiB} MiB -> ` +
      `V8 heap limit ${budget.heapLimitMiB} MiB, agent connection cap ${budget.maxAgentConnections}`,
  );
  try {
    await ensureBenchNode(client, BENCH_NODE);
    let primitives = 0;
    let pods = 0;
    let expectedGrants = 0;
    for (const target of steps) {
      const wantPrimitives = Math.ceil(target / PODS_PER_PRIMITIVE);
      const fresh = Array.from({ length: wantPrimitives - primitives }, (_, k) => {
        const i = primitives + k;
        const semaphore = i % 5 !== 4; // 80% Semaphores, 20% Leases
        return {
          kind: semaphore ? 'semaphores' : 'leases',
          name: `${semaphore ? 'sem' : 'lease'}-${String(i).padStart(5, '0')}`,
        };
      });
      const t0 = Date.now();
      const sample: StepSample = { pods: target, primitives: wantPrimitives, held: false };
      try {
        await mapConcurrent(fresh, CONCURRENCY, (p) =>
          client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/${p.kind}`, {
            apiVersion: 'sync.konductor.io/v1',
            kind: p.kind === 'semaphores' ? 'Semaphore' : 'Lease',
            metadata: { name: p.name },
            spec: p.kind === 'semaphores' ? { permits: SEMAPHORE_PERMITS } : { ttl: '1h' },
          }),
        );
        const newPods = fresh.flatMap((p) =>
          Array.from({ length: PODS_PER_PRIMITIVE }, (_, j) =>
            injectedPod(
              `${p.name}-${j}`,
              { [p.kind === 'semaphores' ? 'konductor.io/semaphore' : 'konductor.io/lease']: p.name },
              tag,
            ),
          ),
        );
        await mapConcurrent(newPods, CONCURRENCY, (pod) => createPods(client, ns, [pod], 1));
        primitives = wantPrimitives;
        pods = primitives * PODS_PER_PRIMITIVE;
        expectedGrants += fresh.reduce((n, p) => n + (p.kind === 'semaphores' ? SEMAPHORE_PERMITS : 1), 0);
        // Settled: every grantable permit granted and the status writes stopped (or the manager died).
        await waitUntil(
          `${expectedGrants} grants`,
          async () => {
            const died = deathOf(bc, enforced ? cg : undefined);
            if (died) throw new Error(died);
            const m = await managerMetrics(bc.konductor.metricsUrl).catch(() => undefined);
            return m !== undefined && sumMetric(m, 'konductor_grants_total') >= expectedGrants;
          },
          900_000,
          500,
        );
        let writes = -1;
        for (;;) {
          const w = sumMetric(await managerMetrics(bc.konductor.metricsUrl), 'konductor_status_writes_total');
          if (w === writes) break;
          writes = w;
          await sleep(1000);
        }
        const proc = procSample(bc.managerPid());
        Object.assign(sample, {
          held: true,
          settledSeconds: round((Date.now() - t0) / 1000, 1),
          vmRssMiB: proc.vmRssMiB,
          rssAnonMiB: proc.rssAnonMiB,
          ...(enforced ? { cgroupUsageMiB: cg.usageMiB(), cgroupPeakMiB: cg.peakMiB() } : {}),
        });
        log(
          `    ${pods} pods, ${primitives} primitives: held; RSS ${proc.vmRssMiB} MiB (anon ${proc.rssAnonMiB} MiB)` +
            (enforced ? `, cgroup ${sample.cgroupUsageMiB} MiB (peak ${sample.cgroupPeakMiB} MiB)` : ''),
        );
      } catch (err) {
        sample.death = deathOf(bc, enforced ? cg : undefined) ?? (err as Error).message;
        samples.push(sample);
        log(`    ${target} pods: NOT held: ${sample.death}`);
        break;
      }
      samples.push(sample);

      if (target === streamsAt)
        streams = await measureStreams(bc, budget.maxAgentConnections, enforced ? cg : undefined, log);
    }
    managerLog = managerLogSummary(bc);
  } finally {
    await bc.stop();
    if (enforced) cg.remove();
  }
  const held = samples.filter((s) => s.held);
  const largest = held.at(-1);
  const at10k = held.find((s) => s.pods === streamsAt);
  // The floor of a memory figure: an idle node with the image's flags, measured now (same run).
  const idleFloor = await idleNodeSample(MANAGER_IMAGE_NODE_ARGS);
  const idleFloorName = `idle node ${MANAGER_IMAGE_NODE_ARGS.join(' ')}: VmRSS (same run)`;
  const capacity =
    'a capacity under a fixed 128 MiB limit: counts what fits, not how fast (the limit itself is its bound)';
  const derived =
    "derived by the manager from the limit (a configuration, not a measurement of the machine's speed)";
  const memoryAt10k = at10k?.cgroupUsageMiB ?? at10k?.vmRssMiB ?? Number.NaN;
  const streamsMemory = Number(streams.memoryMiB ?? Number.NaN);
  figures = [
    {
      name: `largest cluster held under ${LIMIT_MIB} MiB: managed pods`,
      value: largest?.pods ?? 0,
      unit: 'pods',
      noFloor: capacity,
    },
    { name: '... and primitives', value: largest?.primitives ?? 0, unit: 'primitives', noFloor: capacity },
    { name: 'V8 heap limit the manager derived', value: budget.heapLimitMiB, unit: 'MiB', noFloor: derived },
    {
      name: 'agent connection cap the manager derived',
      value: budget.maxAgentConnections,
      unit: 'connections',
      noFloor: derived,
    },
    flooredFigure({
      name: `memory at ${streamsAt} pods (cgroup usage, or VmRSS without a cgroup)`,
      value: memoryAt10k,
      unit: 'MiB',
      floor: idleFloor.vmRssMiB,
      floorName: idleFloorName,
      target: `<= ${LIMIT_MIB} MiB`,
      meetsTarget: (Number.isFinite(memoryAt10k) ? memoryAt10k : Number.POSITIVE_INFINITY) <= LIMIT_MIB,
    }),
    {
      name: `wait streams accepted at ${streamsAt} pods (cap + 64 tried)`,
      value: Number(streams.accepted ?? Number.NaN),
      unit: 'streams',
      noFloor: "a count (the cap at work), independent of the machine's speed",
    },
    flooredFigure({
      name: 'memory with those streams open (cgroup usage, or VmRSS)',
      value: streamsMemory,
      unit: 'MiB',
      floor: idleFloor.vmRssMiB,
      floorName: idleFloorName,
      target: `<= ${LIMIT_MIB} MiB`,
      meetsTarget: (Number.isFinite(streamsMemory) ? streamsMemory : Number.POSITIVE_INFINITY) <= LIMIT_MIB,
    }),
  ];
  const method =
    `manager = the bundle dist/konductor.js with the image's node flags, in a memory cgroup of ${LIMIT_MIB} MiB ` +
    `(${enforced ? `cgroup v${cg.version}, kernel-enforced` : 'not enforced: no cgroup, limit announced by KONDUCTOR_MEMORY_LIMIT'}), ` +
    'its heap and connection cap derived by itself; fresh devcluster, no kubelet, webhook off; pods created in injected form ' +
    `in steps (${steps.join(', ')}), ${PODS_PER_PRIMITIVE} per primitive (80% Semaphores of ${SEMAPHORE_PERMITS}, 20% Leases); ` +
    'after each step: every grantable permit granted and status writes stopped, then memory (cgroup usage/peak, VmRSS, RssAnon); ' +
    `at ${streamsAt} pods: /v1/wait streams for waiting pods (TokenRequest per pod, audience konductor), cap + 64 tried; ` +
    'the run ends at the last step or when the manager dies (no supervisor).';
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'memory-limit',
    mode: opts.mode,
    environment: env,
    method,
    parameters: { limitMiB: LIMIT_MIB, steps, streamsAt, podsPerPrimitive: PODS_PER_PRIMITIVE, enforced },
    figures,
    details: { budget, steps: samples, streams, managerLog },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}

/** What the manager logged about memory: its heap-pressure warnings and how it ended. */
function managerLogSummary(bc: BenchCluster): Record<string, unknown> {
  const lines = readFileSync(bc.managerLog(), 'utf8').split('\n');
  return {
    memoryPressureWarnings: lines.filter((l) => l.includes('memory pressure')).length,
    fatal: lines.filter((l) => /FATAL ERROR|heap out of memory/.test(l)).slice(0, 3),
  };
}

/** Opens wait streams for waiting pods, cap + 64 of them, and reads the memory with them open. */
async function measureStreams(
  bc: BenchCluster,
  cap: number,
  cg: MemoryCgroup | undefined,
  log: (l: string) => void,
): Promise<Record<string, unknown>> {
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const sems = (await client.list<Semaphore>(`/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`)).items;
  const holders = new Set(sems.flatMap((s) => (s.status?.holders ?? []).map((h) => h.pod)));
  const pods = (
    await client.list<{ metadata: { name: string; uid: string } }>(`/api/v1/namespaces/${ns}/pods`)
  ).items
    .filter((p) => !holders.has(p.metadata.name) && p.metadata.name.startsWith('sem-'))
    .slice(0, cap + 64);
  const tokens = await mapConcurrent(pods, 16, async (p) => {
    const tr = await client.create<{ status: { token: string } }>(
      `/api/v1/namespaces/${ns}/serviceaccounts/default/token`,
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: ['konductor'],
          expirationSeconds: 3600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: p.metadata.name, uid: p.metadata.uid },
        },
      },
    );
    return tr.status.token;
  });
  const open: { close(): void }[] = [];
  const before = cg?.usageMiB() ?? procSample(bc.managerPid()).vmRssMiB;
  const results = await mapConcurrent(tokens, 32, (t) =>
    openStream(bc.konductor.url, bc.konductor.caPem, t, open),
  );
  await sleep(2000);
  const alive = !bc.konductor.manager()?.exitInfo;
  const proc = alive ? procSample(bc.managerPid()) : undefined;
  const memoryMiB = cg?.usageMiB() ?? proc?.vmRssMiB;
  const accepted = results.filter((r) => r === 'open').length;
  for (const s of open) s.close();
  log(
    `    ${tokens.length} wait streams tried: ${accepted} accepted (cap ${cap}); memory ${before} -> ${memoryMiB} MiB` +
      `${proc ? ` (RSS anon ${proc.rssAnonMiB} MiB)` : ''}; manager ${alive ? 'alive' : 'DEAD'}`,
  );
  return {
    tried: tokens.length,
    accepted,
    refused: results.length - accepted,
    memoryBeforeMiB: before,
    memoryMiB,
    rssAnonMiB: proc?.rssAnonMiB,
    alive,
  };
}
