/**
 * The webhook across commits, in one session, with one method: each checkout's own
 * bench/webhook-server.ts (its product code, its node_modules) and the floor (bench/webhook-floor-server.ts
 * of this checkout), all alive at once and pinned to core 0, measured round-robin with the same load
 * generator pinned to core 1 (bench/webhook.ts: maxRun, pacedRun). The order rotates every round so that
 * no checkout always runs right after the floor. Used to find whether a change of the webhook figure is a
 * regression of the code or a change of the machine (docs/benchmarks.md, "The webhook discrepancy").
 *
 * Usage: node bench/webhook-bisect.ts [--rounds 4] [--seconds 5] [--paced-rounds 2] [--no-pin] LABEL=CHECKOUT_ROOT ...
 * (e.g. 81b31c3=/tmp/wt-81b31c3 main=/work/main). Prints a table; writes bench/results/webhook-bisect.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_RESULTS_DIR, round } from './common.ts';
import { median } from './floors.ts';
import { machineMeter } from './machine.ts';
import {
  checkOnce,
  FIXTURES,
  FLOOR_SERVER,
  hasTaskset,
  load,
  loadSpec,
  type MaxRun,
  maxRun,
  type PacedRun,
  pacedRun,
  type ServerProcess,
  startServer,
  writeBenchCerts,
} from './webhook.ts';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      rounds: { type: 'string', default: '4' },
      seconds: { type: 'string', default: '5' },
      'paced-rounds': { type: 'string', default: '2' },
      /** Run without taskset (servers and load generator free to use either core), to see what pinning costs. */
      'no-pin': { type: 'boolean', default: false },
      'results-dir': { type: 'string', default: DEFAULT_RESULTS_DIR },
    },
    allowPositionals: true,
  });
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const pacedRounds = Number(values['paced-rounds']);
  const targets = positionals.map((p) => {
    const [label, root] = p.split('=');
    if (!label || !root) throw new Error(`expected LABEL=CHECKOUT_ROOT, got ${p}`);
    return { label, script: join(root, 'bench', 'webhook-server.ts') };
  });
  const pin = hasTaskset() && !values['no-pin'];
  const meter = machineMeter();
  const dir = mkdtempSync(join(tmpdir(), 'konductor-webhook-bisect-'));
  const fixture = FIXTURES['job-pod'];
  const body = readFileSync(fixture, 'utf8');
  const servers: { label: string; server: ServerProcess }[] = [];
  try {
    const caPem = await writeBenchCerts(dir);
    for (const t of targets)
      servers.push({
        label: t.label,
        server: await startServer(t.script, [dir], join(dir, `${t.label}.log`), pin),
      });
    const first = servers[0]?.server;
    if (!first) throw new Error('no checkout given');
    const uid = (JSON.parse(body) as { request: { uid: string } }).request.uid;
    writeFileSync(
      join(dir, 'responses.json'),
      JSON.stringify({ [uid]: await checkOnce(first.port, caPem, body) }),
    );
    servers.push({
      label: 'floor',
      server: await startServer(
        FLOOR_SERVER,
        [dir, join(dir, 'responses.json')],
        join(dir, 'floor.log'),
        pin,
      ),
    });
    for (const s of servers) {
      await checkOnce(s.server.port, caPem, body);
      await load(loadSpec(s.server.port, dir, fixture, 2), pin);
    }
    const max = new Map<string, MaxRun[]>(servers.map((s) => [s.label, []]));
    const paced = new Map<string, PacedRun[]>(servers.map((s) => [s.label, []]));
    const rotated = (i: number) =>
      servers.map((_, k) => servers[(k + i) % servers.length] as (typeof servers)[0]);
    for (let i = 0; i < rounds; i++) {
      for (const s of rotated(i)) {
        const r = await maxRun(s.server, loadSpec(s.server.port, dir, fixture, seconds), pin);
        max.get(s.label)?.push(r);
        process.stdout.write(
          `round ${i + 1} ${s.label}: ${r.reqPerSec} req/s, ${r.serverCpuUsPerRequest} us CPU/request, core share ${r.serverCoreShare}\n`,
        );
      }
    }
    for (let i = 0; i < pacedRounds; i++) {
      for (const s of rotated(i)) {
        const r = await pacedRun(s.server, loadSpec(s.server.port, dir, fixture, seconds, 1000), pin);
        paced.get(s.label)?.push(r);
      }
    }
    const floorMax = max.get('floor') ?? [];
    const rows = servers.map(({ label }) => {
      const runs = max.get(label) ?? [];
      const ratio = (f: (m: MaxRun) => number) =>
        round(median(runs.map((r, i) => f(r) / f(floorMax[i] as MaxRun))), 3);
      const p = paced.get(label) ?? [];
      return {
        label,
        reqPerSec: round(median(runs.map((r) => r.reqPerSec)), 0),
        reqPerSecRatioToFloor: ratio((r) => r.reqPerSec),
        cpuUsPerRequest: round(median(runs.map((r) => r.serverCpuUsPerRequest)), 1),
        cpuRatioToFloor: ratio((r) => r.serverCpuUsPerRequest),
        coreShare: round(median(runs.map((r) => r.serverCoreShare)), 2),
        p99At1000Ms: round(median(p.map((r) => r.latencyMs.p99)), 2),
        p50At1000Ms: round(median(p.map((r) => r.latencyMs.p50)), 2),
        runs,
      };
    });
    const machine = meter.stop();
    process.stdout.write(
      `\n${'checkout'.padEnd(12)} ${'req/s'.padStart(7)} ${'/floor'.padStart(7)} ${'CPU us/req'.padStart(11)} ${'/floor'.padStart(7)} ${'core'.padStart(5)} ${'p50@1k'.padStart(7)} ${'p99@1k'.padStart(7)}\n`,
    );
    for (const r of rows)
      process.stdout.write(
        `${r.label.padEnd(12)} ${String(r.reqPerSec).padStart(7)} ${String(r.reqPerSecRatioToFloor).padStart(7)} ${String(r.cpuUsPerRequest).padStart(11)} ${String(r.cpuRatioToFloor).padStart(7)} ${String(r.coreShare).padStart(5)} ${String(r.p50At1000Ms).padStart(7)} ${String(r.p99At1000Ms).padStart(7)}\n`,
      );
    process.stdout.write(
      `machine: load average ${machine.loadAverageAtStart[0]} -> ${machine.loadAverageAtEnd[0]}, busy ${machine.busyPercent} %, steal ${machine.stealPercent} %\n`,
    );
    const resultsDir = values['results-dir'] ?? DEFAULT_RESULTS_DIR;
    mkdirSync(resultsDir, { recursive: true });
    const out = join(resultsDir, 'webhook-bisect.json');
    writeFileSync(
      out,
      `${JSON.stringify({ benchmark: 'webhook-bisect', startedAt: new Date().toISOString(), rounds, seconds, pacedRounds, pinned: pin, targets, machine, rows }, null, 2)}\n`,
    );
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    for (const s of servers) s.server.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`webhook-bisect: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
