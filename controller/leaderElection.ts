/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection: the holder renews
 * every retryPeriod; a candidate takes over when it has not seen the lease's record change for a whole
 * leaseDuration (measured on its own clock, so clock skew between replicas does not matter). Optimistic
 * concurrency on the Lease makes two simultaneous takeovers impossible. On stop the leader releases the
 * lease so a successor takes over at once (graceful handover on SIGTERM).
 */
import { isConflict, isNotFound, type KubeClient } from '../api/kubeClient.ts';

interface CoordinationLease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (err: unknown) => void;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaderElector {
  private readonly opts: LeaderElectionOptions;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;

  constructor(opts: LeaderElectionOptions) {
    this.opts = opts;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.opts.retryPeriodMs ?? 2000);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.opts.onStartedLeading();
        }
      } else if (this.leading && Date.now() - this.lastRenew > (this.opts.renewDeadlineMs ?? 10_000)) {
        this.loseLeadership();
      }
    } catch (err) {
      this.opts.onError?.(err);
      if (this.leading && Date.now() - this.lastRenew > (this.opts.renewDeadlineMs ?? 10_000))
        this.loseLeadership();
    }
    this.schedule();
  }

  private loseLeadership(): void {
    this.leading = false;
    this.opts.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const durationS = Math.ceil((this.opts.leaseDurationMs ?? 15_000) / 1000);
    let lease: CoordinationLease;
    try {
      lease = await this.opts.client.get<CoordinationLease>(this.path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const fresh: CoordinationLease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: durationS,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        await this.opts.client.create(
          `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`,
          fresh,
        );
        return true;
      } catch (e) {
        if (isConflict(e) || (e as { statusCode?: number }).statusCode === 409) return false;
        throw e;
      }
    }
    const record = JSON.stringify([lease.spec.holderIdentity, lease.spec.renewTime]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
    const holder = lease.spec.holderIdentity;
    const held = holder && holder !== this.opts.identity;
    const expired = now - this.observedAt > (lease.spec.leaseDurationSeconds ?? durationS) * 1000;
    if (held && !expired) return false;
    const takingOver = holder !== this.opts.identity;
    lease.spec = {
      ...lease.spec,
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: durationS,
      renewTime: microTime(now),
      acquireTime: takingOver ? microTime(now) : lease.spec.acquireTime,
      leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (takingOver && holder ? 1 : 0),
    };
    try {
      await this.opts.client.replace(this.path, lease);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Stops electing; a leader releases the lease so a successor does not wait out leaseDuration. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.opts.client.get<CoordinationLease>(this.path);
      if (lease.spec.holderIdentity === this.opts.identity) {
        lease.spec.holderIdentity = null;
        lease.spec.leaseDurationSeconds = 1;
        lease.spec.renewTime = microTime(Date.now());
        await this.opts.client.replace(this.path, lease);
      }
    } catch (err) {
      this.opts.onError?.(err);
    }
    this.opts.onStoppedLeading();
  }
}
