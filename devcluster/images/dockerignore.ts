/**
 * `.dockerignore` as Docker reads it (moby/patternmatcher): one pattern per line, `#` comments, `!`
 * exceptions, patterns cleaned and anchored at the context root, `*` and `?` within one path segment,
 * `**` across segments, `[...]` classes. A path is excluded when the last pattern matching it or one
 * of its parent directories is not an exception. Pure.
 */

interface Pattern {
  exclusion: boolean;
  regex: RegExp;
  source: string;
}

/** Go's filepath.Clean for the relative, slash-separated patterns used here. */
function clean(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out.join('/') || '.';
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more directories; a trailing `**` matches everything below.
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^') || cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i++;
      re += (pattern[i] as string).replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
    } else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`);
}

/** Parses the file's text into patterns (order kept: the last match decides). */
export function parseDockerignore(text: string): Pattern[] {
  const out: Pattern[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const exclusion = line.startsWith('!');
    if (exclusion) line = line.slice(1).trim();
    line = clean(line.replace(/^\/+/, ''));
    if (!line || line === '.') continue;
    out.push({ exclusion, regex: compile(line), source: raw.trim() });
  }
  return out;
}

/** Predicate on context-relative paths (`a/b/c`): true when the context leaves the path out. */
export function dockerignoreMatcher(text: string): (rel: string) => boolean {
  const patterns = parseDockerignore(text);
  return (rel: string) => {
    const path = clean(rel);
    if (path === '.') return false;
    const segments = path.split('/');
    const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const p of patterns) {
      if (excluded === !p.exclusion) continue; // cannot change the outcome
      if (prefixes.some((pre) => p.regex.test(pre))) excluded = !p.exclusion;
    }
    return excluded;
  };
}
