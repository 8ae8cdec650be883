/**
 * The kubectl plugin as users install it: `npm pack` + `npm install -g` of the tarball puts an executable
 * `kubectl-konductor` on PATH that the real kubectl finds (`kubectl plugin list`, `kubectl konductor --help`);
 * and the krew package (scripts/krew-manifest.ts): a manifest whose sha256 is the archive's, an archive
 * holding the executable.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureK8sBinaries } from '../../devcluster/binaries.ts';
import { ROOT } from '../../scripts/build.ts';
import { KREW_ARCHIVE, packageForKrew } from '../../scripts/krew-manifest.ts';

const dir = mkdtempSync(join(tmpdir(), 'konductor-plugin-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(cmd, args, {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });

describe('npm install -g', () => {
  it('installs kubectl-konductor, which kubectl finds as the konductor plugin', async () => {
    run('npm', ['pack', '--silent', '--pack-destination', dir]);
    const tarball = join(dir, 'konductor-0.1.0.tgz');
    const prefix = join(dir, 'global');
    run('npm', [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      tarball,
    ]);
    const bin = join(prefix, 'bin');
    expect(run(join(bin, 'kubectl-konductor'), ['--version']).trim()).toBe('kubectl-konductor 0.1.0');
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const { kubectl } = await ensureK8sBinaries();
    expect(run(kubectl, ['plugin', 'list'], env)).toContain(join(bin, 'kubectl-konductor'));
    const help = run(kubectl, ['konductor', '--help'], env);
    expect(help).toContain('kubectl konductor why POD');
  }, 180_000);
});

describe('krew', () => {
  it('packages the plugin: a manifest with the archive’s sha256 for every platform, the executable inside', async () => {
    const out = join(dir, 'krew');
    const { archive, manifest, sha256 } = await packageForKrew(out, `file://${join(out, KREW_ARCHIVE)}`);
    expect(createHash('sha256').update(readFileSync(archive)).digest('hex')).toBe(sha256);
    const m = parse(readFileSync(manifest, 'utf8'));
    expect(m).toMatchObject({
      apiVersion: 'krew.googlecontainertools.github.com/v1alpha2',
      kind: 'Plugin',
      metadata: { name: 'konductor' },
      spec: { version: 'v0.1.0' },
    });
    expect(m.spec.shortDescription.length).toBeLessThanOrEqual(60);
    expect(
      m.spec.platforms.map(
        (p: { selector: { matchLabels: Record<string, string> } }) => p.selector.matchLabels,
      ),
    ).toContainEqual({
      os: 'linux',
      arch: 'amd64',
    });
    for (const p of m.spec.platforms)
      expect(p).toMatchObject({
        sha256,
        bin: 'kubectl-konductor',
        files: [{ from: 'kubectl-konductor', to: '.' }],
      });
    const x = join(dir, 'krew-x');
    run('mkdir', ['-p', x]);
    run('tar', ['-xzf', archive, '-C', x]);
    expect(statSync(join(x, 'kubectl-konductor')).mode & 0o111).not.toBe(0);
    expect(run(join(x, 'kubectl-konductor'), ['--version']).trim()).toBe('kubectl-konductor 0.1.0');
    // reproducible: the same sources give the same archive
    expect((await packageForKrew(join(dir, 'krew2'))).sha256).toBe(sha256);
  }, 120_000);
});
