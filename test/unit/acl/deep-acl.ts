// Generators of pathological ACLs (docs/security.md "ACL files and reloads"): every
// construct of the grammar that recurses, nested `levels` deep, and a flat chain. The
// deep part of each source starts on line 2, column 8 (after `  when `) or, for
// `require`, column 11; `deepestAt` says where the first level past the limit is.

export interface DeepAcl {
  name: string;
  source: string;
}

/** One policy whose `when` (or `require`) is `expr`, then a catch-all. */
function policy(expr: string, clause: 'when' | 'require' = 'when'): string {
  return `policy deep {\n  ${clause} ${expr}\n  action allow\n}\npolicy rest { action deny }\n`;
}

/** Every recursive construct: parentheses, `not`, both mixed, inside `and`/`or`, braces. */
export function deepAcls(levels: number): DeepAcl[] {
  const open = (s: string) => s.repeat(levels);
  return [
    { name: 'parentheses', source: policy(`${open('(')}port == 1${open(')')}`) },
    { name: 'not', source: policy(`${open('not ')}port == 1`) },
    { name: 'not (', source: policy(`${open('not (')}port == 1${open(')')}`) },
    {
      name: 'and/or right-nested',
      source: policy(`${open('port == 1 and (port == 2 or (')}port == 3${open('))')}`),
    },
    {
      name: 'braced clause, require',
      source: policy(`{ ${open('(')}port == 1${open(')')} }`, 'require'),
    },
    {
      name: 'route when',
      source: `route r {\n  when ${open('(')}port == 1${open(')')}\n  use ["direct"]\n}\npolicy rest { action deny }\n`,
    },
    // An unclosed nest: the parser would recurse as deep before failing.
    { name: 'unclosed', source: policy(`${open('(')}port == 1`) },
  ];
}

/** `a == 1 or a == 2 or … ` n times, flat: valid, and must not recurse per item. */
export function longChain(n: number, op: 'or' | 'and' = 'or'): string {
  const items: string[] = [];
  for (let i = 0; i < n; i++) items.push(`port == ${i}`);
  return policy(items.join(` ${op} `));
}
