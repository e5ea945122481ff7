// The checked form of an ACL (HIR): names resolved, literals validated and typed,
// sets built. The compiler turns it into closures and indexes.
import type RE2 from 're2';
import type { Operator } from './ast.js';
import type { CidrSet, HostSet } from './sets.js';
import type { ActionKind, AttrType } from './types.js';

export type HOperand =
  | { k: 'str'; v: string }
  | { k: 'num'; v: number | bigint }
  | { k: 'bool'; v: boolean }
  | { k: 'regex'; re: RE2; source: string }
  | { k: 'hostset'; set: HostSet }
  | { k: 'cidrset'; set: CidrSet }
  | { k: 'strset'; set: ReadonlySet<string> }
  /** Numbers by exact canonical text (numKey), so 64-bit integers keep their precision. */
  | { k: 'numset'; set: ReadonlySet<string> };

export interface HCmp {
  kind: 'cmp';
  attr: string;
  /** Declared type when the attribute is known; undefined = typed at run time. */
  type: AttrType | undefined;
  op: Operator;
  operand: HOperand;
  /** Source text, for explanations. */
  text: string;
}

export type HExpr =
  | HCmp
  | { kind: 'and'; items: HExpr[] }
  | { kind: 'or'; items: HExpr[] }
  | { kind: 'not'; expr: HExpr };

export interface HClause {
  expr: HExpr;
  text: string;
}

export interface HPolicy {
  name: string;
  when?: HClause;
  require?: HClause;
  action: ActionKind;
  redirect?: string;
  explainTemplate?: string;
  tags: string[];
}

export interface HRoute {
  name: string;
  when?: HClause;
  backends: string[];
}

export interface Hir {
  policies: HPolicy[];
  routes: HRoute[];
  /** Every attribute name the rules reference. */
  attributes: Set<string>;
}

/** Canonical text of a number for set membership: integers exactly, others as JS text. */
export function numKey(n: number | bigint): string {
  if (typeof n === 'bigint') return n.toString();
  return Number.isInteger(n) ? BigInt(n).toString() : String(n);
}
