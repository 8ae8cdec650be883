/** The words of status messages, events and progress lines, shared by the kinds' rules. */
import type { PodView } from './podView.ts';

/** `1 permit`, `3 pods`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `a, b, c and 4 more`: the first `shown` pod names. */
export function podNames(pods: readonly PodView[], shown = 3): string {
  const first = pods.slice(0, shown).map((p) => p.name);
  return pods.length > shown ? `${first.join(', ')} and ${pods.length - shown} more` : first.join(', ');
}
