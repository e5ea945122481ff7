// The checked ACL (HIR) as plain data, so that a worker thread can parse and check an
// ACL and hand the result over (docs/operations.md "Reloads"): regexes travel as their
// source, host and CIDR sets as their tables; everything else structured-clones as is.
// Recursion follows the expression nesting, which the parser bounds (MAX_NESTING).

import type { HClause, HExpr, HOperand, HPolicy, HRoute } from './hir.js';
import { re2 } from './re2.js';
import { type CidrParts, CidrSet, HostSet } from './sets.js';

type PlainOperand =
  | Exclude<HOperand, { k: 'regex' } | { k: 'hostset' } | { k: 'cidrset' }>
  | { k: 'regex'; source: string }
  | { k: 'hostset'; exact: Set<string>; withApex: Set<string>; subOnly: Set<string> }
  | { k: 'cidrset'; parts: CidrParts };

type PlainExpr =
  | { kind: 'cmp'; operand: PlainOperand; [k: string]: unknown }
  | { kind: 'and' | 'or'; items: PlainExpr[] }
  | { kind: 'not'; expr: PlainExpr };

interface PlainClause {
  expr: PlainExpr;
  text: string;
}

export type PlainPolicy = Omit<HPolicy, 'when' | 'require'> & {
  when?: PlainClause;
  require?: PlainClause;
};
export type PlainRoute = Omit<HRoute, 'when'> & { when?: PlainClause };

function plainOperand(o: HOperand): PlainOperand {
  switch (o.k) {
    case 'regex':
      return { k: 'regex', source: o.source };
    case 'hostset':
      return { k: 'hostset', exact: o.set.exact, withApex: o.set.withApex, subOnly: o.set.subOnly };
    case 'cidrset':
      return { k: 'cidrset', parts: o.set.toParts() };
    default:
      return o;
  }
}

function liveOperand(o: PlainOperand): HOperand {
  switch (o.k) {
    case 'regex':
      // Same flags as the checker (checker.ts): it compiled there, it compiles here.
      return { k: 'regex', re: new (re2())(o.source, 'u'), source: o.source };
    case 'hostset': {
      const set = new HostSet();
      for (const h of o.exact) set.exact.add(h);
      for (const h of o.withApex) set.withApex.add(h);
      for (const h of o.subOnly) set.subOnly.add(h);
      return { k: 'hostset', set };
    }
    case 'cidrset':
      return { k: 'cidrset', set: CidrSet.fromParts(o.parts) };
    default:
      return o;
  }
}

function plainExpr(e: HExpr): PlainExpr {
  switch (e.kind) {
    case 'cmp':
      return { ...e, operand: plainOperand(e.operand) };
    case 'not':
      return { kind: 'not', expr: plainExpr(e.expr) };
    default:
      return { kind: e.kind, items: e.items.map(plainExpr) };
  }
}

/** In place: the deserialised objects become the HIR (half the allocation of a copy). */
function liveExpr(e: PlainExpr): HExpr {
  switch (e.kind) {
    case 'cmp':
      (e as { operand: PlainOperand | HOperand }).operand = liveOperand(e.operand);
      break;
    case 'not':
      liveExpr(e.expr);
      break;
    default:
      for (const i of e.items) liveExpr(i);
  }
  return e as unknown as HExpr;
}

const plainClause = (c: HClause | undefined) =>
  c === undefined ? undefined : { expr: plainExpr(c.expr), text: c.text };
const liveClause = (c: PlainClause | undefined): void => {
  if (c !== undefined) liveExpr(c.expr);
};

/** Drops undefined members (an absent clause stays absent, as in the HIR). */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

export function plainPolicy(p: HPolicy): PlainPolicy {
  return defined({ ...p, when: plainClause(p.when), require: plainClause(p.require) });
}

/** The deserialised policy, made live in place. */
export function livePolicy(p: PlainPolicy): HPolicy {
  liveClause(p.when);
  liveClause(p.require);
  return p as unknown as HPolicy;
}

export function plainRoute(r: HRoute): PlainRoute {
  return defined({ ...r, when: plainClause(r.when) });
}

export function liveRoute(r: PlainRoute): HRoute {
  liveClause(r.when);
  return r as unknown as HRoute;
}
