// What a refused client is told (SPEC 4, 5.6). Without an explain ACL: the deciding
// policy's name, or "no policy matched". With one, evaluated over the same context:
// `allow` = the full explanation (failed requirements with the values seen), `deny` =
// a generic message, `redirect "URI"` = point the user to that help page.

import { formatExplanation } from '../../acl-lang/explain.js';
import { type CompiledAcl, type Decision, evaluate } from '../../acl-lang/index.js';
import type { RequestContext } from '../context/request-context.js';
import type { Refusal } from '../types.js';

export const GENERIC_DENIAL = 'access denied by policy';

/** The short form: names the deciding policy or says no policy matched. */
export function shortDenial(d: Decision, aclLoaded: boolean): string {
  if (d.policy !== null) return `denied by policy ${d.policy}`;
  return aclLoaded ? 'no policy matched' : 'no policy matched (no valid ACL is loaded)';
}

export interface ExplainSetup {
  /** An explain ACL is configured. */
  configured: boolean;
  /** Null when configured but not loadable: the generic message, the restrictive choice. */
  acl: CompiledAcl | null;
}

export async function refusalFor(
  d: Decision,
  ctx: RequestContext,
  aclLoaded: boolean,
  explain: ExplainSetup,
): Promise<Refusal> {
  if (d.action === 'redirect' && d.redirect !== undefined) {
    return { reason: 'denied', message: `redirected to ${d.redirect}`, redirect: d.redirect };
  }
  if (!explain.configured) return { reason: 'denied', message: shortDenial(d, aclLoaded) };
  if (explain.acl === null) return { reason: 'denied', message: GENERIC_DENIAL };
  await ctx.prepare(explain.acl.attributes);
  const e = evaluate(explain.acl, ctx, {});
  if (e.action === 'allow') {
    const full = d.policy === null && !aclLoaded ? shortDenial(d, aclLoaded) : formatExplanation(d);
    return { reason: 'denied', message: full };
  }
  if (e.action === 'redirect' && e.redirect !== undefined) {
    return {
      reason: 'denied',
      message: `${GENERIC_DENIAL}: see ${e.redirect}`,
      redirect: e.redirect,
    };
  }
  return { reason: 'denied', message: GENERIC_DENIAL };
}
