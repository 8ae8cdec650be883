/**
 * A deterministic tar writer and a reader: just enough of POSIX ustar + PAX for OCI image layers.
 *
 * The writer emits entries in the order given, with a fixed mtime, no user/group names and PAX records
 * only where ustar cannot hold a path, so the same entries always give the same bytes (and digest).
 * `directoryEntries()` lists a directory depth-first with children sorted by name; hard links are
 * written as independent regular files (a layer needs no link table, and the order stays simple).
 * The reader understands what this writer, GNU tar and Go's archive/tar produce for regular files,
 * directories and links (PAX `x`/`g`, GNU `L`/`K` long names).
 */
import { createReadStream, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';

/** 2000-01-01T00:00:00Z: every entry's mtime and the images' `created` (reproducible builds). */
export const FIXED_EPOCH_SECONDS = 946_684_800;

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface TarEntry {
  /** Relative path without a leading `/` (`./` and `/` are stripped); directories without a trailing `/`. */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Target of a symlink or hard link. */
  linkname?: string;
  /** Content of a file, in memory ... */
  data?: Buffer;
  /** ... or read from this path when written (its size must match `size`). */
  source?: string;
  /** Size of a file (bytes). Required with `source`; defaults to `data.length`. */
  size?: number;
}

const BLOCK = 512;
const TYPEFLAG: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', dir: '5' };

function cleanPath(p: string): string {
  return p.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One PAX record: `<len> <key>=<value>\n`, where <len> counts the whole record including itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function header(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  typeflag: string;
  linkname: string;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(fields.name, 0, 100, 'utf8');
  h.write(octal(fields.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(fields.uid, 8), 108, 8, 'ascii');
  h.write(octal(fields.gid, 8), 116, 8, 'ascii');
  h.write(octal(fields.size, 12), 124, 12, 'ascii');
  h.write(octal(FIXED_EPOCH_SECONDS, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder: spaces
  h.write(fields.typeflag, 156, 1, 'ascii');
  h.write(fields.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

const fitsUstar = (s: string) => Buffer.byteLength(s) <= 100 && /^[\x20-\x7e]*$/.test(s);

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

function entrySize(e: TarEntry): number {
  if (e.type !== 'file') return 0;
  const size = e.size ?? e.data?.length;
  if (size === undefined) {
    throw konductorError('KDR_IMAGES_TAR_ENTRY', `tar entry ${e.path}: a file needs data or source+size`);
  }
  return size;
}

/** The header block(s) of one entry: a PAX `x` header first when the path or link does not fit ustar. */
export function entryHeader(e: TarEntry): Buffer {
  const path = cleanPath(e.path);
  if (!path) throw konductorError('KDR_IMAGES_TAR_ENTRY', 'tar entry with an empty path');
  const name = e.type === 'dir' ? `${path}/` : path;
  const linkname = e.linkname ?? '';
  const size = entrySize(e);
  const blocks: Buffer[] = [];
  const pax = [
    ...(fitsUstar(name) ? [] : [paxRecord('path', name)]),
    ...(fitsUstar(linkname) ? [] : [paxRecord('linkpath', linkname)]),
  ].join('');
  if (pax) {
    const body = Buffer.from(pax, 'utf8');
    const base = name.replace(/\/$/, '').split('/').pop() ?? 'entry';
    const paxName = `PaxHeaders/${base}`.slice(0, 99).replace(/[^\x20-\x7e]/g, '_');
    blocks.push(
      header({ name: paxName, mode: 0o644, uid: 0, gid: 0, size: body.length, typeflag: 'x', linkname: '' }),
      body,
      padding(body.length),
    );
  }
  const ascii = (s: string) => (fitsUstar(s) ? s : s.replace(/[^\x20-\x7e]/g, '_').slice(0, 100));
  blocks.push(
    header({
      name: ascii(name),
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size,
      typeflag: TYPEFLAG[e.type],
      linkname: ascii(linkname),
    }),
  );
  return Buffer.concat(blocks);
}

/** The tar stream of `entries`, ended by two zero blocks. File sources are streamed, never loaded whole. */
export async function* tarChunks(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield entryHeader(e);
    if (e.type !== 'file') continue;
    const size = entrySize(e);
    if (e.data) {
      yield e.data;
    } else if (e.source) {
      let read = 0;
      for await (const chunk of createReadStream(e.source)) {
        read += (chunk as Buffer).length;
        if (read > size) break;
        yield chunk as Buffer;
      }
      if (read !== size) {
        throw konductorError(
          'KDR_IMAGES_TAR_CHANGED',
          `${e.source} changed while it was archived (expected ${size} bytes, read ${read})`,
        );
      }
    }
    yield padding(size);
  }
  yield Buffer.alloc(2 * BLOCK);
}

export interface DirectoryEntryOptions {
  /** Path prefix of every entry (e.g. `app` for a directory that becomes /app). */
  prefix?: string;
  /** Owner override; default: the file's own uid/gid. */
  owner?: (rel: string) => { uid: number; gid: number } | undefined;
  /** Skip a path (relative to the directory) and everything under it. */
  skip?: (rel: string) => boolean;
}

/** The entries of a directory tree (not the root itself), depth-first, children sorted by name. */
export function directoryEntries(root: string, opts: DirectoryEntryOptions = {}): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (rel: string) => {
    const names = readdirSync(join(root, rel)).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (opts.skip?.(r)) continue;
      const entry = fileEntry(join(root, r), opts.prefix ? `${opts.prefix}/${r}` : r);
      const owner = opts.owner?.(r);
      if (owner) Object.assign(entry, owner);
      out.push(entry);
      if (entry.type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

/** One file, directory or symlink on disk as a tar entry (content streamed from `abs`). */
export function fileEntry(abs: string, path: string): TarEntry {
  const st = lstatSync(abs);
  const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isDirectory()) return { ...base, type: 'dir' };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', linkname: readlinkSync(abs) };
  if (st.isFile()) return { ...base, type: 'file', source: abs, size: st.size };
  throw konductorError(
    'KDR_IMAGES_UNSUPPORTED_FILE',
    `${abs}: only regular files, directories and symlinks go into an image layer`,
  );
}

/** An entry read back: a parsed header, the offset of its data in the archive and the data itself. */
export interface ParsedTarEntry {
  path: string;
  /** `file`, `dir`, `symlink`, `hardlink`, or the raw typeflag of anything else. */
  type: TarEntryType | `other:${string}`;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  linkname: string;
  /** Offset of the data in the archive. */
  offset: number;
  data: Buffer;
}

function cstring(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function parseOctal(b: Buffer): number {
  const s = cstring(b).trim();
  return s ? Number.parseInt(s, 8) : 0;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(0x20, i);
    const len = Number.parseInt(body.subarray(i, sp).toString('ascii'), 10);
    if (!(len > 0)) break;
    const rec = body.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '5': 'dir',
};

/** Parses a whole (uncompressed) tar archive; verifies each header's checksum. */
export function parseTar(buf: Buffer): ParsedTarEntry[] {
  const out: ParsedTarEntry[] = [];
  let off = 0;
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    if (sum !== parseOctal(h.subarray(148, 156))) {
      throw konductorError('KDR_IMAGES_TAR_CORRUPT', `tar header checksum mismatch at offset ${off}`);
    }
    const typeflag = String.fromCharCode(h[156] as number);
    let size = parseOctal(h.subarray(124, 136));
    if (pax.size !== undefined) size = Number(pax.size);
    const dataOff = off + BLOCK;
    const data = buf.subarray(dataOff, dataOff + size);
    off = dataOff + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === 'x') {
      pax = { ...pax, ...parsePax(data) };
      continue;
    }
    if (typeflag === 'g') continue;
    if (typeflag === 'L' || typeflag === 'K') {
      const v = cstring(data);
      if (typeflag === 'L') longName = v;
      else longLink = v;
      continue;
    }
    const prefix = cstring(h.subarray(345, 500));
    const ustarName = cstring(h.subarray(0, 100));
    const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${ustarName}` : ustarName);
    out.push({
      path: cleanPath(rawName),
      type: TYPES[typeflag] ?? `other:${typeflag}`,
      mode: parseOctal(h.subarray(100, 108)) & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : parseOctal(h.subarray(108, 116)),
      gid: pax.gid !== undefined ? Number(pax.gid) : parseOctal(h.subarray(116, 124)),
      mtime: parseOctal(h.subarray(136, 148)),
      size,
      linkname: pax.linkpath ?? longLink ?? cstring(h.subarray(157, 257)),
      offset: dataOff,
      data,
    });
    pax = {};
    longName = undefined;
    longLink = undefined;
  }
  return out;
}
