/**
 * A Dockerfile parser for the instructions konductor's Dockerfiles use: FROM (with `AS name`), ARG,
 * ENV, WORKDIR, COPY (`--from` only), RUN (shell and exec form, no flags), USER, ENTRYPOINT, CMD,
 * EXPOSE and LABEL. Anything else (ADD, VOLUME, SHELL, HEALTHCHECK, ONBUILD, STOPSIGNAL, flags such
 * as `RUN --mount` or `COPY --chown`, wildcards in COPY sources, another escape character) fails with
 * `KDR_IMAGES_DOCKERFILE_UNSUPPORTED` naming the line: an instruction is never skipped silently.
 * Variable substitution follows Docker's rules ($V, ${V}, ${V:-w}, ${V:+w}, `\$`). Pure.
 */
import { konductorError } from '../../api/errors.ts';

export type Instruction =
  | { kind: 'ARG'; line: number; name: string; default?: string }
  | { kind: 'ENV'; line: number; pairs: [string, string][] }
  | { kind: 'WORKDIR'; line: number; path: string }
  | { kind: 'COPY'; line: number; from?: string; sources: string[]; dest: string }
  | { kind: 'RUN'; line: number; argv?: string[]; shell?: string }
  | { kind: 'USER'; line: number; user: string }
  | { kind: 'ENTRYPOINT' | 'CMD'; line: number; argv: string[] }
  | { kind: 'EXPOSE'; line: number; ports: string[] }
  | { kind: 'LABEL'; line: number; pairs: [string, string][] };

export interface Stage {
  index: number;
  line: number;
  /** The FROM reference as written (variables not yet expanded). */
  from: string;
  name?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM (usable in FROM lines; re-declared with a bare `ARG X` inside a stage). */
  globalArgs: { name: string; default?: string }[];
  stages: Stage[];
}

const unsupported = (line: number, what: string) =>
  konductorError(
    'KDR_IMAGES_DOCKERFILE_UNSUPPORTED',
    `Dockerfile line ${line}: ${what} is not supported by devcluster/images (the Dockerfile interpreter ` +
      'implements FROM, ARG, ENV, WORKDIR, COPY [--from], RUN, USER, ENTRYPOINT, CMD, EXPOSE, LABEL)',
  );

const invalid = (line: number, what: string) =>
  konductorError('KDR_IMAGES_DOCKERFILE_INVALID', `Dockerfile line ${line}: ${what}`);

/**
 * Expands $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative}; `\$` is a literal `$`. Unknown
 * variables expand to ''. Quotes are kept (the caller splits words).
 */
export function expandVariables(text: string, vars: Record<string, string | undefined>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && text[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    if (c !== '$') {
      out += c;
      continue;
    }
    if (text[i + 1] === '{') {
      const end = text.indexOf('}', i + 2);
      if (end < 0) {
        out += c;
        continue;
      }
      const body = text.slice(i + 2, end);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?$/s.exec(body);
      if (!m) throw konductorError('KDR_IMAGES_DOCKERFILE_INVALID', `bad substitution \${${body}}`);
      const value = vars[m[1] as string];
      if (m[2] === '-') out += value ? value : expandVariables(m[3] ?? '', vars);
      else if (m[2] === '+') out += value ? expandVariables(m[3] ?? '', vars) : '';
      else out += value ?? '';
      i = end;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (!m) {
      out += c;
      continue;
    }
    out += vars[m[0]] ?? '';
    i += m[0].length;
  }
  return out;
}

/** Splits on unquoted whitespace, removing quotes and backslash escapes (as Docker does for words). */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw konductorError('KDR_IMAGES_DOCKERFILE_INVALID', `unterminated quote in: ${text}`);
  if (inWord) words.push(cur);
  return words;
}

