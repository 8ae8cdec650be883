/**
 * `kubectl-konductor`: the kubectl plugin (`kubectl konductor status|queue|why|holders`). Thin: the
 * commands are in plugin/. Installed by `npm install -g` (package.json bin) or as any kubectl plugin: an
 * executable named kubectl-konductor on PATH (docs/kubectl-plugin.md).
 */
import { runPlugin } from '../plugin/main.ts';

process.exitCode = await runPlugin(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
