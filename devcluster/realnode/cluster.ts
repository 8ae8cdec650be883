/**
 * `startRealCluster()`: the devcluster control plane plus a real node on this machine: kube-scheduler,
 * node-lifecycle, kube-apiserver on the node IP (reachable from pods), containerd + runc, the
 * bridge CNI, the upstream kubelet, kube-proxy and CoreDNS. One per machine (machineLock.ts); what
 * a previous run left is swept first (cleanup.ts); `stop()` sweeps again. See devcluster/README.md.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMISSION_PLUGINS } from '../componentFlags.ts';
import { type DevCluster, type StartClusterOptions, startCluster } from '../controlPlane.ts';
import { execOk } from '../exec.ts';
import { type ImageRecord, importImages } from '../images/index.ts';
import { ProcessGroup } from '../processes.ts';
import { logTail } from '../processInfo.ts';
import type { RealNodeBinaries } from './binaries.ts';
import { type SweepReport, sweepRealNode, sweptAnything } from './cleanup.ts';
import { type Containerd, startContainerd } from './containerd.ts';
import { corednsManifests, waitForServiceDns } from './coredns.ts';
import { clusterCa, writeComponentKubeconfig, writeServingCert } from './credentials.ts';
import { cgroupMounts } from './hostCheck.ts';
import { startKubelet, waitNodeReady } from './kubelet.ts';
import { startKubeProxy } from './kubeProxy.ts';
import { CGROUP_ROOT, HOST_DIRS, NODE_IP, NODE_NAME, type StateLayout, stateLayout } from './layout.ts';
import { acquireMachineLock, type MachineLock } from './machineLock.ts';
import { applySysctls, createNodeInterface, writeCniConfig } from './network.ts';
import { BUSYBOX_ALIASES } from './nodeImages.ts';
import { prepareRealNode } from './prepare.ts';
import { newRecord, writeRecord } from './registry.ts';
import { startScheduler } from './scheduler.ts';

export interface RealClusterOptions extends Omit<StartClusterOptions, 'bindAddress'> {
  /** How long to wait for another real node on this machine to stop (default 0: fail at once). */
  lockWaitMs?: number;
  /** More images to import into containerd (e.g. konductor's, cert-manager's). */
  images?: ImageRecord[];
}

export interface RealNode {
  name: string;
  ip: string;
  layout: StateLayout;
  binaries: RealNodeBinaries;
  /** The images in containerd: the node's (pause, busybox, coredns) and those given in the options. */
  images: ImageRecord[];
  /** `ctr -n k8s.io <args>` against this node's containerd. */
  ctr(args: string[]): Promise<string>;
  /** What the start found and removed of a previous run (a crash). */
  previousRun: SweepReport;
  logs: Record<string, string>;
}

export interface RealCluster extends DevCluster {
  node: RealNode;
}

const defaultLog = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

function createCgroupRoot(): void {
  for (const mp of cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    mkdirSync(join(mp, CGROUP_ROOT), { recursive: true });
  }
}

function describeSweep(r: SweepReport): string {
  const parts = [
    r.killed.length && `${r.killed.length} processes`,
    r.unmounted.length && `${r.unmounted.length} mounts`,
    r.links.length && `links ${r.links.join(', ')}`,
    r.chains.length && `${r.chains.length} iptables chains`,
    r.cgroups.length && `${r.cgroups.length} cgroups`,
  ].filter(Boolean);
  return parts.join(', ');
}

