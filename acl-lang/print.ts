// AST → canonical source text. Parsing the output gives back the same AST (modulo
// positions): the property tests rely on it, and it formats ACLs for humans.
import type { AclFile, ActionNode, Block, Expr, Operand, SetItem, StringLit } from './ast.js';

const str = (s: StringLit) => `"${s.value}"`;

function item(i: SetItem): string {
  return i.type === 'string' ? str(i) : i.raw;
}

function operand(o: Operand): string {
  switch (o.type) {
    case 'string':
      return str(o);
    case 'int':
    case 'duration':
      return o.raw;
    case 'bool':
      return String(o.value);
    case 'set':
      return `[${o.items.map(item).join(', ')}]`;
    case 'file':
      return `file(${str(o.path)})`;
  }
}

const PRECEDENCE = { or: 1, and: 2, not: 3, cmp: 4 } as const;

export function printExpr(e: Expr, parent = 0): string {
  let text: string;
  switch (e.type) {
    case 'cmp':
      text = `${e.attr.name} ${e.op} ${operand(e.value)}`;
      break;
    case 'not':
      text = `not ${printExpr(e.expr, PRECEDENCE.not)}`;
      break;
    default:
      // Children of the same operator are parenthesised so that nesting survives a
      // round trip (the parser flattens `a and b and c` into one node).
      text = e.items.map((i) => printExpr(i, PRECEDENCE[e.type] + 0.5)).join(` ${e.type} `);
  }
  return PRECEDENCE[e.type] < parent ? `(${text})` : text;
}

function action(a: ActionNode): string {
  let s: string = a.type;
  if (a.type === 'deny' && a.template) s += ` explain-template=${str(a.template)}`;
  if (a.type === 'redirect') s += ` ${str(a.uri)}`;
  if (a.log) s += ` log ${str(a.log)}`;
  return s;
}

function block(b: Block): string {
  const lines = [`${b.kind} ${b.name} {`];
  for (const a of b.attrs) {
    if (a.kind === 'when' || a.kind === 'require') lines.push(`  ${a.kind} ${printExpr(a.expr)}`);
    else if (a.kind === 'action') lines.push(`  action ${action(a.action)}`);
    else lines.push(`  use [${a.backends.map(str).join(', ')}]`);
  }
  lines.push('}');
  return lines.join('\n');
}

export function printAcl(ast: AclFile): string {
  return `${ast.blocks.map(block).join('\n\n')}\n`;
}
