/**
 * Root filesystem directories of image builds: unpacking layers (with OCI whiteouts), resolving paths
 * inside a root without ever leaving it (symlinks are followed relative to the root, like a chroot),
 * copying files in with a given owner, and the difference between a snapshot and the current tree as
 * a layer's tar entries (new and changed paths, whiteouts for removed ones). Needs root for chown.
 */
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { type LayerBlob, readLayer } from './oci.ts';
import { fileEntry, type TarEntry } from './tar.ts';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

const escapes = (path: string) =>
  konductorError('KDR_IMAGES_PATH_ESCAPES', `path ${path} leaves the image's root filesystem`);

/**
 * The host path of `path` inside `root`, with every symlink on the way resolved relative to `root`
 * (an absolute link target means the root's `/`). The last component is followed too unless
 * `followLast` is false. Never returns a path outside `root`.
 */
export function resolveInRoot(root: string, path: string, followLast = true): string {
  const pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const seg = pending.shift() as string;
    if (seg === '.') continue;
    if (seg === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, seg);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(host);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink() && (followLast || pending.length > 0)) {
      if (++hops > 40) throw konductorError('KDR_IMAGES_PATH_LOOP', `too many symlinks resolving ${path}`);
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(seg);
  }
  const out = join(root, ...done);
  if (out !== root && !out.startsWith(`${root}/`)) throw escapes(path);
  return out;
}

/** mkdir -p inside the root (new directories 0755, owned by `owner`). Returns the host path. */
export function mkdirInRoot(root: string, path: string, owner = { uid: 0, gid: 0 }): string {
  const segs = posix.normalize(`/${path}`).split('/').filter(Boolean);
  let cur = '/';
  for (const s of segs) {
    cur = posix.join(cur, s);
    const host = resolveInRoot(root, cur);
    if (!existsSync(host)) {
      mkdirSync(host, { mode: 0o755 });
      chmodSync(host, 0o755);
      chownSync(host, owner.uid, owner.gid);
    } else if (!lstatSync(host).isDirectory()) {
      throw konductorError('KDR_IMAGES_NOT_A_DIRECTORY', `${cur} exists in the image and is not a directory`);
    }
  }
  return resolveInRoot(root, path);
}

/** Unpacks gzip layers (bottom first) into `root`, applying whiteouts; owners, modes and mtimes kept. */
export async function unpackLayers(layers: LayerBlob[], root: string): Promise<void> {
  mkdirSync(root, { recursive: true });
  for (const layer of layers) {
    const entries = await readLayer(layer);
    for (const e of entries) {
      const base = posix.basename(e.path);
      const dir = posix.dirname(e.path);
      if (base === OPAQUE) {
        const host = resolveInRoot(root, dir);
        for (const n of readdirSync(host)) rmSync(join(host, n), { recursive: true, force: true });
        continue;
      }
      if (base.startsWith(WHITEOUT)) {
        rmSync(resolveInRoot(root, posix.join(dir, base.slice(WHITEOUT.length)), false), {
          recursive: true,
          force: true,
        });
        continue;
      }
      const host = join(resolveInRoot(root, dir), base);
      if (e.type === 'dir') {
        if (existsSync(host) && !lstatSync(host).isDirectory())
          rmSync(host, { recursive: true, force: true });
        if (!existsSync(host)) mkdirSync(host);
        chmodSync(host, e.mode);
        chownSync(host, e.uid, e.gid);
        continue;
      }
      if (existsSync(host) || isDanglingLink(host)) rmSync(host, { recursive: true, force: true });
      if (e.type === 'file') {
        writeFileSync(host, e.data);
        chownSync(host, e.uid, e.gid);
        chmodSync(host, e.mode); // after chown, which clears setuid bits
      } else if (e.type === 'symlink') {
        symlinkSync(e.linkname, host);
        lchownSync(host, e.uid, e.gid);
      } else if (e.type === 'hardlink') {
        linkSync(resolveInRoot(root, e.linkname, false), host);
      } else {
        throw konductorError('KDR_IMAGES_UNSUPPORTED_FILE', `layer entry ${e.path} has tar type ${e.type}`);
      }
      lutimesSync(host, e.mtime, e.mtime);
    }
  }
}

function isDanglingLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** What identifies a path's state: any write, chmod, chown or replacement changes it. */
export interface PathState {
  type: 'file' | 'dir' | 'symlink' | 'other';
  ino: number;
  ctimeNs: bigint;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname?: string;
}

export type Snapshot = Map<string, PathState>;

/** Records the state of every path under `root` (relative paths). */
export function snapshot(root: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(root, r), { bigint: true });
      const type = st.isDirectory()
        ? 'dir'
        : st.isFile()
          ? 'file'
          : st.isSymbolicLink()
            ? 'symlink'
            : 'other';
      out.set(r, {
        type,
        ino: Number(st.ino),
        ctimeNs: st.ctimeNs,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: Number(st.size),
        ...(type === 'symlink' ? { linkname: readlinkSync(join(root, r)) } : {}),
      });
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

