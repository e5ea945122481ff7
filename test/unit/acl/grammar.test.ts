// The ACL grammar and the load-time checks (docs/acl.md, "Blocks" to "List files", "Error
// messages"): every construct parses to the expected tree, the upstream-compatible corpus
// behaves as upstream, and every load-time error is reported at its exact line and column,
// all of a file's at once.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ActionNode, Block, Expr, Operand, PolicyBlock } from '../../../acl-lang/ast.js';
import {
  type Diagnostic,
  formatDiagnostic,
  formatDiagnostics,
  loadAclFile,
  parseAcl,
} from '../../../acl-lang/index.js';
import { BACKENDS, compile, diagnose, positions } from './helpers.js';

// ---- helpers ------------------------------------------------------------------------

function parseOk(source: string): Block[] {
  const r = parseAcl(source, 'f.acl');
  assert.deepEqual(r.diagnostics.map(formatDiagnostic), [], `syntax errors in:\n${source}`);
  return r.ast.blocks;
}

function operandText(o: Operand): string {
  switch (o.type) {
    case 'string':
      return `"${o.value}"`;
    case 'int':
    case 'duration':
      return o.raw;
    case 'bool':
      return String(o.value);
    case 'set':
      return `[${o.items.map((i) => (i.type === 'string' ? `"${i.value}"` : i.raw)).join(', ')}]`;
    case 'file':
      return `file("${o.path.value}")`;
  }
}

/** S-expression of a parsed expression, to compare trees in one line. */
function sx(e: Expr): string {
  switch (e.type) {
    case 'cmp':
      return `${e.attr.name} ${e.op} ${operandText(e.value)}`;
    case 'not':
      return `(not ${sx(e.expr)})`;
    default:
      return `(${e.type} ${e.items.map(sx).join(' ')})`;
  }
}

/** The tree of `EXPR` used as a policy's `when`. */
function whenTree(expr: string): string {
  const [p] = parseOk(`policy p { when ${expr} action allow }`) as PolicyBlock[];
  const w = p.attrs.find((a) => a.kind === 'when');
  assert.ok(w && w.kind === 'when');
  return sx(w.expr);
}

function actionOf(source: string): ActionNode {
  const [p] = parseOk(source) as PolicyBlock[];
  const a = p.attrs.find((x) => x.kind === 'action');
  assert.ok(a && a.kind === 'action');
  return a.action;
}

function attrKinds(b: Block): string[] {
  return b.attrs.map((a) => a.kind);
}

const errorsOf = (ds: readonly Diagnostic[]) => ds.filter((d) => d.severity === 'error');

function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portail-acl-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

// ---- constructs ---------------------------------------------------------------------

