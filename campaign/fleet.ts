/**
 * The managers of the campaign, in two topologies:
 * - `single` (the chart's default: one replica, no leader election): the devcluster install's manager,
 *   supervised by the install (restarted with backoff when it dies);
 * - `ha` (two replicas with leader election): two managers started here from the install's command line
 *   with `--leader-elect`, the first on the install's ports (the webhook configuration and the agents' URL
 *   point there), the second on ports of its own; both supervised here the same way.
 * A fault can add an extra manager WITHOUT leader election, pause one (SIGSTOP), kill one, or stop all.
 */

import type { KubeClient } from '../api/kubeClient.ts';
import type { KonductorInstall } from '../devcluster/konductor.ts';
import { restartDelayMs } from '../devcluster/konductor.ts';
import { getFreePorts } from '../devcluster/ports.ts';
import type { ManagedProcess, ProcessGroup } from '../devcluster/processes.ts';
import type { Topology } from './plan.ts';

export const LEADER_LEASE = '/apis/coordination.k8s.io/v1/namespaces/default/leases/konductor-leader';

export interface Manager {
  name: string;
  healthUrl: string;
  metricsUrl: string;
  /** The live process (undefined while it is down). */
  process(): ManagedProcess | undefined;
}

interface Variant extends Manager {
  args: string[];
  logPath: string;
  proc?: ManagedProcess;
  /** Stopped on purpose: not restarted. */
  held: boolean;
  restarts: number;
}

export interface FleetOptions {
  processes: ProcessGroup;
  client: KubeClient;
  primary: KonductorInstall;
  /** The environment the install gave its manager (the memory limit). */
  env: Record<string, string>;
  logDir: string;
  log: (line: string) => void;
}

/** Replaces `--flag=...` entries and appends the new ones. */
export function withFlags(args: readonly string[], flags: Record<string, string | true>): string[] {
  const names = Object.keys(flags);
  const kept = args.filter((a) => !names.some((n) => a === `--${n}` || a.startsWith(`--${n}=`)));
  return [...kept, ...names.map((n) => (flags[n] === true ? `--${n}` : `--${n}=${flags[n]}`))];
}

