/**
 * `npm test`: builds (when scripts/build.ts exists), makes sure the Kubernetes binaries are there
 * (building them once with Go, with progress), runs both vitest projects (unit, integration), and
 * ends with the plain line `N passed, N failed`. Exits non-zero on any failure.
 * Extra arguments go to vitest: `npm test -- test/integration/cluster.test.ts`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureGoTools, ensureK8sBinaries } from '../devcluster/binaries.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

interface VitestJson {
  numPassedTests?: number;
  numFailedTests?: number;
  numPendingTests?: number;
  numTodoTests?: number;
  numFailedTestSuites?: number;
  success?: boolean;
}

async function main(): Promise<number> {
  const started = Date.now();
  if (existsSync(join(ROOT, 'scripts', 'build.ts'))) {
    process.stdout.write('== npm run build\n');
    const code = await run('npm', ['run', '--silent', 'build']);
    if (code !== 0) {
      process.stdout.write('build failed\n0 passed, 1 failed\n');
      return code;
    }
  }

  process.stdout.write('== Kubernetes binaries\n');
  const t = Date.now();
  try {
    const bins = await ensureK8sBinaries();
    process.stdout.write(`ready in ${((Date.now() - t) / 1000).toFixed(1)} s (${bins.source})\n`);
    if (!process.env.KONDUCTOR_CHART_TOOLS_BIN) {
      process.stdout.write('== chart tools (helm, kubeconform, models-schema)\n');
      const c = Date.now();
      await ensureGoTools('chart-tools');
      process.stdout.write(`ready in ${((Date.now() - c) / 1000).toFixed(1)} s\n`);
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.stdout.write('0 passed, 1 failed\n');
    return 1;
  }

  process.stdout.write('== vitest (unit + integration)\n');
  const outDir = mkdtempSync(join(tmpdir(), 'konductor-vitest-'));
  const jsonPath = join(outDir, 'results.json');
  const vitest = join(ROOT, 'node_modules', '.bin', 'vitest');
  const code = await run(vitest, [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${jsonPath}`,
    ...process.argv.slice(2),
  ]);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    const res = JSON.parse(readFileSync(jsonPath, 'utf8')) as VitestJson;
    passed = res.numPassedTests ?? 0;
    failed = res.numFailedTests ?? 0;
    skipped = (res.numPendingTests ?? 0) + (res.numTodoTests ?? 0);
    // A file that fails to load (or a failing hook) has no failed test but fails the run.
    if (failed === 0 && (code !== 0 || (res.numFailedTestSuites ?? 0) > 0))
      failed = res.numFailedTestSuites || 1;
  } catch {
    failed = code === 0 ? 0 : 1; // no report: vitest itself failed (config error, global setup)
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  const secs = Math.round((Date.now() - started) / 1000);
  process.stdout.write(
    `\n(${secs} s${skipped ? `, ${skipped} skipped` : ''})\n${passed} passed, ${failed} failed\n`,
  );
  return failed > 0 || code !== 0 ? code || 1 : 0;
}

process.exitCode = await main();
