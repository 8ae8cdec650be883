/**
 * Root filesystems of image builds (devcluster/images/rootfs.ts): paths resolve inside the root
 * whatever symlinks say (a chroot's view), and a stage's layer (diffEntries) applied on its base
 * (unpackLayers) gives back exactly the stage's tree: new, changed, removed (whiteouts) and replaced
 * (opaque) paths. Writes owners (chown): run as root, like the image builds.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLayer } from '../../devcluster/images/oci.ts';
import {
  comparePaths,
  copyInto,
  diffEntries,
  resolveInRoot,
  snapshot,
  unpackLayers,
} from '../../devcluster/images/rootfs.ts';
import { directoryEntries } from '../../devcluster/images/tar.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'konductor-rootfs-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every path under `root` with type, mode, owner and content (or link target). */
function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = join(root, r);
      const st = lstatSync(p);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${meta}`;
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(p)}`;
      else out[r] = `file ${meta} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 12)}`;
    }
  };
  walk('');
  return out;
}

describe('resolveInRoot', () => {
  it('follows symlinks inside the root, absolute targets included', () => {
    const root = join(tmp, 'resolve');
    mkdirSync(join(root, 'lib/x86_64-linux-gnu'), { recursive: true });
    symlinkSync('/lib/x86_64-linux-gnu', join(root, 'lib64'));
    symlinkSync('../../../../etc', join(root, 'lib/up'));
    expect(resolveInRoot(root, '/lib64/ld.so')).toBe(join(root, 'lib/x86_64-linux-gnu/ld.so'));
    expect(resolveInRoot(root, '/lib/up/passwd')).toBe(join(root, 'etc/passwd'));
    expect(resolveInRoot(root, '../../etc/shadow')).toBe(join(root, 'etc/shadow'));
    expect(resolveInRoot(root, '/lib64', false)).toBe(join(root, 'lib64'));
  });

  it('never leaves the root, whatever the symlinks and the path', () => {
    const root = join(tmp, 'resolve-any');
    mkdirSync(join(root, 'a/b'), { recursive: true });
    const segment = fc.constantFrom('a', 'b', '..', '.', '/', 'etc', 'x');
    const target = fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(fc.array(target, { minLength: 1, maxLength: 3 }), target, (links, path) => {
        for (const [i, t] of links.entries()) {
          rmSync(join(root, 'a', `l${i}`), { force: true });
          symlinkSync(t, join(root, 'a', `l${i}`));
        }
        let out: string;
        try {
          out = resolveInRoot(root, `a/l0/${path}`);
        } catch (err) {
          expect((err as { code: string }).code).toBe('KDR_IMAGES_PATH_LOOP');
          return;
        }
        expect(out === root || out.startsWith(`${root}/`)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('diffEntries + unpackLayers', () => {
  it('the layer of a changed tree, applied on the base, reproduces the tree', async () => {
    const base = join(tmp, 'base');
    mkdirSync(join(base, 'etc'), { recursive: true });
    writeFileSync(join(base, 'etc/keep'), 'same');
    writeFileSync(join(base, 'etc/change'), 'old');
    writeFileSync(join(base, 'etc/chmod'), 'mode');
    writeFileSync(join(base, 'etc/remove'), 'gone');
    mkdirSync(join(base, 'olddir/sub'), { recursive: true });
    writeFileSync(join(base, 'olddir/sub/f'), 'x');
    mkdirSync(join(base, 'replaced'));
    writeFileSync(join(base, 'replaced/old'), 'o');
    writeFileSync(join(base, 'becomes-dir'), 'file');
    const baseLayer = await writeLayer(directoryEntries(base), join(tmp, 'blobs'));

    // The stage: the base unpacked, then changed the ways RUN and COPY change things.
    const stage = join(tmp, 'stage');
    await unpackLayers([baseLayer], stage);
    const before = snapshot(stage);
    writeFileSync(join(stage, 'etc/change'), 'new');
    chmodSync(join(stage, 'etc/chmod'), 0o600);
    rmSync(join(stage, 'etc/remove'));
    rmSync(join(stage, 'olddir'), { recursive: true });
    // A new directory in place of the old one (made while the old exists, so its inode differs).
    mkdirSync(join(stage, 'replaced.tmp'));
    writeFileSync(join(stage, 'replaced.tmp/new'), 'n');
    rmSync(join(stage, 'replaced'), { recursive: true });
    renameSync(join(stage, 'replaced.tmp'), join(stage, 'replaced'));
    rmSync(join(stage, 'becomes-dir'));
    mkdirSync(join(stage, 'becomes-dir'));
    mkdirSync(join(stage, 'app/deep'), { recursive: true });
    writeFileSync(join(stage, 'app/deep/x.js'), 'x');
    symlinkSync('/app/deep/x.js', join(stage, 'app/link'));

    const entries = diffEntries(stage, before);
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual([...paths].sort(comparePaths));
    expect(paths).not.toContain('etc/keep');
    expect(paths).toEqual(
      expect.arrayContaining([
        'etc',
        'etc/change',
        'etc/chmod',
        'etc/.wh.remove',
        '.wh.olddir',
        'replaced/.wh..wh..opq',
        'replaced/new',
        'becomes-dir',
        'app/deep/x.js',
        'app/link',
      ]),
    );
    expect(paths.filter((p) => p.startsWith('olddir'))).toEqual([]);

    const layer = await writeLayer(entries, join(tmp, 'blobs'));
    const rebuilt = join(tmp, 'rebuilt');
    await unpackLayers([baseLayer, layer], rebuilt);
    expect(describeTree(rebuilt)).toEqual(describeTree(stage));
  });

  it('copyInto gives what it copies the owner asked for, keeps modes and symlinks', () => {
    const src = join(tmp, 'copy-src');
    mkdirSync(join(src, 'd'), { recursive: true });
    writeFileSync(join(src, 'd/run.sh'), '#!/bin/sh');
    chmodSync(join(src, 'd/run.sh'), 0o750);
    symlinkSync('run.sh', join(src, 'd/alias'));
    const dest = join(tmp, 'copy-dest');
    copyInto(src, dest, { uid: 65532, gid: 65532 });
    expect(describeTree(dest)).toMatchObject({
      d: 'dir 755 65532:65532',
      'd/alias': 'link run.sh',
      'd/run.sh': expect.stringMatching(/^file 750 65532:65532 /),
    });
    expect(lstatSync(join(dest, 'd/alias')).uid).toBe(65532);
  });

  it('refuses to copy a directory through a symlink (it could leave the root)', () => {
    const src = join(tmp, 'copy-src2');
    mkdirSync(join(src, 'd'), { recursive: true });
    const dest = join(tmp, 'copy-dest2');
    mkdirSync(dest);
    symlinkSync('/etc', join(dest, 'd'));
    expect(() => copyInto(src, dest, { uid: 0, gid: 0 })).toThrow(
      expect.objectContaining({ code: 'KDR_IMAGES_PATH_ESCAPES' }),
    );
  });
});
