/**
 * The OCI archive writer (devcluster/images/oci.ts, tar.ts): archives parse back with every digest
 * verified, layers hold exactly the files given (checked also with GNU tar, an independent reader),
 * the image name is where containerd's importer reads it, and the same inputs give the same bytes.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  MEDIA_TYPES,
  normalizeImageName,
  readLayer,
  readOciArchive,
  writeLayer,
  writeOciArchive,
} from '../../devcluster/images/oci.ts';
import { directoryEntries, FIXED_EPOCH_SECONDS, parseTar, tarChunks } from '../../devcluster/images/tar.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'konductor-oci-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LONG = `${'deep/'.repeat(30)}file-with-a-long-name.txt`; // > 100 bytes: needs a PAX path record

/** A small root filesystem with what layers must carry: modes, a symlink, long and non-ASCII names. */
function makeTree(root: string, mtime: number): void {
  mkdirSync(join(root, 'bin'), { recursive: true });
  writeFileSync(join(root, 'bin/tool'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'bin/tool'), 0o755);
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  symlinkSync('../bin/tool', join(root, 'etc/tool-link'));
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  mkdirSync(join(root, LONG, '..'), { recursive: true });
  writeFileSync(join(root, LONG), 'long\n');
  writeFileSync(join(root, 'ünïcode.txt'), 'ü\n');
  writeFileSync(join(root, 'empty'), '');
  for (const p of ['bin/tool', 'etc/passwd', LONG, 'ünïcode.txt', 'empty'])
    utimesSync(join(root, p), mtime, mtime);
}

async function buildImage(name: string, rootDir: string, outName: string) {
  // Owners as an image build gives them (root), whoever runs the test.
  const owner = () => ({ uid: 0, gid: 0 });
  const layer = await writeLayer(directoryEntries(rootDir, { owner }), join(tmp, `blobs-${outName}`));
  return writeOciArchive(
    {
      name,
      config: { User: '65532:65532', Env: ['PATH=/bin'], Entrypoint: ['/bin/tool'], WorkingDir: '/' },
      layers: [layer],
      history: ['test layer'],
    },
    join(tmp, `${outName}.tar`),
  );
}

