/**
 * Removing the real node's iptables state: the KUBE-* chains (kube-proxy, the kubelet's canaries)
 * and the bridge CNI's masquerade chains (CNI-<hash>, found by the comment that names our network).
 * The rules of other software are kept: a table is rewritten from `iptables-save` minus our chains
 * and the rules that jump to them (`stripNodeRules`, pure), and loaded back with `iptables-restore`.
 */

import { exec } from '../exec.ts';
import { CNI_NETWORK } from './layout.ts';

export interface StripResult {
  text: string;
  /** Chains removed, as `table/chain`. */
  removedChains: string[];
  removedRules: number;
}

const BUILTIN = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING']);

function jumpTarget(rule: string): string | undefined {
  const m = / -[jg] (\S+)/.exec(rule);
  return m?.[1];
}

function ruleChain(rule: string): string {
  return rule.split(' ')[1] ?? '';
}

/**
 * `iptables-save` output minus the node's chains (KUBE-*, and every chain a rule commented with our
 * CNI network name belongs to or jumps to) and every rule in them, jumping to them or carrying our
 * comment. Other chains and rules stay byte for byte.
 */
export function stripNodeRules(save: string, network = CNI_NETWORK): StripResult {
  const out: string[] = [];
  const removedChains: string[] = [];
  let removedRules = 0;
  const marker = `name: \\"${network}\\"`;
  const lines = save.split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    if (!line.startsWith('*')) {
      out.push(line);
      i++;
      continue;
    }
    const table = line.slice(1);
    const block: string[] = [];
    i++;
    while (i < lines.length && lines[i] !== 'COMMIT') block.push(lines[i++] ?? '');
    const ours = new Set<string>();
    for (const l of block) {
      if (l.startsWith(':')) {
        const name = l.slice(1).split(' ')[0] ?? '';
        if (name.startsWith('KUBE-')) ours.add(name);
      } else if (l.startsWith('-A ') && l.includes(marker)) {
        const chain = ruleChain(l);
        if (!BUILTIN.has(chain)) ours.add(chain);
        const target = jumpTarget(l);
        if (target?.startsWith('CNI-')) ours.add(target);
      }
    }
    out.push(line);
    for (const l of block) {
      if (l.startsWith(':')) {
        const name = l.slice(1).split(' ')[0] ?? '';
        if (ours.has(name)) {
          removedChains.push(`${table}/${name}`);
          continue;
        }
      } else if (l.startsWith('-A ')) {
        const target = jumpTarget(l);
        if (ours.has(ruleChain(l)) || (target && ours.has(target)) || l.includes(marker)) {
          removedRules++;
          continue;
        }
      }
      out.push(l);
    }
    if (i < lines.length) out.push(lines[i++] ?? ''); // COMMIT
  }
  return { text: out.join('\n'), removedChains, removedRules };
}

/** The node's chains that are still present (for the leftovers check), as `iptables:table/chain`. */
export async function nodeChains(): Promise<string[]> {
  const found: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    const save = await exec(`${family}-save`, []);
    if (save.code !== 0) continue;
    for (const c of stripNodeRules(save.stdout).removedChains) found.push(`${family}:${c}`);
  }
  return found;
}

/** Removes the node's chains and rules from both families; returns what was removed. */
export async function removeNodeRules(log: (l: string) => void): Promise<string[]> {
  const removed: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    const save = await exec(`${family}-save`, []);
    if (save.code !== 0) continue; // not installed: nothing of ours can be there
    const stripped = stripNodeRules(save.stdout);
    if (!stripped.removedChains.length && !stripped.removedRules) continue;
    const res = await exec(`${family}-restore`, [], { input: stripped.text });
    if (res.code !== 0) {
      log(`cleanup: ${family}-restore failed (exit ${res.code}): ${res.stderr}`);
      continue;
    }
    removed.push(...stripped.removedChains.map((c) => `${family}:${c}`));
  }
  return removed;
}
