/**
 * The node's network on the host: a port-less bridge holding the node IP, used like a dummy interface
 * (these kernels have no `dummy` driver; a bridge is built in). The API server, kubelet and
 * kube-proxy bind there; pods reach it through the pod bridge's gateway; nothing is exposed on eth0;
 * the sysctls bridged pod traffic needs (previous values recorded for cleanup), the bridge CNI
 * configuration (host-local IPAM with its own data dir; the bridge itself is created by the plugin
 * on the first pod) and the resolv.conf the kubelet hands to pods with dnsPolicy Default.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { exec, execOk } from '../exec.ts';
import {
  BRIDGE,
  CNI_NETWORK,
  DUMMY_INTERFACE,
  NODE_IP,
  POD_CIDR,
  type StateLayout,
  SYSCTLS,
} from './layout.ts';
import type { RealNodeRecord } from './registry.ts';

/** Creates the node-IP interface (fails if the address is already used elsewhere). */
export async function createNodeInterface(): Promise<void> {
  const addrs = await exec('ip', ['-o', 'addr', 'show']);
  const holder = addrs.stdout
    .split('\n')
    .find((l) => l.includes(` ${NODE_IP}/`) && !l.includes(` ${DUMMY_INTERFACE} `));
  if (holder) {
    throw konductorError(
      'KDR_REALNODE_ADDRESS_IN_USE',
      `the real node's address ${NODE_IP} is already on another interface: ${holder.trim()}`,
    );
  }
  if ((await exec('ip', ['link', 'show', 'dev', DUMMY_INTERFACE])).code !== 0) {
    await execOk('ip', ['link', 'add', DUMMY_INTERFACE, 'type', 'bridge']);
  }
  await exec('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', DUMMY_INTERFACE]); // exists on a re-run: fine
  await execOk('ip', ['link', 'set', DUMMY_INTERFACE, 'up']);
}

/** Sets SYSCTLS, recording each previous value in `record` first (the caller persists it). */
export async function applySysctls(record: RealNodeRecord, persist: () => void): Promise<void> {
  for (const [key, value] of Object.entries(SYSCTLS)) {
    const path = join('/proc/sys', key);
    const before = readFileSync(path, 'utf8').trim();
    if (before === value) continue;
    record.sysctls[key] ??= before;
    persist();
    await writeFile(path, value);
  }
}

export function cniConfig(ipamDir: string): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: CNI_NETWORK,
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: ipamDir,
          },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

export async function writeCniConfig(layout: StateLayout): Promise<void> {
  await mkdir(layout.cniConfDir, { recursive: true });
  await mkdir(layout.cniIpamDir, { recursive: true });
  await writeFile(join(layout.cniConfDir, '10-konductor.conflist'), cniConfig(layout.cniIpamDir));
}

/**
 * The host's resolv.conf without loopback name servers (a pod's 127.0.0.x is the pod itself):
 * CoreDNS forwards non-cluster names there; empty when the host has nothing usable.
 */
export function podResolvConf(hostResolvConf: string): string {
  return hostResolvConf
    .split('\n')
    .filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l))
    .filter((l) => /^\s*(nameserver|search|options)\s/.test(l))
    .join('\n')
    .concat('\n');
}
