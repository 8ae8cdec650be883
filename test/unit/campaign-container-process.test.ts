import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { containerProcess, inContainerCgroup, parseContainerId } from '../../campaign/containerProcess.ts';

const ID = 'a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

describe('campaign: a container status ID -> its host process (hold-killed)', () => {
  it("parses the process kubelet's process://<pid> and a real node's containerd://<id>", () => {
    expect(parseContainerId('process://4242')).toEqual({ runtime: 'process', pid: 4242 });
    expect(parseContainerId(`containerd://${ID}`)).toEqual({ runtime: 'containerd', id: ID });
  });

  it('refuses what names no container it can find: empty, other runtimes, bad pids and ids', () => {
    for (const bad of [
      undefined,
      '',
      'process://',
      'process://0',
      'process://-1',
      'process://12a',
      'docker://abc123abc123',
      'containerd://',
      'containerd://../../etc',
      `containerd://${ID.toUpperCase()}`,
      `containerd://${ID}0`,
      ID,
    ])
      expect(parseContainerId(bad), String(bad)).toBeUndefined();
  });

  it('finds the container by the leaf of its cgroup path (cgroupfs and systemd drivers, v1 and v2)', () => {
    const v1 = [
      `12:pids:/konductor-realnode/kubepods/besteffort/pod6b0e/${ID}`,
      `11:memory:/konductor-realnode/kubepods/besteffort/pod6b0e/${ID}`,
      '1:name=systemd:/user.slice',
      '0::/user.slice',
    ].join('\n');
    expect(inContainerCgroup(v1, ID)).toBe(true);
    expect(inContainerCgroup(`0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${ID}.scope\n`, ID)).toBe(
      true,
    );
    // The pod's sandbox (another id), the pod's own cgroup and a prefix of the id are not the container.
    expect(
      inContainerCgroup(`4:cpu:/konductor-realnode/kubepods/besteffort/pod6b0e/${'b'.repeat(64)}`, ID),
    ).toBe(false);
    expect(inContainerCgroup('4:cpu:/konductor-realnode/kubepods/besteffort/pod6b0e', ID)).toBe(false);
    expect(inContainerCgroup(`4:cpu:/kubepods/pod1/${ID.slice(0, 12)}`, ID)).toBe(false);
    expect(inContainerCgroup('', ID)).toBe(false);
  });

  it('property: a cgroup line matches exactly when its leaf is the id', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(
        hex,
        hex,
        fc.array(fc.stringMatching(/^[a-z0-9_.-]{1,12}$/), { maxLength: 4 }),
        (id, other, dirs) => {
          const line = (leaf: string) => `3:cpu,cpuacct:/${[...dirs, leaf].join('/')}`;
          expect(inContainerCgroup(line(id), id)).toBe(true);
          expect(inContainerCgroup(line(other), id)).toBe(other === id);
        },
      ),
    );
  });

  it("finds this test's own process from process://<its pid>, and nothing for a command it does not run", () => {
    expect(containerProcess(`process://${process.pid}`, 'node')).toBe(process.pid);
    expect(containerProcess(`process://${process.pid}`, 'no-such-command-konductor')).toBeUndefined();
    expect(containerProcess(`containerd://${'0'.repeat(64)}`, 'node')).toBeUndefined();
  });
});