describe('grammar: blocks and attributes', () => {
  test('policy with when, require and action; route with when and use', () => {
    const blocks = parseOk(`
route corp {
  when host =~ "\\.corp\\.example\\.com$"
  use ["par01", "par02"]
}
policy eng_git {
  when host == "git.corp.example.com"
  require user.groups in ["eng", "ops"] and device.trust_level >= 2
  action allow
}
`);
    assert.deepEqual(
      blocks.map((b) => [b.kind, b.name, attrKinds(b)]),
      [
        ['route', 'corp', ['when', 'use']],
        ['policy', 'eng_git', ['when', 'require', 'action']],
      ],
    );
    const use = blocks[0].attrs[1];
    assert.ok(use.kind === 'use');
    assert.deepEqual(
      use.backends.map((s) => s.value),
      ['par01', 'par02'],
    );
  });

  test('policy with only an action, route with only use', () => {
    const blocks = parseOk('policy p { action deny }\nroute r { use ["par01"] }');
    assert.deepEqual(blocks.map(attrKinds), [['action'], ['use']]);
  });

  test('block names may hold digits, `_`, `-` and `.`', () => {
    const blocks = parseOk('policy eng-git.v2_1 { action allow }\nroute 01r { use ["par01"] }');
    assert.deepEqual(
      blocks.map((b) => b.name),
      ['eng-git.v2_1', '01r'],
    );
  });

  test('block names in any script, `-` in attribute names, strings across lines (upstream)', () => {
    const blocks = parseOk(
      'policy accès_réseau-2 {\n  when user.trust-level >= 3 and path == "/a\n/b"\n  action allow\n}\nroute Ωmega { use ["par01"] }',
    );
    assert.deepEqual(
      blocks.map((b) => b.name),
      ['accès_réseau-2', 'Ωmega'],
    );
    assert.equal(
      whenTree('user.trust-level >= 3 and path == "/a\n/b"'),
      '(and user.trust-level >= 3 path == "/a\n/b")',
    );
    // `-` never starts a name: `-1` is still a number, and `not-x` is a name, not `not`.
    assert.equal(whenTree('port > -1'), 'port > -1');
    assert.equal(whenTree('not-x == 1'), 'not-x == 1');
    // A name unknown to portail stays what any unknown attribute is: a warning at load.
    const ds = diagnose('policy p { when user.trust-level >= 3 action allow }');
    assert.deepEqual(
      ds.map((d) => `${d.severity} ${d.message.split(' (')[0]}`),
      ['warning unknown attribute user.trust-level'],
    );
  });

  test('braces around when, require, action and use, spanning several lines', () => {
    const blocks = parseOk(`
policy finance {
  when {
    host in [".finance.example.com"]
    and proxy.cmd == "connect"
  }
  require {
    user.groups in ["finance"]
    or device.trust_level >= 3
  }
  action {
    deny explain-template="explain/finance.html"
    log "finance"
  }
}
route r {
  when {
    port == 443
  }
  use {
    [
      "par01",
      "par02",
    ]
  }
}
`);
    const [p, r] = blocks;
    assert.ok(p.kind === 'policy' && r.kind === 'route');
    const [w, q, a] = p.attrs;
    assert.ok(w.kind === 'when' && q.kind === 'require' && a.kind === 'action');
    assert.equal(sx(w.expr), '(and host in [".finance.example.com"] proxy.cmd == "connect")');
    assert.equal(sx(q.expr), '(or user.groups in ["finance"] device.trust_level >= 3)');
    assert.equal(a.action.type, 'deny');
    assert.ok(a.action.type === 'deny');
    assert.equal(a.action.template?.value, 'explain/finance.html');
    assert.equal(a.action.log?.value, 'finance');
    const [rw, ru] = r.attrs;
    assert.ok(rw.kind === 'when' && ru.kind === 'use');
    assert.equal(sx(rw.expr), 'port == 443');
    assert.deepEqual(
      ru.backends.map((s) => s.value),
      ['par01', 'par02'],
    );
  });

  const actions: [string, Record<string, string | undefined>][] = [
    ['allow', { type: 'allow' }],
    ['deny', { type: 'deny' }],
    [
      'deny explain-template="explain/global-deny.html"',
      { type: 'deny', template: 'explain/global-deny.html' },
    ],
    ['deny explain-template = "t.html"', { type: 'deny', template: 't.html' }],
    [
      'redirect "https://help.example.com/denied?x=1"',
      { type: 'redirect', uri: 'https://help.example.com/denied?x=1' },
    ],
    ['allow log "slow_patching"', { type: 'allow', log: 'slow_patching' }],
    ['deny log "blocked"', { type: 'deny', log: 'blocked' }],
    ['deny explain-template="t.html" log "x"', { type: 'deny', template: 't.html', log: 'x' }],
    [
      'redirect "https://h.example/" log "r"',
      { type: 'redirect', uri: 'https://h.example/', log: 'r' },
    ],
  ];
  for (const [text, want] of actions) {
    test(`action ${text}`, () => {
      const a = actionOf(`policy p { action ${text} }`);
      const got: Record<string, string | undefined> = { type: a.type };
      if (a.type === 'deny' && a.template) got.template = a.template.value;
      if (a.type === 'redirect') got.uri = a.uri.value;
      if (a.log) got.log = a.log.value;
      assert.deepEqual(got, want);
    });
  }
});

