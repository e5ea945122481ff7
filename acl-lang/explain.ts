// Human-readable explanation of a decision: the deciding policy and every recorded
// failed requirement with the actual values seen (docs/acl.md, "Explanations"). How much
// of it a user may see is decided in one place: proxy/explain/redact.ts.
import { MISSING_NOTE } from './evaluate.js';
import type { AttrValue, Decision } from './types.js';

export function formatValue(v: AttrValue | undefined): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return `[${v.map((s) => JSON.stringify(s)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

export function formatExplanation(d: Decision): string {
  const lines = [d.reason];
  for (const f of d.failed) {
    lines.push(`  policy ${f.policy}: ${f.clause} ${f.expression} — ${f.result}`);
    for (const c of f.comparisons) {
      lines.push(`    ${c.text}: ${c.result} (${c.attribute} = ${formatValue(c.actual)})`);
    }
  }
  if (d.missing.length) lines.push(`  missing attributes: ${d.missing.join(', ')}`);
  return lines.join('\n');
}

const DONE: Record<Decision['action'], string> = {
  allow: 'allowed',
  deny: 'denied',
  redirect: 'redirected',
};

/**
 * The explanation without its details: `denied by policy NAME` (allowed, redirected), or
 * the reason when no policy decided. Never a failed requirement, a value seen or the
 * name of a missing attribute.
 */
export function shortReason(d: Decision): string {
  if (d.policy !== null) return `${DONE[d.action]} by policy ${d.policy}`;
  const cut = d.reason.indexOf(MISSING_NOTE);
  return cut < 0 ? d.reason : d.reason.slice(0, cut);
}