describe('writeOciArchive + readOciArchive', () => {
  it('round-trips: layout, index with the containerd name annotation, manifest, config, layer', async () => {
    const root = join(tmp, 'tree-a');
    makeTree(root, 1_700_000_000);
    const info = await buildImage('konductor/test:dev', root, 'a');
    expect(info.name).toBe('docker.io/konductor/test:dev');

    const parsed = await readOciArchive(info.path);
    expect(parsed.layout).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(parsed.index.mediaType).toBe(MEDIA_TYPES.index);
    const top = parsed.index.manifests[0];
    expect(top?.digest).toBe(info.manifestDigest);
    expect(top?.annotations).toEqual({
      [ANNOTATION_IMAGE_NAME]: 'docker.io/konductor/test:dev',
      [ANNOTATION_REF_NAME]: 'dev',
    });
    expect(top?.platform).toEqual({ architecture: 'amd64', os: 'linux' });
    expect(parsed.manifest.config.digest).toBe(info.configDigest);
    expect(parsed.manifest.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPES.layerGzip]);
    expect(parsed.config.config).toEqual({
      User: '65532:65532',
      Env: ['PATH=/bin'],
      Entrypoint: ['/bin/tool'],
      WorkingDir: '/',
    });
    expect(parsed.config.rootfs.diff_ids).toEqual([info.layers[0]?.diffId]);
    // the archive's own entries: oci-layout and index.json first, then the sorted blobs
    const names = parsed.entries.map((e) => e.path);
    expect(names.slice(0, 4)).toEqual(['oci-layout', 'index.json', 'blobs', 'blobs/sha256']);
    const blobNames = names.slice(4);
    expect(blobNames).toEqual([...blobNames].sort());
    expect(blobNames).toHaveLength(3); // config, manifest, one layer

    const entries = await readLayer(parsed.layers[0] as (typeof parsed.layers)[0]);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('bin/tool')).toMatchObject({ type: 'file', mode: 0o755, uid: 0, gid: 0 });
    expect(byPath.get('bin/tool')?.data.toString()).toBe('#!/bin/sh\necho hi\n');
    expect(byPath.get('etc/tool-link')).toMatchObject({ type: 'symlink', linkname: '../bin/tool' });
    expect(byPath.get('tmp')).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect(byPath.get(LONG)?.data.toString()).toBe('long\n');
    expect(byPath.get('ünïcode.txt')?.data.toString()).toBe('ü\n');
    expect(byPath.get('empty')).toMatchObject({ type: 'file', size: 0 });
    for (const e of entries) expect(e.mtime, e.path).toBe(FIXED_EPOCH_SECONDS);
    // parents come before their children
    const order = entries.map((e) => e.path);
    for (const [i, p] of order.entries()) {
      const parent = p.split('/').slice(0, -1).join('/');
      if (parent) expect(order.indexOf(parent), p).toBeLessThan(i);
    }
  });

  it('GNU tar reads the layer the same way (an independent reader)', async () => {
    const root = join(tmp, 'tree-gnu');
    makeTree(root, 1_600_000_000);
    const info = await buildImage('konductor/test:gnu', root, 'gnu');
    const layer = info.layers[0] as (typeof info.layers)[0];
    const out = join(tmp, 'gnu-extract');
    mkdirSync(out);
    const r = spawnSync('tar', ['-xzf', layer.file, '-C', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(out, LONG), 'utf8')).toBe('long\n');
    expect(readFileSync(join(out, 'ünïcode.txt'), 'utf8')).toBe('ü\n');
    const list = spawnSync('tar', ['-tvzf', layer.file], { encoding: 'utf8' }).stdout;
    expect(list).toMatch(/-rwxr-xr-x 0\/0\s+18 2000-01-01 00:00 bin\/tool/);
    expect(list).toMatch(/drwxrwxrwt 0\/0\s+0 2000-01-01 00:00 tmp\//);
  });

  it('the same inputs give the same bytes (files with other mtimes, another directory)', async () => {
    const a = join(tmp, 'tree-same-1');
    const b = join(tmp, 'tree-same-2');
    makeTree(a, 1_500_000_000);
    makeTree(b, 1_234_567_890);
    const ia = await buildImage('konductor/same:1', a, 'same-1');
    const ib = await buildImage('konductor/same:1', b, 'same-2');
    expect(ib.manifestDigest).toBe(ia.manifestDigest);
    expect(ib.layers[0]?.digest).toBe(ia.layers[0]?.digest);
    expect(readFileSync(ib.path).equals(readFileSync(ia.path))).toBe(true);
    // and a different content gives a different digest
    writeFileSync(join(b, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n');
    const ic = await buildImage('konductor/same:1', b, 'same-3');
    expect(ic.manifestDigest).not.toBe(ia.manifestDigest);
  });

  it('rejects an archive whose blob does not match its digest', async () => {
    const root = join(tmp, 'tree-corrupt');
    makeTree(root, 1_600_000_000);
    const info = await buildImage('konductor/test:corrupt', root, 'corrupt');
    const buf = readFileSync(info.path);
    const parsed = await readOciArchive(info.path);
    const layerBlob = parsed.blobs.get(info.layers[0]?.digest as string) as { offset: number; size: number };
    buf[layerBlob.offset + 20] = (buf[layerBlob.offset + 20] as number) ^ 0xff;
    const bad = join(tmp, 'corrupt-bad.tar');
    writeFileSync(bad, buf);
    await expect(readOciArchive(bad)).rejects.toMatchObject({ code: 'KDR_IMAGES_ARCHIVE_INVALID' });
  });
});

describe('tar', () => {
  it('any path (long, non-ASCII) and any mode round-trip through the writer and the reader', async () => {
    const segment = fc.stringMatching(/^[a-zA-Z0-9._\-ü€ ]{1,40}$/).filter((s) => s !== '.' && s !== '..');
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 0o7777 }),
        fc.uint8Array({ maxLength: 1500 }),
        async (segments, mode, bytes) => {
          const path = segments.join('/');
          const chunks: Buffer[] = [];
          for await (const c of tarChunks([
            { path, type: 'file', mode, uid: 65532, gid: 7, data: Buffer.from(bytes) },
          ]))
            chunks.push(c);
          const tar = Buffer.concat(chunks);
          expect(tar.length % 512).toBe(0);
          const [e] = parseTar(tar);
          expect(e).toMatchObject({ path, type: 'file', mode, uid: 65532, gid: 7, size: bytes.length });
          expect(e?.data.equals(Buffer.from(bytes))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the gzip layer decompresses to the tar whose sha256 is the diff_id', async () => {
    const root = join(tmp, 'tree-diffid');
    makeTree(root, 1);
    const layer = await writeLayer(directoryEntries(root), join(tmp, 'blobs-diffid'));
    const tar = gunzipSync(readFileSync(layer.file));
    const { createHash } = await import('node:crypto');
    expect(`sha256:${createHash('sha256').update(tar).digest('hex')}`).toBe(layer.diffId);
    expect(tar.length).toBe(layer.uncompressedSize);
    expect(layer.digest).toBe(
      `sha256:${createHash('sha256').update(readFileSync(layer.file)).digest('hex')}`,
    );
  });
});

describe('normalizeImageName (the CRI / docker reference rules)', () => {
  it.each([
    ['konductor/agent:dev', 'docker.io/konductor/agent:dev'],
    ['busybox', 'docker.io/library/busybox:latest'],
    ['node:24-slim', 'docker.io/library/node:24-slim'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    ['localhost:5000/x/y', 'localhost:5000/x/y:latest'],
    ['docker.io/konductor/agent:dev', 'docker.io/konductor/agent:dev'],
  ])('%s -> %s', (input, want) => {
    expect(normalizeImageName(input)).toBe(want);
  });

  it('rejects an invalid reference', () => {
    expect(() => normalizeImageName('Konductor/UPPER:dev')).toThrow(/invalid image reference/);
  });
});