describe('grammar: expressions', () => {
  const comparators = ['==', '!=', '=~', '!~', '<', '<=', '>', '>='];
  for (const op of comparators) {
    test(`comparator ${op}`, () => {
      const operand = op.includes('~') ? '"x"' : '1';
      assert.equal(whenTree(`foo ${op} ${operand}`), `foo ${op} ${operand}`);
      // Without spaces around the operator, too.
      assert.equal(whenTree(`foo${op}${operand}`), `foo ${op} ${operand}`);
    });
  }
  test('comparator in, with a set and with a list file', () => {
    assert.equal(whenTree('foo in ["a", "b"]'), 'foo in ["a", "b"]');
    assert.equal(
      whenTree('host in file("lists/blocked.txt")'),
      'host in file("lists/blocked.txt")',
    );
    assert.equal(whenTree('host in file ( "l.txt" )'), 'host in file("l.txt")');
  });

  const precedence: [string, string][] = [
    ['a == 1 or b == 2 and c == 3', '(or a == 1 (and b == 2 c == 3))'],
    ['a == 1 and b == 2 or c == 3', '(or (and a == 1 b == 2) c == 3)'],
    ['not a == 1 and b == 2', '(and (not a == 1) b == 2)'],
    ['not a == 1 or b == 2', '(or (not a == 1) b == 2)'],
    ['not (a == 1 or b == 2)', '(not (or a == 1 b == 2))'],
    ['(a == 1 or b == 2) and c == 3', '(and (or a == 1 b == 2) c == 3)'],
    ['a == 1 and (b == 2 or c == 3)', '(and a == 1 (or b == 2 c == 3))'],
    ['not not a == 1', '(not (not a == 1))'],
    ['a == 1 or b == 2 or c == 3', '(or a == 1 b == 2 c == 3)'],
    ['a == 1 and b == 2 and c == 3', '(and a == 1 b == 2 c == 3)'],
    ['((a == 1))', 'a == 1'],
    [
      'a == 1 and not b == 2 or not c == 3 and d == 4',
      '(or (and a == 1 (not b == 2)) (and (not c == 3) d == 4))',
    ],
    ['require_x == 1 and action_y == 2', '(and require_x == 1 action_y == 2)'],
  ];
  for (const [src, tree] of precedence) {
    test(`precedence: ${src}`, () => assert.equal(whenTree(src), tree));
  }

  test('require role == "admin" and not banned == true (upstream)', () => {
    const [p] = parseOk(
      'policy p { require role == "admin" and not banned == true action allow }',
    ) as PolicyBlock[];
    const r = p.attrs[0];
    assert.ok(r.kind === 'require');
    assert.equal(sx(r.expr), '(and role == "admin" (not banned == true))');
  });

  const keywordsAsWords: [string, string][] = [
    ['notes == "x"', 'notes == "x"'],
    ['not notes == "x"', '(not notes == "x")'],
    ['android == 1 and order == 2', '(and android == 1 order == 2)'],
    ['index in [1]', 'index in [1]'],
    ['oregon == 1 or notable == 2', '(or oregon == 1 notable == 2)'],
    [
      'inner == 1 and trueish == true and falsehood == false',
      '(and inner == 1 trueish == true falsehood == false)',
    ],
    ['filed == "x" or order_id in ["a"]', '(or filed == "x" order_id in ["a"])'],
    ['and_x == 1', 'and_x == 1'],
    ['user.notes.order == 1', 'user.notes.order == 1'],
  ];
  for (const [src, tree] of keywordsAsWords) {
    test(`keywords are whole words: ${src}`, () => assert.equal(whenTree(src), tree));
  }

  test('a keyword glued to a word is not a keyword', () => {
    // `andb` is an identifier, so `a == 1 andb == 2` lacks an operator between them.
    const r = parseAcl('policy p { when a == 1 andb == 2 action allow }', 'f.acl');
    assert.deepEqual(positions(r.diagnostics), ['1:24 error']);
    const s = parseAcl('policy p { when a innards ["x"] action allow }', 'f.acl');
    assert.deepEqual(positions(s.diagnostics), ['1:19 error']);
  });

  test('dotted identifiers', () => {
    assert.equal(
      whenTree('client.cert.subject.cn == "alice" and _x.y_1.z == 2'),
      '(and client.cert.subject.cn == "alice" _x.y_1.z == 2)',
    );
  });
});

describe('grammar: operands', () => {
  const operands: [string, string][] = [
    ['"plain"', '"plain"'],
    ['""', '""'],
    ['"\\.corp\\.example\\.com$"', '"\\.corp\\.example\\.com$"'],
    ['"a # not a comment"', '"a # not a comment"'],
    ['"bücher.example"', '"bücher.example"'],
    ['0', '0'],
    ['-1', '-1'],
    ['9223372036854775806', '9223372036854775806'],
    ['-9223372036854775807', '-9223372036854775807'],
    ['true', 'true'],
    ['false', 'false'],
    ['30s', '30s'],
    ['15m', '15m'],
    ['12h', '12h'],
    ['1d', '1d'],
    ['2wk', '2wk'],
    ['["a", "b",]', '["a", "b"]'],
    ['[ "a" , ]', '["a"]'],
    ['[]', '[]'],
    ['[1, -2, 3,]', '[1, -2, 3]'],
    ['[30s, 2wk]', '[30s, 2wk]'],
    [
      '[".example.com", "*.example.com", "example.org"]',
      '[".example.com", "*.example.com", "example.org"]',
    ],
    ['["10.0.0.0/8", "fd00::/8", "192.0.2.1"]', '["10.0.0.0/8", "fd00::/8", "192.0.2.1"]'],
  ];
  for (const [src, want] of operands) {
    test(`operand ${src}`, () => {
      const op = src.startsWith('[') ? 'in' : '==';
      assert.equal(whenTree(`foo ${op} ${src}`), `foo ${op} ${want}`);
    });
  }

  test('integer limits: ±(2^63-1) compile, beyond is an error on the literal', () => {
    compile('policy a { when foo == 9223372036854775806 action allow }');
    compile('policy a { when foo == 9223372036854775807 action allow }');
    compile('policy a { when foo == -9223372036854775807 action allow }');
    compile(
      'policy a { when port < 9223372036854775806 and port > -9223372036854775807 action allow }',
    );
    for (const lit of ['9223372036854775808', '-9223372036854775808', '99999999999999999999999']) {
      const ds = diagnose(`policy a {\n  when port == ${lit}\n  action allow\n}`);
      assert.deepEqual(positions(ds), ['2:16 error'], formatDiagnostics(ds));
      assert.match(ds[0].message, /out of range/);
      assert.equal(ds[0].length, lit.length);
    }
  });

  test('integer limits inside a set for a number attribute', () => {
    compile(
      'policy a { when device.trust_level in [9223372036854775806, -9223372036854775807, 1] action allow }',
    );
    const ds = diagnose('policy a {\n  when port in [443, 9223372036854775808]\n  action allow\n}');
    assert.deepEqual(positions(ds), ['2:22 error']);
    assert.match(ds[0].message, /out of range/);
  });

  test('durations with every unit', () => {
    for (const d of ['30s', '15m', '12h', '1d', '2wk', '2w', '1500ms']) {
      compile(`policy a { when device.patch_age < ${d} action allow }`);
    }
  });
});