export async function startRealCluster(opts: RealClusterOptions = {}): Promise<RealCluster> {
  const log = opts.log ?? defaultLog;
  const started = Date.now();
  const layout = stateLayout();
  const { facts, binaries, images } = await prepareRealNode({ log });

  const lock: MachineLock = await acquireMachineLock({ waitMs: opts.lockWaitMs ?? 0, log });
  let cluster: DevCluster | undefined;
  let group: ProcessGroup | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        await group?.stop(['kube-proxy', 'kubelet', 'containerd'], 10_000);
        await cluster?.stop();
      } finally {
        const r = await sweepRealNode({ layout, log });
        if (r.failed.length) log(`real node cleanup left: ${r.failed.join('; ')}`);
        lock.release();
      }
    })();
    return stopped;
  };
  try {
    const previousRun = await sweepRealNode({ layout, log });
    if (sweptAnything(previousRun)) {
      log(`removed what a previous real node left: ${describeSweep(previousRun)}`);
    }
    const record = newRecord(layout.root);
    record.kubeProxyBin = binaries.kubeProxy;
    const persist = () => writeRecord(layout.registryFile, record);
    record.createdHostDirs = HOST_DIRS.filter((d) => !existsSync(d));
    persist();
    await createNodeInterface();
    await applySysctls(record, persist);
    await writeCniConfig(layout);
    createCgroupRoot();

    cluster = await startCluster({
      ...opts,
      bindAddress: NODE_IP,
      extraApiserverArgs: [
        '--authorization-mode=Node,RBAC',
        `--enable-admission-plugins=${[...ADMISSION_PLUGINS, 'NodeRestriction'].join(',')}`,
        // The `kubernetes` Service gets the node IP as its endpoint: pods reach the API through it.
        '--endpoint-reconciler-type=lease',
        ...(opts.extraApiserverArgs ?? []),
      ],
      extraControllerManagerArgs: [
        // node-lifecycle removes the kubelet's not-ready taint (and evicts from a dead node).
        '--controllers=*,-node-ipam-controller,-persistentvolume-attach-detach-controller',
        ...(opts.extraControllerManagerArgs ?? []),
      ],
    });
    const c = cluster;
    record.clusterDir = c.dataDir;
    persist();
    const logDir = join(c.dataDir, 'logs');
    const logs = {
      containerd: join(logDir, 'containerd.log'),
      kubelet: join(logDir, 'kubelet.log'),
      'kube-proxy': join(logDir, 'kube-proxy.log'),
      'kube-scheduler': join(logDir, 'kube-scheduler.log'),
    };
    Object.assign(c.logs, logs);

    group = new ProcessGroup({
      id: 'realnode',
      dataDir: layout.root,
      keepData: true, // the sweep removes it, after unmounting what is below
      registryDir: layout.pidRegistry,
      handleSignals: opts.handleSignals,
      onUnexpectedExit: (p) =>
        log(`${p.component} (pid ${p.pid}) exited unexpectedly; log ${p.logPath}\n${logTail(p.logPath, 15)}`),
    });
    const ca = await clusterCa(c);
    mkdirSync(layout.pki, { recursive: true, mode: 0o700 });
    const [kubeletKubeconfig, proxyKubeconfig, schedulerKubeconfig, serving] = await Promise.all([
      writeComponentKubeconfig(c, ca, layout.pki, 'kubelet', {
        commonName: `system:node:${NODE_NAME}`,
        organizations: ['system:nodes'],
      }),
      writeComponentKubeconfig(c, ca, layout.pki, 'kube-proxy', { commonName: 'system:kube-proxy' }),
      writeComponentKubeconfig(c, ca, layout.pki, 'kube-scheduler', { commonName: 'system:kube-scheduler' }),
      writeServingCert(ca, layout.pki, 'kubelet-serving', {
        commonName: NODE_NAME,
        dnsNames: [NODE_NAME, 'localhost'],
        ipAddresses: [NODE_IP, '127.0.0.1'],
      }),
    ]);
    await startScheduler({
      group: c.processes,
      bin: binaries.kubeScheduler,
      kubeconfig: schedulerKubeconfig,
      logPath: logs['kube-scheduler'],
    });

    const t0 = Date.now();
    const containerd: Containerd = await startContainerd({
      group,
      layout,
      facts,
      bins: {
        containerd: binaries.containerd,
        ctr: binaries.ctr,
        binDir: binaries.containerdBinDir,
        runc: binaries.runc,
      },
      pauseImage: images.pause.name,
      logPath: logs.containerd,
      timeoutMs: opts.readyTimeoutMs ?? 60_000,
    });
    const allImages = [images.pause, images.busybox, images.coredns, ...(opts.images ?? [])];
    await importImages({
      ctr: binaries.ctr,
      address: layout.containerdSocket,
      archives: allImages,
      log: () => {},
    });
    for (const alias of BUSYBOX_ALIASES) {
      await containerd.ctr(['images', 'tag', '--force', images.busybox.name, alias]);
    }
    log(`containerd up, ${allImages.length} images imported in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const kubelet = await startKubelet({
      group,
      layout,
      facts,
      bin: binaries.kubelet,
      kubeconfig: kubeletKubeconfig,
      caCertPath: c.caCertPath,
      serving,
      logPath: logs.kubelet,
    });
    await startKubeProxy({
      group,
      layout,
      bin: binaries.kubeProxy,
      kubeconfig: proxyKubeconfig,
      logPath: logs['kube-proxy'],
    });
    await waitNodeReady(c.client, kubelet, opts.readyTimeoutMs ?? 60_000);
    log(`node ${NODE_NAME} Ready ${((Date.now() - t0) / 1000).toFixed(1)} s after containerd started`);

    const hasUpstream = /^\s*nameserver\s/m.test(readFileSync(join(layout.config, 'resolv.conf'), 'utf8'));
    const kubectl = ['--kubeconfig', c.kubeconfigPath];
    await execOk(c.binaries.kubectl, [...kubectl, 'apply', '-f', '-'], {
      input: corednsManifests(images.coredns.name, hasUpstream),
    });
    await execOk(c.binaries.kubectl, [
      ...kubectl,
      '-n',
      'kube-system',
      'rollout',
      'status',
      'deployment/coredns',
      `--timeout=${Math.round((opts.readyTimeoutMs ?? 60_000) / 1000)}s`,
    ]);
    await waitForServiceDns(opts.readyTimeoutMs ?? 60_000);
    log(`real node up in ${((Date.now() - started) / 1000).toFixed(1)} s (CoreDNS answers on its Service)`);

    const node: RealNode = {
      name: NODE_NAME,
      ip: NODE_IP,
      layout,
      binaries,
      images: allImages,
      ctr: containerd.ctr,
      previousRun,
      logs,
    };
    return { ...c, node, stop };
  } catch (err) {
    // Keep the cluster directory (its logs are what the error points at); undo the rest.
    await group?.stop(['kube-proxy', 'kubelet', 'containerd'], 5000).catch(() => {});
    await cluster?.processes.stop([], 5000).catch(() => {});
    await sweepRealNode({ layout, log }).catch(() => {});
    lock.release();
    if (cluster) log(`real node failed to start; logs kept in ${join(cluster.dataDir, 'logs')}`);
    throw err;
  }
}
