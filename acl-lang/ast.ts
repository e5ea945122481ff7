// The AST produced by grammar.peggy. Values are raw text; the checker validates them.

/** Source position: offsets into the file (line/column computed on demand). */
export interface Loc {
  offset: number;
  endOffset: number;
}

export interface StringLit {
  type: 'string';
  value: string;
  loc: Loc;
}
export interface IntLit {
  type: 'int';
  raw: string;
  loc: Loc;
}
export interface DurationLit {
  type: 'duration';
  raw: string;
  loc: Loc;
}
export interface BoolLit {
  type: 'bool';
  value: boolean;
  loc: Loc;
}
export type SetItem = StringLit | IntLit | DurationLit;
export interface SetLit {
  type: 'set';
  items: SetItem[];
  loc: Loc;
}
export interface FileSet {
  type: 'file';
  path: StringLit;
  loc: Loc;
}
export type Operand = StringLit | IntLit | DurationLit | BoolLit | SetLit | FileSet;

export type Operator = '==' | '!=' | '=~' | '!~' | '<' | '<=' | '>' | '>=' | 'in';

export interface Identifier {
  name: string;
  loc: Loc;
}

export interface Comparison {
  type: 'cmp';
  attr: Identifier;
  op: Operator;
  opLoc: Loc;
  value: Operand;
  loc: Loc;
}
export interface OrExpr {
  type: 'or';
  items: Expr[];
  loc: Loc;
}
export interface AndExpr {
  type: 'and';
  items: Expr[];
  loc: Loc;
}
export interface NotExpr {
  type: 'not';
  expr: Expr;
  loc: Loc;
}
export type Expr = OrExpr | AndExpr | NotExpr | Comparison;

export type ActionNode =
  | { type: 'allow'; loc: Loc; log?: StringLit }
  | { type: 'deny'; loc: Loc; template?: StringLit; log?: StringLit }
  | { type: 'redirect'; loc: Loc; uri: StringLit; log?: StringLit };

export type PolicyAttr =
  | { kind: 'when'; expr: Expr; loc: Loc }
  | { kind: 'require'; expr: Expr; loc: Loc }
  | { kind: 'action'; action: ActionNode; loc: Loc };

export type RouteAttr =
  | { kind: 'when'; expr: Expr; loc: Loc }
  | { kind: 'use'; backends: StringLit[]; listLoc: Loc; loc: Loc };

export interface PolicyBlock {
  kind: 'policy';
  name: string;
  nameLoc: Loc;
  attrs: PolicyAttr[];
  loc: Loc;
}
export interface RouteBlock {
  kind: 'route';
  name: string;
  nameLoc: Loc;
  attrs: RouteAttr[];
  loc: Loc;
}
export type Block = PolicyBlock | RouteBlock;

export interface AclFile {
  blocks: Block[];
}