describe('grammar: whitespace and comments', () => {
  test('lots of whitespace, tabs, CRLF and blank lines', () => {
    const blocks = parseOk(
      '\r\n\r\n   policy    p   {\r\n\r\n\t when  \t host   ==   "a"  \r\n\r\n   require\n\n  port  ==  1\n   action    \n\n allow \r\n\r\n }  \r\n\r\n\troute\tr\t{\tuse\t[\t"par01"\t,\t]\t}\n\n',
    );
    assert.deepEqual(blocks.map(attrKinds), [['when', 'require', 'action'], ['use']]);
  });

  test('minimal whitespace', () => {
    const blocks = parseOk(
      'policy p{when a==1 and(b==2)require c<3 action allow}route r{use["par01",]}',
    );
    assert.deepEqual(blocks.map(attrKinds), [['when', 'require', 'action'], ['use']]);
  });

  test('`#` comments anywhere whitespace may be, not inside strings', () => {
    const blocks = parseOk(`# header comment
policy p { # after the brace
  when { # inside braces
    host == "a#b" # trailing
    # a whole line inside an expression
    or port == 1
  }
  # whole line inside a block
  action allow # end of line
}
route r {
  use [ # inside a set
    "par01", # one
  ]
}
# last line without a newline`);
    const w = blocks[0].attrs[0];
    assert.ok(w.kind === 'when');
    assert.equal(sx(w.expr), '(or host == "a#b" port == 1)');
  });

  test('an empty file, or only comments, is valid and has no block', () => {
    assert.deepEqual(parseOk(''), []);
    assert.deepEqual(parseOk('# nothing\n   \n# here'), []);
  });
});

// ---- upstream-compatible corpus -------------------------------------------------------

