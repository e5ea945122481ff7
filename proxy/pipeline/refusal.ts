// What a refused client is told. How much of the decision it may see is the one rule of
// proxy/explain/redact.ts (docs/acl.md "Explanations"); this file only words it.

import { formatExplanation } from '../../acl-lang/explain.js';
import type { Decision } from '../../acl-lang/index.js';
import type { RequestContext } from '../context/request-context.js';
import { disclosure, type ExplainSetup, GENERIC_DENIAL, shortDenial } from '../explain/redact.js';
import type { Refusal } from '../types.js';

export { type ExplainSetup, GENERIC_DENIAL, shortDenial };

export async function refusalFor(
  d: Decision,
  ctx: RequestContext,
  aclLoaded: boolean,
  explain: ExplainSetup,
): Promise<Refusal> {
  if (d.action === 'redirect' && d.redirect !== undefined) {
    return { reason: 'denied', message: `redirected to ${d.redirect}`, redirect: d.redirect };
  }
  if (explain.configured && explain.acl !== null) await ctx.prepare(explain.acl.attributes);
  const shown = disclosure(explain, ctx);
  switch (shown.show) {
    case 'full': {
      const full =
        d.policy === null && !aclLoaded ? shortDenial(d, aclLoaded) : formatExplanation(d);
      return { reason: 'denied', message: full };
    }
    case 'short':
      return { reason: 'denied', message: shortDenial(d, aclLoaded) };
    case 'withheld':
      return shown.help === undefined
        ? { reason: 'denied', message: GENERIC_DENIAL }
        : {
            reason: 'denied',
            message: `${GENERIC_DENIAL}: see ${shown.help}`,
            redirect: shown.help,
          };
  }
}