const changed = (a: PathState, b: PathState) =>
  a.type !== b.type ||
  a.ino !== b.ino ||
  a.ctimeNs !== b.ctimeNs ||
  a.mode !== b.mode ||
  a.uid !== b.uid ||
  a.gid !== b.gid ||
  a.size !== b.size ||
  a.linkname !== b.linkname;

/** Component-wise path order: a directory right before its contents, siblings by name. */
export function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as string) < (y[i] as string) ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * The layer that turns `before` into the current tree under `root`: new and changed paths (with their
 * parent directories), `.wh.<name>` for removed paths (not for their contents), and an opaque marker
 * for a directory that was replaced. Sorted parents first.
 */
export function diffEntries(root: string, before: Snapshot): TarEntry[] {
  const after = snapshot(root);
  const include = new Set<string>();
  const opaque = new Set<string>();
  for (const [p, st] of after) {
    const old = before.get(p);
    if (!old || changed(old, st)) include.add(p);
    if (old && st.type === 'dir' && old.type === 'dir' && old.ino !== st.ino) opaque.add(p);
  }
  const whiteouts: string[] = [];
  for (const p of before.keys()) {
    // A path that changed type is simply overwritten: appliers replace what is there.
    if (after.has(p)) continue;
    const parent = posix.dirname(p);
    const parentNow = after.get(parent);
    // Gone with its parent, or under a replaced (opaque) directory: the parent's entry covers it.
    if (parent !== '.' && (parentNow?.type !== 'dir' || opaque.has(parent))) continue;
    whiteouts.push(p);
  }
  for (const p of [...include, ...whiteouts]) {
    for (let d = posix.dirname(p); d !== '.'; d = posix.dirname(d)) include.add(d);
  }
  const entries: TarEntry[] = [...include].map((p) => {
    if (after.get(p)?.type === 'other') {
      throw konductorError(
        'KDR_IMAGES_UNSUPPORTED_FILE',
        `${p}: a device, socket or fifo cannot go into a layer`,
      );
    }
    return fileEntry(join(root, p), p);
  });
  for (const p of whiteouts) {
    entries.push({
      path: posix.join(posix.dirname(p), `${WHITEOUT}${posix.basename(p)}`),
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      data: Buffer.alloc(0),
    });
  }
  for (const p of opaque) {
    entries.push({
      path: `${p}/${OPAQUE}`,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      data: Buffer.alloc(0),
    });
  }
  return entries
    .map((e) => ({ ...e, path: e.path.replace(/^\.\//, '') }))
    .sort((a, b) => comparePaths(a.path, b.path));
}

/**
 * Copies `src` (a host path: file, directory or symlink) to `dest` (a host path inside a root), with
 * every copied path owned by `owner`; for a directory its contents are copied into `dest`. `filter`
 * gets each source path relative to `src`.
 */
export function copyInto(
  src: string,
  dest: string,
  owner: { uid: number; gid: number },
  filter: (rel: string) => boolean = () => true,
): void {
  const st = lstatSync(src);
  if (st.isDirectory()) {
    if (isDanglingLink(dest) || (existsSync(dest) && lstatSync(dest).isSymbolicLink())) {
      // Following it could leave the root; Docker would write through it inside the root, we refuse.
      throw konductorError(
        'KDR_IMAGES_PATH_ESCAPES',
        `refusing to copy directory ${src} onto the symlink ${dest}`,
      );
    }
    mkdirSync(dest, { recursive: true });
    for (const n of readdirSync(src).sort()) {
      if (!filter(n)) continue;
      copyInto(join(src, n), join(dest, n), owner, (rel) => filter(`${n}/${rel}`));
    }
    if (!lstatSync(dest).isDirectory())
      throw konductorError('KDR_IMAGES_NOT_A_DIRECTORY', `${dest} is not a directory`);
    chownSync(dest, owner.uid, owner.gid);
    chmodSync(dest, st.mode & 0o7777);
    return;
  }
  if (existsSync(dest) || isDanglingLink(dest)) {
    if (lstatSync(dest).isDirectory())
      throw konductorError('KDR_IMAGES_NOT_A_DIRECTORY', `cannot overwrite directory ${dest} with a file`);
    rmSync(dest, { force: true });
  }
  if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src), dest);
    lchownSync(dest, owner.uid, owner.gid);
    return;
  }
  if (!st.isFile())
    throw konductorError('KDR_IMAGES_UNSUPPORTED_FILE', `${src}: not a file, directory or symlink`);
  cpSync(src, dest);
  chownSync(dest, owner.uid, owner.gid);
  chmodSync(dest, st.mode & 0o7777);
}
