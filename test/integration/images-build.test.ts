/**
 * The real node's images, built for real (devcluster/images, devcluster/certmanager): archives read
 * back with every digest verified, imported with `importImages` into a containerd of the test's own
 * (Debian's containerd 1.6 + runc; test/helpers/privateContainerd.ts) and run there with `ctr run`:
 * the agent and the manager as uid 65532 with a read-only root filesystem, their entry points, the
 * base images, cert-manager's binaries. A second build of Dockerfile.sidecar from the same inputs gives
 * the same image digest. Needs root (chroot RUN steps, containerd). The images are the cache's, shared
 * with the real-node e2e tests.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertManagerImages, ensureCertManagerImages } from '../../devcluster/certmanager/index.ts';
import { createBuildSession, readBuildContext, runDockerBuild } from '../../devcluster/images/dockerBuild.ts';
import {
  ensureImages,
  type ImageRecord,
  importImages,
  mib,
  NPM_VERSION,
  type RealNodeImages,
  readOciArchive,
  writeOciArchive,
} from '../../devcluster/images/index.ts';
import { readLayer } from '../../devcluster/images/oci.ts';
import { type PrivateContainerd, startPrivateContainerd } from '../helpers/privateContainerd.ts';
import { runProcess } from '../helpers/process.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

let images: RealNodeImages;
let certManager: CertManagerImages;
let ctd: PrivateContainerd;
const log = (l: string) => process.stderr.write(`[images-test] ${l}\n`);

beforeAll(async () => {
  images = await ensureImages({ log });
  certManager = await ensureCertManagerImages({ log });
  for (const r of [...images.all, ...Object.values(certManager)]) {
    log(
      `${r.ref}: ${mib(r.compressedBytes)} compressed, ${mib(r.uncompressedBytes)} unpacked (${r.manifestDigest.slice(0, 19)})`,
    );
  }
  ctd = await startPrivateContainerd(log);
}, 1_200_000);

afterAll(async () => {
  await ctd?.stop();
}, 60_000);

const all = (): ImageRecord[] => [...images.all, ...Object.values(certManager)];

describe('the archives', () => {
  it('parse back with verified digests, under the names containerd imports them as', async () => {
    for (const r of all()) {
      const a = await readOciArchive(r.archive);
      expect(a.name).toBe(r.name);
      expect(a.index.manifests[0]?.digest).toBe(r.manifestDigest);
      expect(r.name).toBe(`docker.io/${r.ref}`);
    }
  });

  it('share the base layers: busybox under node, node under manager and agent', async () => {
    const layers = async (r: ImageRecord) => (await readOciArchive(r.archive)).layers.map((l) => l.digest);
    const busybox = await layers(images.busybox);
    const node = await layers(images.node);
    expect(node[0]).toBe(busybox[0]);
    for (const r of [images.manager, images.agent]) {
      const own = await layers(r);
      expect(own.slice(0, node.length)).toEqual(node);
      expect(own).toHaveLength(node.length + 1);
    }
  });

  it('the agent image adds the bundle alone to the Node.js base', async () => {
    const a = await readOciArchive(images.agent.archive);
    const top = await readLayer(a.layers.at(-1) as (typeof a.layers)[0]);
    expect(top.map((e) => `${e.type} ${e.path}`)).toEqual(['dir app', 'file app/konductor-agent.js']);
    const bundle = top[1] as (typeof top)[0];
    expect(bundle.uid).toBe(0);
    expect(bundle.size).toBeLessThan(100 * 1024);
    expect(images.agent.uncompressedBytes - images.node.uncompressedBytes).toBeLessThan(100 * 1024);
    expect(a.config.config).toMatchObject({
      User: '65532:65532',
      Entrypoint: ['node', '/app/konductor-agent.js'],
      WorkingDir: '/app',
    });
    expect(a.config.config.Env).toContain('NODE_ENV=production');
  });

  it('cert-manager images: the static binary on the /etc skeleton, USER 1000 as upstream', async () => {
    for (const [c, r] of Object.entries(certManager)) {
      const a = await readOciArchive(r.archive);
      expect(a.config.config).toEqual({ User: '1000', Entrypoint: [`/app/cmd/${c}/${c}`] });
    }
  });
});

describe('in a containerd (Debian 1.6 + runc)', () => {
  beforeAll(async () => {
    const imported = await importImages({
      ctr: ctd.ctr,
      address: ctd.address,
      namespace: 'k8s.io',
      archives: all(),
      log,
    });
    expect(imported.map((i) => i.name)).toEqual(all().map((r) => r.name));
  }, 300_000);

  it('importing again skips what containerd already holds, re-imports what it lost, or everything with force', async () => {
    const lines: string[] = [];
    const opts = { ctr: ctd.ctr, address: ctd.address, archives: [images.agent, images.busybox.archive] };
    const want = [
      { name: images.agent.name, digest: images.agent.manifestDigest, archive: images.agent.archive },
      { name: images.busybox.name, digest: images.busybox.manifestDigest, archive: images.busybox.archive },
    ];
    expect(await importImages({ ...opts, log: (l) => lines.push(l) })).toEqual(want);
    expect(lines.filter((l) => l.startsWith('imported'))).toEqual([]);
    const rm = await runProcess(ctd.ctr, [
      '--address',
      ctd.address,
      '-n',
      'k8s.io',
      'images',
      'rm',
      images.agent.name,
    ]);
    expect(rm.code, rm.stderr).toBe(0);
    lines.length = 0;
    expect(await importImages({ ...opts, log: (l) => lines.push(l) })).toEqual(want);
    expect(lines.filter((l) => l.startsWith('imported'))).toEqual([
      expect.stringContaining(images.agent.archive),
    ]);
    lines.length = 0;
    expect(await importImages({ ...opts, force: true, log: (l) => lines.push(l) })).toEqual(want);
    expect(lines.filter((l) => l.startsWith('imported'))).toHaveLength(2);
  });

  it('the agent runs as 65532 on a read-only root filesystem; its entry point is the agent', async () => {
    const v = await ctd.run(images.agent.name, 'agent-version', {
      readOnly: true,
      args: ['node', '/app/konductor-agent.js', '--version'],
    });
    expect(v).toEqual({ code: 0, output: `konductor-agent ${pkg.version}\n` });
    const who = await ctd.run(images.agent.name, 'agent-id', {
      readOnly: true,
      args: ['sh', '-c', 'id -u; id -g; pwd'],
    });
    expect(who.output).toBe('65532\n65532\n/app\n');
    const entry = await ctd.run(images.agent.name, 'agent-entry', { readOnly: true });
    expect(entry.code).toBe(3); // misconfiguration: no mode given
    expect(entry.output).toMatch(/usage: konductor-agent/);
  });

  it('the manager: production dependencies only, its entry point starts the manager', async () => {
    const v = await ctd.run(images.manager.name, 'manager-version', {
      readOnly: true,
      args: ['node', '/app/dist/konductor.js', '--version'],
    });
    expect(v).toEqual({ code: 0, output: `konductor ${pkg.version}\n` });
    const deps = await ctd.run(images.manager.name, 'manager-deps', { args: ['ls', '/app/node_modules'] });
    const names = deps.output.split('\n');
    expect(names).toContain('fastify');
    for (const dev of ['vitest', 'typescript', 'esbuild', 'node', '@biomejs'])
      expect(names).not.toContain(dev);
    // Outside a cluster and without a kubeconfig the manager stops with its own error, as uid 65532.
    const entry = await ctd.run(images.manager.name, 'manager-entry', { readOnly: true });
    expect(entry.code).toBe(1);
    expect(entry.output).toMatch(/^konductor: .*kubeconfig/m);
  });

  it('the base images: busybox sh, node and npm, pause ends on SIGTERM', async () => {
    expect(await ctd.run(images.busybox.name, 'busybox', { args: ['sh', '-c', 'echo ok; id -u'] })).toEqual({
      code: 0,
      output: 'ok\n0\n',
    });
    expect(
      await ctd.run(images.node.name, 'node', { args: ['node', '-e', 'console.log(process.version)'] }),
    ).toMatchObject({ code: 0, output: expect.stringMatching(/^v24\./) });
    expect(await ctd.run(images.node.name, 'npm', { args: ['npm', '--version'] })).toEqual({
      code: 0,
      output: `${NPM_VERSION}\n`,
    });
    await ctd.start(images.pause.name, 'pause');
    expect(await ctd.stopTask('pause')).toBe(0);
  });

  it("cert-manager's binaries run from their images", async () => {
    for (const [c, r] of Object.entries(certManager)) {
      const out = await ctd.run(r.name, `cm-${c}`, {
        readOnly: true,
        args: [`/app/cmd/${c}/${c}`, '--help'],
      });
      expect(out.code, out.output).toBe(0);
      expect(out.output).toContain('Usage:');
    }
  });
});

it('a second build of Dockerfile.sidecar from the same inputs gives the same image', async () => {
  const work = mkdtempSync(join(tmpdir(), 'konductor-rebuild-'));
  try {
    const session = createBuildSession(join(work, 'session'), log);
    const result = await runDockerBuild(session, {
      dockerfile: readFileSync(join(REPO, 'Dockerfile.sidecar'), 'utf8'),
      label: 'Dockerfile.sidecar',
      context: readBuildContext(REPO),
      buildArgs: { NODE_IMAGE: images.node.ref },
      images: [images.node],
    });
    const info = await writeOciArchive(
      { name: images.agent.ref, config: result.config, layers: result.layers, history: result.history },
      join(work, 'agent.tar'),
    );
    expect(info.manifestDigest).toBe(images.agent.manifestDigest);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 600_000);