describe('upstream-compatible corpus', () => {
  const valid: [string, string][] = [
    [
      'route with use and when',
      'route r1 {\n    when host == "example.com"\n    use ["par01"]\n}\n',
    ],
    ['route without when', 'route r1 {\n    use ["par01", "direct"]\n}\n'],
    [
      'trailing commas',
      'route r { use ["par01", "par02",] }\npolicy p { when user.groups in ["a", "b",] action allow }',
    ],
    [
      'lots of whitespace',
      '\n\n   policy    p   {\n\n        when    host    ==    "a"\n\n\n        action    allow\n\n   }\n\n\n',
    ],
    [
      'require and not',
      'policy p {\n    require role == "admin" and not banned == true\n    action allow\n}',
    ],
    ['redirect', 'policy p {\n    action redirect "https://example.com/login"\n}'],
    [
      'dotted identifiers',
      'policy p {\n    when user.email == "a@example.com" and client.cert.subject.cn == "x"\n    action allow\n}',
    ],
    [
      'braces over several lines',
      'policy p {\n    when {\n        host == "a"\n        or host == "b"\n    }\n    action allow\n}',
    ],
    [
      'deny explain-template',
      'policy p {\n    action deny explain-template="templates/deny.html"\n}',
    ],
    [
      'integer limits',
      'policy p {\n    when foo == 9223372036854775806 or foo == -9223372036854775807\n    action allow\n}',
    ],
    [
      'a policy and a route may share a name',
      'route same { use ["par01"] }\npolicy same { action allow }',
    ],
    [
      'the example of docs/acl.md (route, require, deny with a template)',
      'route corp {\n  when host =~ "\\.corp\\.example\\.com$"\n  use ["par01", "par02"]\n}\n\npolicy eng_git {\n  when host == "git.corp.example.com"\n  require user.groups in ["eng", "ops"] and device.trust_level >= 2\n  action allow\n}\n\npolicy deny_all {\n  action deny explain-template="explain/global-deny.html"\n}\n',
    ],
  ];
  for (const [name, src] of valid) {
    test(`valid: ${name}`, () => {
      compile(src);
    });
  }

  const invalid: [string, string, string[], RegExp][] = [
    [
      'duplicate attribute',
      'policy p {\n    action allow\n    action deny\n}',
      ['3:5 error'],
      /duplicate `action`/,
    ],
    [
      'duplicate when',
      'policy p {\n    when a == 1\n    when b == 1\n    action allow\n}',
      ['3:5 error'],
      /duplicate `when`/,
    ],
    [
      'duplicate use',
      'route r {\n    use ["par01"]\n    use ["par02"]\n}',
      ['3:5 error'],
      /duplicate `use`/,
    ],
    [
      'duplicate policy',
      'policy p { action allow }\npolicy p { action deny }',
      ['2:8 error'],
      /duplicate policy p/,
    ],
    [
      'duplicate route',
      'route r { use ["par01"] }\n\nroute r { use ["par02"] }',
      ['3:7 error'],
      /duplicate route r/,
    ],
    [
      'policy without action',
      'policy p {\n    when host == "a"\n}',
      ['1:8 error'],
      /policy p has no action/,
    ],
    [
      'route without use',
      'route r {\n    when host == "a"\n}',
      ['1:7 error'],
      /route r has no `use`/,
    ],
    [
      'unknown backend',
      'route r {\n    use ["par01", "nope"]\n}',
      ['2:19 error'],
      /unknown backend "nope"/,
    ],
  ];
  for (const [name, src, pos, message] of invalid) {
    test(`rejected: ${name}`, () => {
      const r = diagnose(src);
      const ds = r.filter((d) => d.severity === 'error' || !/unknown attribute/.test(d.message));
      assert.deepEqual(positions(ds), pos);
      assert.match(ds[0].message, message);
    });
  }
});

// ---- load-time errors (docs/acl.md, "Error messages") ---------------------------------