const flagValue = (args: readonly string[], flag: string) =>
  args.findLast((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);

export class ManagerFleet {
  topology: Topology = 'single';
  private readonly opts: FleetOptions;
  private readonly baseArgs: string[];
  private variants: Variant[] = [];
  private extras: Variant[] = [];
  private stopping = false;
  private counter = 0;

  constructor(opts: FleetOptions) {
    this.opts = opts;
    const proc = opts.primary.manager();
    if (!proc) throw new Error('the install has no manager process');
    this.baseArgs = [...proc.args];
  }

  private get primaryManager(): Manager {
    const p = this.opts.primary;
    return {
      name: 'primary',
      healthUrl: p.healthUrl,
      metricsUrl: p.metricsUrl,
      process: () => live(p.manager()),
    };
  }

  /** The managers of the topology and the extra ones (down ones included). */
  all(): Manager[] {
    return [...(this.topology === 'single' ? [this.primaryManager] : this.variants), ...this.extras];
  }

  /** The managers of the topology (not the extra ones). */
  members(): Manager[] {
    return this.topology === 'single' ? [this.primaryManager] : [...this.variants];
  }

  async setTopology(topology: Topology): Promise<void> {
    if (topology === this.topology) return;
    if (topology === 'ha') {
      await this.opts.primary.stopManager('SIGTERM');
      const ports = await getFreePorts(4);
      const primaryPorts = {
        'webhook-port': flagValue(this.baseArgs, 'webhook-port') ?? '',
        'agent-port': flagValue(this.baseArgs, 'agent-port') ?? '',
        'health-probe-bind-address': flagValue(this.baseArgs, 'health-probe-bind-address') ?? '',
        'metrics-bind-address': flagValue(this.baseArgs, 'metrics-bind-address') ?? '',
      };
      const otherPorts = {
        'webhook-port': String(ports[0]),
        'agent-port': String(ports[1]),
        'health-probe-bind-address': `127.0.0.1:${ports[2]}`,
        'metrics-bind-address': `127.0.0.1:${ports[3]}`,
      };
      this.topology = 'ha';
      this.variants = [this.variant('ha-a', primaryPorts, true), this.variant('ha-b', otherPorts, true)];
      await Promise.all(this.variants.map((v) => this.startVariant(v)));
    } else {
      const old = this.variants;
      this.variants = [];
      await Promise.all(old.map((v) => this.stopVariant(v, 'SIGTERM')));
      this.topology = 'single';
      await this.opts.primary.startManager();
    }
  }

  private variant(name: string, ports: Record<string, string>, leaderElect: boolean): Variant {
    const args = withFlags(this.baseArgs, { ...ports, ...(leaderElect ? { 'leader-elect': true } : {}) });
    const metrics = ports['metrics-bind-address'] ?? '';
    const health = ports['health-probe-bind-address'] ?? '';
    const v: Variant = {
      name: `${name}-${++this.counter}`,
      args,
      logPath: `${this.opts.logDir}/konductor-${name}-${this.counter}.log`,
      healthUrl: `http://${health}`,
      metricsUrl: `http://${metrics}/metrics`,
      held: false,
      restarts: 0,
      process: () => live(v.proc),
    };
    return v;
  }

  private async spawn(v: Variant): Promise<void> {
    const proc = await this.opts.processes.spawn(`konductor-${v.name}`, process.execPath, v.args, v.logPath, {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_OPTIONS: '',
      ...this.opts.env,
    });
    v.proc = proc;
    const startedAt = Date.now();
    void proc.exited.then((info) => {
      if (proc.expectedExit || v.held || this.stopping || v.proc !== proc) return;
      if (Date.now() - startedAt >= 60_000) v.restarts = 0;
      const delay = restartDelayMs(v.restarts++);
      this.opts.log(
        `manager ${v.name} (pid ${proc.pid}) exited (${info.signal ?? info.code}); restarting in ${delay} ms`,
      );
      setTimeout(() => {
        if (v.held || this.stopping || v.proc !== proc) return;
        void this.spawn(v).catch((err: Error) =>
          this.opts.log(`restart of ${v.name} failed: ${err.message}`),
        );
      }, delay).unref();
    });
  }

  private async startVariant(v: Variant): Promise<void> {
    v.held = false;
    await this.spawn(v);
    await waitHealthy(v, 60_000);
  }

  private async stopVariant(v: Variant, signal: NodeJS.Signals): Promise<void> {
    v.held = true;
    const proc = v.proc;
    if (!proc || proc.exitInfo) return;
    proc.expectedExit = true;
    proc.child.kill('SIGCONT');
    proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    await proc.exited;
    clearTimeout(timer);
  }

  /** The leader's pid (ha), else the primary's. */
  async leader(): Promise<Manager | undefined> {
    if (this.topology === 'single') return this.primaryManager;
    const lease = await this.opts.client
      .get<{ spec?: { holderIdentity?: string | null } }>(LEADER_LEASE)
      .catch(() => undefined);
    const pid = Number(lease?.spec?.holderIdentity?.split('_').pop());
    return this.variants.find((v) => v.process()?.pid === pid);
  }

  /** The leader, waiting up to `timeoutMs` for one (after a leader's crash the lease expires first: 15 s). */
  async leaderSoon(timeoutMs = 20_000): Promise<Manager | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.leader();
      if (m?.process() || Date.now() > deadline) return m;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** A crash: the supervisor restarts it. */
  crash(m: Manager): number | undefined {
    const proc = m.process();
    if (!proc) return undefined;
    proc.child.kill('SIGKILL');
    return proc.pid;
  }

  pause(m: Manager): number | undefined {
    const proc = m.process();
    proc?.child.kill('SIGSTOP');
    return proc?.pid;
  }

  resume(pid: number): void {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }

  /** Stops every manager of the topology on purpose (nothing restarts them until startAll). */
  async stopAll(signal: NodeJS.Signals): Promise<void> {
    if (this.topology === 'single') await this.opts.primary.stopManager(signal);
    else await Promise.all(this.variants.map((v) => this.stopVariant(v, signal)));
  }

  async startAll(): Promise<void> {
    if (this.topology === 'single') {
      if (!live(this.opts.primary.manager())) await this.opts.primary.startManager();
    } else {
      await Promise.all(this.variants.filter((v) => !v.process()).map((v) => this.startVariant(v)));
    }
  }

  /** A manager without leader election next to the others (fresh ports); stop it with stopExtra. */
  async startExtra(): Promise<Manager> {
    const ports = await getFreePorts(4);
    const v = this.variant(
      'extra',
      {
        'webhook-port': String(ports[0]),
        'agent-port': String(ports[1]),
        'health-probe-bind-address': `127.0.0.1:${ports[2]}`,
        'metrics-bind-address': `127.0.0.1:${ports[3]}`,
      },
      false,
    );
    v.args = v.args.filter((a) => a !== '--leader-elect');
    this.extras.push(v);
    await this.startVariant(v);
    return v;
  }

  async stopExtra(m: Manager, signal: NodeJS.Signals): Promise<void> {
    const v = this.extras.find((x) => x === m);
    if (!v) return;
    this.extras = this.extras.filter((x) => x !== v);
    await this.stopVariant(v, signal);
  }

  /** Every process resumed, the topology's managers running and ready, extra ones gone. */
  async heal(): Promise<void> {
    for (const m of [...this.all()]) {
      const pid = m.process()?.pid;
      if (pid) this.resume(pid);
    }
    for (const e of [...this.extras]) await this.stopExtra(e, 'SIGTERM');
    await this.startAll();
    await Promise.all(this.members().map((m) => waitHealthy(m, 90_000)));
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const e of [...this.extras]) await this.stopExtra(e, 'SIGTERM');
    if (this.topology === 'ha') await this.setTopology('single').catch(() => undefined);
  }
}

function live(proc: ManagedProcess | undefined): ManagedProcess | undefined {
  return proc && !proc.exitInfo ? proc : undefined;
}

/** Waits until the manager's /readyz answers 200 (it may be restarting meanwhile). */
export async function waitHealthy(m: Manager, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${m.healthUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && m.process()) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`manager ${m.name} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
