// What a user may see of an ACL decision: one rule for every place that shows one — a
// refused client's answer (pipeline/refusal.ts), `portailctl explain` (daemon/explain.ts)
// and `portailctl why` (daemon/control.ts). docs/acl.md "Explanations" and
// docs/control.md "Explain"; where they could be read two ways, the stricter reading:
//
// - no explain ACL configured: the short form, the decision and the deciding policy's
//   name (or "no policy matched"); no failed requirement, value seen or missing
//   attribute;
// - an explain ACL configured but not loadable: nothing beyond the decision;
// - the explain ACL over the request's context: `allow` = everything, `deny` = nothing
//   beyond the decision, `redirect "URI"` = nothing beyond the decision, and that URI.
//
// The control plane adds two things (daemon/explain.ts): root sees everything (it can
// read the ACL files), and the explain ACL judges the caller, not the user the caller
// asks about (explainAclContext).
import {
  type AclContext,
  type AttrValue,
  type CompiledAcl,
  type Decision,
  evaluate,
  shortReason,
} from '../../acl-lang/index.js';

export interface ExplainSetup {
  /** An explain ACL is configured. */
  configured: boolean;
  /** Null when configured but not loadable: nothing beyond the decision. */
  acl: CompiledAcl | null;
}

/** How much of a decision may be shown. */
export type Disclosure =
  | { show: 'full' }
  | { show: 'short' }
  | { show: 'withheld' /** The explain ACL's help page. */; help?: string };

/** The rule. `ctx` must hold the attributes the explain ACL names (RequestContext.prepare). */
export function disclosure(explain: ExplainSetup, ctx: AclContext): Disclosure {
  if (!explain.configured) return { show: 'short' };
  if (explain.acl === null) return { show: 'withheld' };
  const e = evaluate(explain.acl, ctx, {});
  if (e.action === 'allow') return { show: 'full' };
  if (e.action === 'redirect' && e.redirect !== undefined)
    return { show: 'withheld', help: e.redirect };
  return { show: 'withheld' };
}

/** What a refused client is told when the explain ACL withholds the details. */
export const GENERIC_DENIAL = 'access denied by policy';

/** The short form of a refusal: names the deciding policy or says no policy matched. */
export function shortDenial(d: Decision, aclLoaded: boolean): string {
  if (d.policy !== null || aclLoaded) return shortReason(d);
  return 'no policy matched (no valid ACL is loaded)';
}

/** Facts about the request asked about, not about who asks: the explain ACL may use them. */
const REQUEST_FACTS = ['host', 'port', 'dst.ip', 'time.hour', 'time.weekday'];

/**
 * The context the explain ACL judges a control-plane caller by: the request's own facts
 * (host, port, address, time), the caller's uid and user name from the socket's peer
 * credentials, and nothing the caller merely claims (`--user`, `--uid`, `--attr`): a
 * rule such as `allow when client.user == "alice"` must not show alice's details to
 * whoever asks about alice. What is missing is unknown, which withholds.
 */
export function explainAclContext(
  request: ReadonlyMap<string, AttrValue>,
  caller: { uid: number; user?: string } | null,
): AclContext {
  const values = new Map<string, AttrValue>();
  for (const name of REQUEST_FACTS) {
    const v = request.get(name);
    if (v !== undefined) values.set(name, v);
  }
  if (caller !== null) {
    values.set('client.uid', caller.uid);
    if (caller.user !== undefined) values.set('client.user', caller.user);
  }
  return { get: (n) => values.get(n) };
}