describe('load-time errors at their exact position', () => {
  const cases: [string, string, string[], RegExp][] = [
    [
      'unclosed block: reported where the next block starts',
      'policy a {\n  when host == "x"\n  action allow\n\npolicy b {\n  action deny\n}\n',
      ['5:1 error'],
      /syntax error: unexpected `policy`/,
    ],
    [
      'unclosed block at the end of the file',
      'policy a {\n  action allow\n',
      ['3:1 error'],
      /syntax error: unexpected end of file/,
    ],
    [
      'missing operator',
      'policy a {\n  when host "x"\n  action allow\n}',
      ['2:13 error'],
      /syntax error: unexpected `"x"`/,
    ],
    [
      'missing operand',
      'policy a {\n  when host ==\n  action allow\n}',
      ['3:3 error'],
      /syntax error/,
    ],
    [
      'unterminated string',
      'policy a {\n  when host == "x\n  action allow\n}',
      ['2:16 error'],
      /unterminated string \(no closing `"` before the end of the file\)/,
    ],
    [
      'unknown action',
      'policy a {\n  action permit\n}',
      ['2:10 error'],
      /syntax error: unexpected `permit`/,
    ],
    [
      'stray text between blocks',
      'policy a { action allow }\nstray\npolicy b { action deny }',
      ['2:1 error'],
      /syntax error: unexpected `stray`/,
    ],
    [
      'duplicate block: the second name',
      'policy a { action allow }\n\n  policy   a { action deny }',
      ['3:12 error'],
      /duplicate policy a \(first at line 1\)/,
    ],
    [
      'duplicate attribute: the second keyword',
      'policy a {\n  when port == 1\n  require port == 2\n  action allow\n    require port == 3\n}',
      ['5:5 error'],
      /duplicate `require` in policy a \(first at line 3\)/,
    ],
    [
      'missing action',
      '\npolicy   nope {\n  when port == 1\n}',
      ['2:10 error'],
      /policy nope has no action/,
    ],
    ['route with no backend', 'route r {\n  use [ ]\n}', ['2:7 error'], /route r has no backend/],
    ['route with no use', 'route r {\n  when port == 1\n}', ['1:7 error'], /route r has no `use`/],
    [
      'unknown backend',
      'route r {\n  when host == "y"\n  use ["par01", "par09", "direct"]\n}',
      ['3:17 error'],
      /unknown backend "par09"/,
    ],
    [
      'invalid regex',
      'policy a {\n  when path =~ "("\n  action allow\n}',
      ['2:16 error'],
      /invalid regular expression/,
    ],
    [
      'regex with a look-ahead (not RE2)',
      'policy a {\n  when path !~ "a(?=b)"\n  action allow\n}',
      ['2:16 error'],
      /invalid regular expression/,
    ],
    [
      'invalid redirect URI',
      'policy a {\n  action redirect "not a uri"\n}',
      ['2:19 error'],
      /invalid redirect URI/,
    ],
    [
      'relative redirect URI',
      'policy a {\n  action redirect "/help"\n}',
      ['2:19 error'],
      /invalid redirect URI/,
    ],
    [
      'invalid CIDR prefix',
      'policy a {\n  when dst.ip in ["10.0.0.0/8", "10.0.0.0/33"]\n  action allow\n}',
      ['2:33 error'],
      /invalid IP address or CIDR/,
    ],
    [
      'invalid IPv6 CIDR',
      'policy a {\n  when client.ip in ["fd00::/129"]\n  action allow\n}',
      ['2:22 error'],
      /invalid IP address or CIDR/,
    ],
    [
      'not an IP address',
      'policy a {\n  when dst.ip in ["example.com"]\n  action allow\n}',
      ['2:19 error'],
      /invalid IP address or CIDR/,
    ],
    [
      'integer out of range',
      'policy a {\n  when port == 9223372036854775808\n  action allow\n}',
      ['2:16 error'],
      /integer 9223372036854775808 is out of range/,
    ],
    [
      'port =~ "x"',
      'policy a {\n  when port =~ "x"\n  action allow\n}',
      ['2:13 error'],
      /`=~` cannot apply to port/,
    ],
    [
      'host < 3',
      'policy a {\n  when host < 3\n  action allow\n}',
      ['2:13 error'],
      /`<` cannot apply to host/,
    ],
    [
      'port == "443"',
      'policy a {\n  when port == "443"\n  action allow\n}',
      ['2:16 error'],
      /port is a number/,
    ],
    [
      'host == 3',
      'policy a {\n  when host == 3\n  action allow\n}',
      ['2:16 error'],
      /host is a hostname/,
    ],
    [
      'user.authenticated in [...]',
      'policy a {\n  when user.authenticated in ["x"]\n  action allow\n}',
      ['2:30 error'],
      /boolean/,
    ],
    [
      'user.authenticated == "true"',
      'policy a {\n  when user.authenticated == "true"\n  action allow\n}',
      ['2:30 error'],
      /boolean/,
    ],
    [
      'device.patch_age =~ "x"',
      'policy a {\n  when device.patch_age !~ "x"\n  action allow\n}',
      ['2:25 error'],
      /cannot apply to device.patch_age/,
    ],
    [
      'port < 2wk',
      'policy a {\n  when port < 2wk\n  action allow\n}',
      ['2:15 error'],
      /port is a number/,
    ],
    [
      'port == [1]',
      'policy a {\n  when port == [1]\n  action allow\n}',
      ['2:16 error'],
      /use `in`/,
    ],
    [
      // A number against a quoted string never matches silently: an error, as for ==.
      'port in ["443"]',
      'policy a {\n  when port in [80, "443"]\n  action allow\n}',
      ['2:21 error'],
      /^a string, not an integer \(write 443 without quotes\) in set for port: "443"$/,
    ],
    [
      'device.patch_age in ["2wk"]',
      'policy a {\n  when device.patch_age in ["2wk"]\n  action allow\n}',
      ['2:29 error'],
      /^a string, not a duration \(write 2wk without quotes\)/,
    ],
    [
      'port in 443',
      'policy a {\n  when port in 443\n  action allow\n}',
      ['2:16 error'],
      /`in` needs a set/,
    ],
    [
      'invalid hostname pattern in a set',
      'policy a {\n  when host in ["ok.example", "bad host"]\n  action allow\n}',
      ['2:31 error'],
      /invalid hostname/,
    ],
  ];
  for (const [name, src, pos, message] of cases) {
    test(name, () => {
      const ds = diagnose(src);
      assert.deepEqual(positions(ds), pos, formatDiagnostics(ds));
      assert.match(ds[0].message, message);
      assert.ok(ds[0].length >= 1);
    });
  }

  test('an error in the checker (not only the parser) still names the offending text', () => {
    const [d] = diagnose('route r {\n  use ["par01", "par09"]\n}');
    assert.equal(d.length, '"par09"'.length);
    assert.equal(d.sourceLine, '  use ["par01", "par09"]');
    assert.match(d.expected ?? '', /par01, par02, par03/);
  });

  test('`direct` is always a valid backend; without configuration names are not checked', () => {
    compile('route r { use ["direct"] }');
    const r = diagnose('route r { use ["anything"] }', { backends: null });
    assert.deepEqual(r, []);
  });

  test('unknown attribute: a warning only, the ACL compiles', () => {
    const ds = diagnose('policy a {\n  when custom.trust == "high"\n  action allow\n}');
    assert.deepEqual(positions(ds), ['2:8 warning']);
    assert.match(ds[0].message, /unknown attribute custom\.trust/);
    assert.equal(ds[0].length, 'custom.trust'.length);
    compile('policy a { when custom.trust == "high" action allow }');
  });

  test('unreadable list file: an error at the path (loadAclFile)', () =>
    withTempDir(async (dir) => {
      const acl = join(dir, 'filter.acl');
      mkdirSync(join(dir, 'adir'));
      writeFileSync(
        acl,
        'policy a {\n  when host in file("lists/nope.txt")\n  action deny\n}\npolicy b {\n  when host in file( "adir" )\n  action deny\n}\n',
      );
      const r = await loadAclFile(acl, { backends: BACKENDS });
      assert.equal(r.acl, null);
      assert.deepEqual(positions(r.diagnostics), ['2:21 error', '6:22 error']);
      assert.match(r.diagnostics[0].message, /cannot read list file .*nope\.txt/);
      assert.match(r.diagnostics[1].message, /cannot read list file .*adir/);
    }));

  test('a list file of ports is read as numbers (its lines are text, not quoted strings)', () =>
    withTempDir(async (dir) => {
      const acl = join(dir, 'filter.acl');
      writeFileSync(join(dir, 'ports.txt'), '443\n8443\n');
      writeFileSync(acl, 'policy a {\n  when port in file("ports.txt")\n  action allow\n}\n');
      const r = await loadAclFile(acl, { backends: BACKENDS });
      assert.ok(r.acl, formatDiagnostics(r.diagnostics));
      assert.deepEqual(r.diagnostics, []);
    }));

  test('missing explain-template file: a warning only (loadAclFile)', () =>
    withTempDir(async (dir) => {
      const acl = join(dir, 'filter.acl');
      mkdirSync(join(dir, 'explain'));
      writeFileSync(join(dir, 'explain', 'ok.html'), '<p>denied</p>');
      writeFileSync(
        acl,
        'policy a {\n  when port == 1\n  action deny explain-template="explain/ok.html"\n}\npolicy b {\n  action deny explain-template="explain/missing.html"\n}\n',
      );
      const r = await loadAclFile(acl, { backends: BACKENDS });
      assert.ok(r.acl);
      assert.deepEqual(positions(r.diagnostics), ['6:32 warning']);
      assert.match(r.diagnostics[0].message, /explain\/missing\.html/);
    }));

  test('unreadable ACL file: an error, no ACL', async () => {
    const r = await loadAclFile('/nonexistent/portail/filter.acl');
    assert.equal(r.acl, null);
    assert.equal(errorsOf(r.diagnostics).length, 1);
    assert.ok(r.diagnostics[0].line >= 1 && r.diagnostics[0].column >= 1);
  });
});

