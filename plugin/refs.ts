/**
 * `KIND/NAME` arguments of `kubectl konductor queue|holders`, as kubectl reads resource references: the
 * kind by its singular, plural or short name (case-insensitive), optionally with the group
 * (`semaphores.sync.konductor.io/x`).
 */
import { GROUP, KINDS, type PrimitiveKind } from '../api/constants.ts';
import { konductorError } from '../api/errors.ts';

export interface PrimitiveRef {
  kind: PrimitiveKind;
  name: string;
}

const NAMES = new Map<string, PrimitiveKind>();
for (const [kind, k] of Object.entries(KINDS) as [PrimitiveKind, (typeof KINDS)[PrimitiveKind]][]) {
  for (const n of [kind.toLowerCase(), k.plural, k.singular, ...k.shortNames]) NAMES.set(n, kind);
}

/** `semaphore|sem, lease|klease, ...`: each kind by its singular and short names, for usage messages. */
export const KIND_NAMES = Object.values(KINDS)
  .map((k) => `${k.singular}|${k.shortNames[0]}`)
  .join(', ');

/** The kind a name means (`sem`, `semaphores`, `Semaphore`, `leases.sync.konductor.io`), or undefined. */
export function kindOf(name: string): PrimitiveKind | undefined {
  const lower = name.toLowerCase();
  const bare = lower.endsWith(`.${GROUP}`) ? lower.slice(0, -GROUP.length - 1) : lower;
  return NAMES.get(bare);
}

export function parsePrimitiveRef(arg: string | undefined): PrimitiveRef {
  const slash = arg?.indexOf('/') ?? -1;
  const kind = arg && slash > 0 ? kindOf(arg.slice(0, slash)) : undefined;
  const name = arg && slash > 0 ? arg.slice(slash + 1) : '';
  if (!arg || !kind || !name) {
    throw konductorError('KDR_PLUGIN_BAD_REFERENCE', KIND_NAMES, arg ?? '');
  }
  return { kind, name };
}
