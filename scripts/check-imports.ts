/**
 * `npm run lint` (last step): fails with every import that crosses a layer boundary (scripts/importBoundaries.ts,
 * docs/architecture.md "Layers"). Reads the TypeScript files of the repository with TypeScript's own
 * pre-processor (static and dynamic imports, re-exports), outside node_modules and dist.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';
import { ROOT } from './build.ts';
import { checkImports, type SourceImports } from './importBoundaries.ts';

const SKIP = new Set(['node_modules', 'dist', '.git', '.tmp']);

function* typeScriptFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* typeScriptFiles(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

function importsOf(path: string): SourceImports {
  const text = readFileSync(path, 'utf8');
  const lineOf = (pos: number) => text.slice(0, pos).split('\n').length;
  const info = ts.preProcessFile(text, true, true);
  return {
    path: relative(ROOT, path).split(sep).join('/'),
    imports: info.importedFiles.map((f) => ({ specifier: f.fileName, line: lineOf(f.pos) })),
  };
}

const violations = checkImports([...typeScriptFiles(ROOT)].map(importsOf));
for (const v of violations)
  process.stderr.write(`${v.path}:${v.line}: imports '${v.specifier}': ${v.message}\n`);
if (violations.length > 0) {
  process.stderr.write(
    `${violations.length} import(s) cross a layer boundary (docs/architecture.md, "Layers")\n`,
  );
  process.exitCode = 1;
}