describe('every error of a file is reported together', () => {
  test('several syntax errors: the parser resumes at the next block', () => {
    const src = [
      'policy a { when host "x" action allow }',
      'policy b { when port == 1 action allw }',
      'policy c { action deny }',
      'policy d { when == 1 action allow }',
      'route r { use "par01" }',
      'policy e { action allow }',
    ].join('\n');
    const ds = diagnose(src);
    assert.deepEqual(positions(ds), ['1:22 error', '2:34 error', '4:17 error', '5:15 error']);
    for (const d of ds) assert.match(d.message, /^syntax error/);
  });

  test('syntax errors and checker errors in one run', () =>
    withTempDir(async (dir) => {
      const acl = join(dir, 'filter.acl');
      writeFileSync(
        acl,
        [
          'policy a {', // 1
          '  when host "x"', // 2: missing operator
          '  action allow', // 3
          '}', // 4
          'policy b {', // 5
          '  when port == 1', // 6
          '  when port == 2', // 7: duplicate attribute
          '  action allow', // 8
          '}', // 9
          'route r { use ["par01", "par09"] }', // 10: unknown backend
          'policy c { when path =~ "(" action allow }', // 11: invalid regex
          'policy d { when port == 9223372036854775808 action allow }', // 12: out of range
          'policy e { when port =~ "x" action allow }', // 13: wrong comparator
          'policy f { when host in file("missing.txt") action deny }', // 14: unreadable list
          'policy b { action deny }', // 15: duplicate block
          'policy g { when custom.x == 1 }', // 16: no action (+ unknown attribute warning)
          'policy h { action redirect "nope" }', // 17: invalid URI
          'policy i { when dst.ip in ["1.2.3.4/40"] action deny }', // 18: invalid CIDR
          'route s { use [] }', // 19: no backend
          'route t { when port == 1 }', // 20: no use
          '',
        ].join('\n'),
      );
      const r = await loadAclFile(acl, { backends: BACKENDS });
      assert.equal(r.acl, null);
      const got = positions(r.diagnostics).sort((x, y) => {
        const [a, b] = [x, y].map((s) => s.split(/[: ]/).map(Number));
        return a[0] - b[0] || a[1] - b[1];
      });
      assert.deepEqual(
        got,
        [
          '2:13 error',
          '7:3 error',
          '10:25 error',
          '11:25 error',
          '12:25 error',
          '13:22 error',
          '14:30 error',
          '15:8 error',
          '16:8 error',
          '16:17 warning',
          '17:28 error',
          '18:28 error',
          '19:15 error',
          '20:7 error',
        ],
        formatDiagnostics(r.diagnostics),
      );
      // The formatted report lists errors first, in file order, then warnings.
      const heads = formatDiagnostics(r.diagnostics)
        .split('\n')
        .filter((l) => l.startsWith(acl));
      assert.equal(heads.length, 14);
      assert.match(heads[0], /:2:13: error: /);
      assert.match(heads[13], /:16:17: warning: /);
    }));

  test('recovery does not invent errors: a `route.local` line inside a broken block', () => {
    // Only `allw` is wrong. A line starting with `route.local` is an attribute, not the
    // start of a route block, so recovery must not resume there.
    const src =
      'policy a {\n  when host == "x" and\n  route.local == true\n  action allw\n}\npolicy b {\n  action deny\n}\n';
    const ds = diagnose(src);
    assert.deepEqual(positions(ds), ['4:10 error'], formatDiagnostics(ds));
  });

  test('recovery does not invent errors: an error on a line starting with `route.backend`', () => {
    const src =
      'policy a {\n  when host == "x" and\n  route.backend == "par01" and port == == 1\n  action allow\n}\npolicy b {\n  action deny\n}\n';
    const ds = diagnose(src);
    assert.deepEqual(positions(ds), ['3:40 error'], formatDiagnostics(ds));
  });
});

