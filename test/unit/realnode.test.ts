/** The real node's PURE parts: host facts, iptables cleanup, mounts, flags, generated configs. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergeFlags } from '../../devcluster/componentFlags.ts';
import { mountsUnder } from '../../devcluster/realnode/cleanup.ts';
import { containerdConfig } from '../../devcluster/realnode/containerd.ts';
import { corefile } from '../../devcluster/realnode/coredns.ts';
import {
  assertHostUsable,
  cgroupLayout,
  cgroupMounts,
  type HostFacts,
  hasCapability,
  hostLimitNotes,
} from '../../devcluster/realnode/hostCheck.ts';
import { stripNodeRules } from '../../devcluster/realnode/iptables.ts';
import { kubeletConfig } from '../../devcluster/realnode/kubelet.ts';
import { stateLayout } from '../../devcluster/realnode/layout.ts';
import { podResolvConf } from '../../devcluster/realnode/network.ts';
import { missingPackages } from '../../devcluster/realnode/packages.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'realnode');

const mountLine = (id: number, mp: string, fs: string) =>
  `${id} 1 0:${id} / ${mp} rw,relatime shared:${id} - ${fs} ${fs} rw`;

describe('host facts', () => {
  it('reads CAP_SYS_RESOURCE (bit 24) from CapEff', () => {
    expect(hasCapability('CapEff:\t000001fffeffffff\n', 24n)).toBe(false); // this VM
    expect(hasCapability('CapEff:\t000001ffffffffff\n', 24n)).toBe(true);
    expect(hasCapability('CapPrm:\t000001ffffffffff\n', 24n)).toBe(false);
  });

  it('tells v1, hybrid and v2 cgroup layouts apart', () => {
    const v1 = [
      mountLine(30, '/sys/fs/cgroup/cpu', 'cgroup'),
      mountLine(31, '/sys/fs/cgroup/memory', 'cgroup'),
    ];
    expect(cgroupLayout(v1.join('\n'))).toBe('v1');
    expect(cgroupLayout([...v1, mountLine(32, '/sys/fs/cgroup/unified', 'cgroup2')].join('\n'))).toBe(
      'hybrid',
    );
    expect(cgroupLayout(mountLine(33, '/sys/fs/cgroup', 'cgroup2'))).toBe('v2');
    expect(cgroupLayout(mountLine(34, '/proc', 'proc'))).toBe('unknown');
    expect(cgroupMounts(v1.join('\n'))).toEqual(['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/memory']);
  });

  it('explains the limits it works around and refuses what it cannot', () => {
    const facts: HostFacts = {
      uid: 0,
      cgroup: 'hybrid',
      capSysResource: false,
      brNetfilter: true,
      overlayfs: true,
      kernel: '6.18',
    };
    const notes = hostLimitNotes(facts).join('\n');
    expect(notes).toMatch(/cgroup v1.*failCgroupV1: false/);
    expect(notes).toMatch(/CAP_SYS_RESOURCE.*restrict_oom_score_adj/);
    expect(hostLimitNotes({ ...facts, cgroup: 'v2', capSysResource: true })).toEqual([]);
    expect(() => assertHostUsable(facts)).not.toThrow();
    expect(() => assertHostUsable({ ...facts, uid: 1000, overlayfs: false })).toThrow(
      /must run as root[\s\S]*overlay/,
    );
  });

  it('names the Debian packages whose files are missing', () => {
    const have = new Set(['runc', 'ip', 'conntrack']);
    const missing = missingPackages(undefined, (f) => have.has(f)).map((p) => p.name);
    expect(missing).toEqual(['containernetworking-plugins', 'iptables']);
  });
});

describe('iptables cleanup', () => {
  const save = readFileSync(join(FIXTURES, 'iptables-save.txt'), 'utf8');

  it('removes every KUBE-* chain, our CNI chains and every rule in or jumping to them', () => {
    const r = stripNodeRules(save);
    expect(r.text).not.toMatch(/KUBE-/);
    expect(r.text).not.toMatch(/konductor-realnode/);
    expect(r.text).not.toMatch(/CNI-d3def4d658a51d0b373937a9|CNI-997d6b9b37f83770b3fd6da5/);
    expect(r.removedChains).toContain('nat/CNI-d3def4d658a51d0b373937a9');
    expect(r.removedChains).toContain('filter/KUBE-FORWARD');
    expect(r.removedChains).toContain('mangle/KUBE-IPTABLES-HINT');
  });

  it("keeps other software's chains and rules byte for byte, and the table structure", () => {
    const r = stripNodeRules(save);
    expect(r.text).toContain('-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE');
    expect(r.text).toContain(':CNI-0000foreign00000000000000 - [0:0]');
    expect(r.text).toContain('name: \\"podman\\"');
    const tables = (t: string) => t.split('\n').filter((l) => l.startsWith('*') || l === 'COMMIT');
    expect(tables(r.text)).toEqual(tables(save));
    expect(stripNodeRules(r.text)).toEqual({ text: r.text, removedChains: [], removedRules: 0 });
  });
});

describe('mounts', () => {
  it('lists the mounts below a directory, deepest first, unescaping spaces', () => {
    const info = [
      mountLine(1, '/', 'ext4'),
      mountLine(2, '/var/lib/konductor-realnode/kubelet/pods/u1/volumes/a', 'tmpfs'),
      mountLine(3, '/var/lib/konductor-realnode/containerd/state/netns/cni-1', 'nsfs'),
      mountLine(4, '/var/lib/konductor-realnode-other/x', 'tmpfs'),
      mountLine(5, '/var/lib/konductor-realnode/kubelet/pods/u1/volumes/a/b\\040c', 'tmpfs'),
    ].join('\n');
    expect(mountsUnder(info, '/var/lib/konductor-realnode')).toEqual([
      '/var/lib/konductor-realnode/kubelet/pods/u1/volumes/a/b c',
      '/var/lib/konductor-realnode/kubelet/pods/u1/volumes/a',
      '/var/lib/konductor-realnode/containerd/state/netns/cni-1',
    ]);
  });

  it('never returns a mount outside the directory and always orders children before parents', () => {
    const segment = fc.constantFrom('a', 'b', 'pods', 'x y');
    fc.assert(
      fc.property(fc.array(fc.array(segment, { minLength: 1, maxLength: 4 }), { maxLength: 12 }), (paths) => {
        const info = paths
          .map((p, i) => mountLine(i + 10, `/s/${p.join('/').replaceAll(' ', '\\040')}`, 'tmpfs'))
          .join('\n');
        const out = mountsUnder(info, '/s');
        for (const m of out) expect(m.startsWith('/s/')).toBe(true);
        for (let i = 0; i < out.length; i++) {
          for (let j = i + 1; j < out.length; j++) {
            expect(out[i]?.startsWith(`${out[j]}/`) || !out[j]?.startsWith(`${out[i]}/`)).toBe(true);
          }
        }
      }),
    );
  });
});

describe('control plane flags', () => {
  it('replaces a flag of the same name instead of repeating it, appends the others', () => {
    const base = ['--authorization-mode=RBAC', '--bind-address=127.0.0.1', '--profiling=false'];
    expect(mergeFlags(base, ['--authorization-mode=Node,RBAC', '--v=2'])).toEqual([
      '--authorization-mode=Node,RBAC',
      '--bind-address=127.0.0.1',
      '--profiling=false',
      '--v=2',
    ]);
    expect(mergeFlags(base)).toEqual(base);
  });
});

describe('generated configuration', () => {
  const layout = stateLayout('/state');

  it('containerd: CRI on cgroupfs, OOM adjust restricted without CAP_SYS_RESOURCE, everything under the state dir', () => {
    const text = containerdConfig({
      layout,
      facts: { capSysResource: false },
      pauseImage: 'example.local/pause:1',
      runc: '/usr/sbin/runc',
    });
    expect(text).toMatch(/restrict_oom_score_adj = true/);
    expect(text).toMatch(/netns_mounts_under_state_dir = true/);
    expect(text).toMatch(/SystemdCgroup = false/);
    expect(text).toMatch(/conf_dir = '\/state\/cni\/net.d'/);
    expect(text).toMatch(/sandbox = 'example.local\/pause:1'/);
    expect(text).toMatch(/\[plugins.'io.containerd.nri.v1.nri'\]\n\s+disable = true/);
    for (const key of ['root', 'state', 'address', 'Root', 'socket_dir']) {
      expect(text).toMatch(new RegExp(`^\\s*${key} = '/state/`, 'm'));
    }
    const withCap = containerdConfig({ layout, facts: { capSysResource: true }, pauseImage: 'p', runc: 'r' });
    expect(withCap).toMatch(/restrict_oom_score_adj = false/);
  });

  it('kubelet: cgroup v1 allowed only on a v1 host, webhook auth, paths under the state dir', () => {
    const base = {
      layout,
      caCertPath: '/ca.crt',
      tlsCertFile: '/k.crt',
      tlsPrivateKeyFile: '/k.key',
      resolvConf: '/state/config/resolv.conf',
    };
    const v1 = kubeletConfig({ ...base, facts: { cgroup: 'hybrid' } });
    expect(v1.failCgroupV1).toBe(false);
    expect(v1.cgroupDriver).toBe('cgroupfs');
    expect(v1.authorization).toEqual({ mode: 'Webhook' });
    expect(v1.podLogsDir).toBe('/state/pod-logs');
    expect(v1.containerRuntimeEndpoint).toBe('unix:///state/containerd/containerd.sock');
    expect('failCgroupV1' in kubeletConfig({ ...base, facts: { cgroup: 'v2' } })).toBe(false);
  });

  it("pods' resolv.conf drops loopback name servers", () => {
    expect(podResolvConf('nameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch x\n# c\n')).toBe(
      'nameserver 10.255.255.53\nsearch x\n',
    );
    expect(podResolvConf('nameserver 127.0.0.1\n')).toBe('\n');
  });

  it('CoreDNS forwards only when the host has a name server', () => {
    expect(corefile(true)).toContain('forward . /etc/resolv.conf');
    expect(corefile(false)).not.toContain('forward');
    expect(corefile(false)).toContain('kubernetes cluster.local in-addr.arpa ip6.arpa');
  });
});
