/**
 * Everything the real node needs before it can start, none of which touches host state: the host
 * check, the Debian packages, the binaries (Go builds, cached) and the images (cached). `npm test`
 * runs it as a phase of its own so the build time shows apart from the tests; startRealCluster()
 * calls it too (a no-op when all is cached).
 */
import type { EnsureOptions } from '../binaries.ts';
import { ensureRealNodeBinaries, type RealNodeBinaries } from './binaries.ts';
import { assertHostUsable, type HostFacts, hostLimitNotes, inspectHost } from './hostCheck.ts';
import { ensureNodeImages, type NodeImages } from './nodeImages.ts';
import { ensureDebianPackages } from './packages.ts';

export interface PreparedRealNode {
  facts: HostFacts;
  binaries: RealNodeBinaries;
  images: NodeImages;
}

const defaultLog = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

export async function prepareRealNode(opts: EnsureOptions = {}): Promise<PreparedRealNode> {
  const log = opts.log ?? defaultLog;
  const facts = inspectHost();
  assertHostUsable(facts);
  for (const note of hostLimitNotes(facts)) log(note);
  await ensureDebianPackages(log);
  const binaries = await ensureRealNodeBinaries({ ...opts, log });
  const images = await ensureNodeImages(binaries.coredns, { cacheRoot: opts.cacheRoot, log });
  return { facts, binaries, images };
}