// ---- formatting ---------------------------------------------------------------------

describe('formatDiagnostic', () => {
  test('file:line:column, the source line and a caret under the offending text', () => {
    const [d] = diagnose('policy a {\n  when host "x.example"\n  action allow\n}');
    const lines = formatDiagnostic(d).split('\n');
    assert.match(lines[0], /^f\.acl:2:13: error: syntax error: unexpected `"x\.example"`$/);
    assert.equal(lines[1], '    when host "x.example"');
    assert.equal(lines[2], `  ${' '.repeat(12)}${'^'.repeat('"x.example"'.length)}`);
    assert.match(lines[3], /^ {2}expected .*comparison operator/);
  });

  test('the caret lines up under tabs', () => {
    const [d] = diagnose('policy a {\n\twhen\thost == 1\n\taction allow\n}');
    assert.equal(d.line, 2);
    assert.equal(d.column, 15);
    const lines = formatDiagnostic(d).split('\n');
    assert.equal(lines[1], '  \twhen\thost == 1');
    assert.equal(lines[2], `  \t    \t        ^`);
  });

  test('a checker error: caret under the whole backend name', () => {
    const [d] = diagnose('route r { when host == "y" use ["par09"] }');
    const lines = formatDiagnostic(d).split('\n');
    assert.equal(lines[0], 'f.acl:1:33: error: unknown backend "par09"');
    assert.equal(lines[1], '  route r { when host == "y" use ["par09"] }');
    assert.equal(lines[2], `  ${' '.repeat(32)}^^^^^^^`);
    assert.match(
      lines[3],
      /^ {2}expected a configured backend \(par01, par02, par03\) or "direct"$/,
    );
  });

  test('an error at the end of the file still has a caret', () => {
    const [d] = diagnose('policy a {\n  action allow');
    assert.deepEqual([d.line, d.column], [2, 15]);
    const lines = formatDiagnostic(d).split('\n');
    assert.equal(lines[1], '    action allow');
    assert.equal(lines[2], `  ${' '.repeat(14)}^`);
  });
});
