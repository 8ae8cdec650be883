/**
 * `node scripts/krew-manifest.ts [OUT_DIR]`: packages the kubectl plugin for krew (default OUT_DIR dist/krew):
 *   kubectl-konductor.tar.gz   the bundle dist/kubectl-konductor.js as the executable `kubectl-konductor`
 *   konductor.yaml             a krew Plugin manifest (krew.googlecontainertools.github.com/v1alpha2) whose
 *                              platforms point at that archive, with its sha256
 * Install locally with `kubectl krew install --manifest=dist/krew/konductor.yaml
 * --archive=dist/krew/kubectl-konductor.tar.gz` (docs/kubectl-plugin.md). The plugin needs `node` (>= 22)
 * on PATH, like any npm-installed CLI; it is one file with no other dependency.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildPlugin, PLUGIN_BUNDLE, ROOT } from './build.ts';

export const KREW_ARCHIVE = 'kubectl-konductor.tar.gz';
export const KREW_MANIFEST = 'konductor.yaml';

/** Linux and macOS, amd64 and arm64: the archive is the same JavaScript for all of them. */
const PLATFORMS = [
  ['linux', 'amd64'],
  ['linux', 'arm64'],
  ['darwin', 'amd64'],
  ['darwin', 'arm64'],
] as const;

export function krewManifest(version: string, sha256: string, uri: string) {
  return {
    apiVersion: 'krew.googlecontainertools.github.com/v1alpha2',
    kind: 'Plugin',
    metadata: { name: 'konductor' },
    spec: {
      version: `v${version}`,
      homepage: 'https://github.com/logicIQ/konductor',
      shortDescription: "See konductor's queues: who holds, who waits, and why",
      description:
        "Shows konductor's Semaphores, Leases, Barriers and Gates (Kubernetes synchronization primitives): every " +
        'primitive with its capacity, use and oldest wait; the whole queue of one in grant order; why a pod waits ' +
        'and what must happen for it to start; the holders with their fencing tokens. Table, JSON or YAML; -w ' +
        'follows. Needs node (>= 22) on PATH.',
      caveats: 'kubectl konductor runs with Node.js: install node >= 22 if `node --version` fails.',
      platforms: PLATFORMS.map(([os, arch]) => ({
        selector: { matchLabels: { os, arch } },
        uri,
        sha256,
        files: [{ from: 'kubectl-konductor', to: '.' }],
        bin: 'kubectl-konductor',
      })),
    },
  };
}

/** Builds the plugin, writes the archive and the manifest into `outDir`; returns their paths and the sha256. */
export async function packageForKrew(
  outDir: string,
  uri?: string,
): Promise<{ archive: string; manifest: string; sha256: string }> {
  await buildPlugin();
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  mkdirSync(outDir, { recursive: true });
  const stage = mkdtempSync(join(tmpdir(), 'konductor-krew-'));
  try {
    copyFileSync(PLUGIN_BUNDLE, join(stage, 'kubectl-konductor'));
    const archive = join(outDir, KREW_ARCHIVE);
    // Reproducible: fixed order, owner and time, no gzip timestamp.
    const tarball = execFileSync('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '--mode=0755',
      '-C',
      stage,
      '-cf',
      '-',
      'kubectl-konductor',
    ]);
    writeFileSync(archive, execFileSync('gzip', ['-n', '-9'], { input: tarball }));
    const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');
    const manifest = join(outDir, KREW_MANIFEST);
    const source =
      uri ?? `https://github.com/logicIQ/konductor/releases/download/v${pkg.version}/${KREW_ARCHIVE}`;
    writeFileSync(manifest, stringify(krewManifest(pkg.version, sha256, source)));
    return { archive, manifest, sha256 };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? join(ROOT, 'dist', 'krew');
  packageForKrew(out).then(
    ({ archive, manifest, sha256 }) => console.log(`wrote ${archive} (sha256 ${sha256}) and ${manifest}`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
