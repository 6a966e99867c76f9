import type { Caps } from '../contract.js';

/** Two caps match when their types are equal and every param both name is equal (or `*` on either side). */
export function capsMatch(a: Caps, b: Caps): boolean {
  if (a.type !== b.type) return false;
  if (a.params === undefined || b.params === undefined) return true;
  for (const [key, value] of Object.entries(a.params)) {
    const other = b.params[key];
    if (other !== undefined && value !== '*' && other !== '*' && other !== value) return false;
  }
  return true;
}

/** The first pair (produced, accepted) that matches, or undefined when the neighbours cannot be linked. */
export function negotiate(produces: readonly Caps[], accepts: readonly Caps[]): { produced: Caps; accepted: Caps } | undefined {
  for (const accepted of accepts) {
    for (const produced of produces) if (capsMatch(produced, accepted)) return { produced, accepted };
  }
  return undefined;
}

export function formatCaps(caps: readonly Caps[]): string {
  return caps
    .map((c) => (c.params === undefined ? c.type : `${c.type}(${Object.entries(c.params).map(([k, v]) => `${k}=${String(v)}`).join(',')})`))
    .join(' | ');
}