/** A JSON array of strings (exec form), or undefined when the text is not one. */
function jsonArray(text: string): string[] | undefined {
  const t = text.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** `k=v k2="v 2"` pairs (ENV, LABEL), or the legacy `ENV k v w` form. */
function keyValuePairs(args: string, line: number, legacy: boolean): [string, string][] {
  const words = splitWords(args);
  if (words.length === 0) throw invalid(line, 'expected key=value');
  if (!words[0]?.includes('=')) {
    if (!legacy || words.length < 2) throw invalid(line, `expected key=value, got "${args}"`);
    const m = /^\s*(\S+)\s+(.*)$/s.exec(args) as RegExpExecArray;
    return [[m[1] as string, splitWords(m[2] as string).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalid(line, `expected key=value, got "${w}"`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** Logical lines: continuations joined, comments and empty lines dropped; parser directives checked. */
function logicalLines(text: string): { line: number; text: string }[] {
  const lines = text.split('\n');
  const out: { line: number; text: string }[] = [];
  let directives = true;
  let cur: { line: number; text: string } | undefined;
  for (const [i, raw] of lines.entries()) {
    const trimmed = raw.trim();
    if (directives) {
      const d = /^#\s*([a-zA-Z]+)\s*=\s*(.*)$/.exec(trimmed);
      if (d) {
        if (d[1]?.toLowerCase() === 'escape' && d[2]?.trim() !== '\\')
          throw unsupported(i + 1, `escape=${d[2]}`);
        continue;
      }
      directives = false;
    }
    if (trimmed.startsWith('#') || (!cur && !trimmed)) continue;
    const continued = /\\\s*$/.test(raw);
    const part = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (cur) cur.text += part;
    else cur = { line: i + 1, text: part };
    if (!continued) {
      out.push({ line: cur.line, text: cur.text.trim() });
      cur = undefined;
    }
  }
  if (cur?.text.trim()) out.push({ line: cur.line, text: cur.text.trim() });
  return out;
}

const SUPPORTED_FLAGS: Record<string, string[]> = { COPY: ['from'], FROM: [] };

/** Leading `--flag=value` words of an instruction's arguments. */
function takeFlags(
  kind: string,
  args: string,
  line: number,
): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!m) break;
    const name = m[1] as string;
    if (!(SUPPORTED_FLAGS[kind] ?? []).includes(name)) throw unsupported(line, `${kind} --${name}`);
    flags[name] = m[2] ?? '';
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

export function parseDockerfile(text: string): Dockerfile {
  const df: Dockerfile = { globalArgs: [], stages: [] };
  for (const { line, text: l } of logicalLines(text)) {
    const m = /^(\S+)\s*(.*)$/s.exec(l) as RegExpExecArray;
    const kind = (m[1] as string).toUpperCase();
    const args = (m[2] as string).trim();
    const stage = df.stages.at(-1);
    if (kind === 'FROM') {
      const { rest } = takeFlags('FROM', args, line);
      const w = splitWords(rest);
      if (!(w.length === 1 || (w.length === 3 && w[1]?.toUpperCase() === 'AS')))
        throw invalid(line, `FROM ${args}`);
      df.stages.push({
        index: df.stages.length,
        line,
        from: w[0] as string,
        ...(w[2] ? { name: w[2].toLowerCase() } : {}),
        instructions: [],
      });
      continue;
    }
    if (kind === 'ARG') {
      const am = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/s.exec(args);
      if (!am) throw invalid(line, `ARG ${args}`);
      const arg = {
        name: am[1] as string,
        ...(am[2] !== undefined ? { default: splitWords(am[2]).join(' ') } : {}),
      };
      if (stage) stage.instructions.push({ kind: 'ARG', line, ...arg });
      else df.globalArgs.push(arg);
      continue;
    }
    if (!stage) throw invalid(line, `${kind} before the first FROM`);
    stage.instructions.push(parseInstruction(kind, args, line));
  }
  if (df.stages.length === 0) throw konductorError('KDR_IMAGES_DOCKERFILE_INVALID', 'Dockerfile has no FROM');
  return df;
}

function parseInstruction(kind: string, args: string, line: number): Instruction {
  switch (kind) {
    case 'ENV':
      return { kind, line, pairs: keyValuePairs(args, line, true) };
    case 'LABEL':
      return { kind, line, pairs: keyValuePairs(args, line, false) };
    case 'WORKDIR':
      if (!args) throw invalid(line, 'WORKDIR needs a path');
      return { kind, line, path: splitWords(args).join(' ') };
    case 'USER':
      if (!args) throw invalid(line, 'USER needs a user');
      return { kind, line, user: args };
    case 'EXPOSE':
      return { kind, line, ports: splitWords(args) };
    case 'RUN': {
      if (args.startsWith('--')) throw unsupported(line, `RUN ${args.split(/\s/)[0]}`);
      const argv = jsonArray(args);
      return argv ? { kind, line, argv } : { kind, line, shell: args };
    }
    case 'ENTRYPOINT':
    case 'CMD': {
      const argv = jsonArray(args);
      return { kind, line, argv: argv ?? ['/bin/sh', '-c', args] };
    }
    case 'COPY': {
      const { flags, rest } = takeFlags('COPY', args, line);
      const words = jsonArray(rest) ?? splitWords(rest);
      if (words.length < 2) throw invalid(line, 'COPY needs a source and a destination');
      const sources = words.slice(0, -1);
      for (const s of sources)
        if (/[*?[]/.test(s)) throw unsupported(line, `a wildcard in COPY source "${s}"`);
      return {
        kind,
        line,
        ...(flags.from !== undefined ? { from: flags.from.toLowerCase() } : {}),
        sources,
        dest: words.at(-1) as string,
      };
    }
    default:
      throw unsupported(line, kind);
  }
}
