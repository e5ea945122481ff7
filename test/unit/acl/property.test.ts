// Property tests (fast-check, each bounded to about two seconds): printing then parsing
// gives the same tree; random contexts never break the evaluator, which agrees with a
// naive first-match oracle; random bytes and mutations of valid files never crash or
// hang the loader and always yield well-placed errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type {
  AclFile,
  ActionNode,
  Block,
  Expr,
  Operand,
  Operator,
  PolicyAttr,
  RouteAttr,
  SetItem,
  StringLit,
} from '../../../acl-lang/ast.js';
import { maskSecrets } from '../../../acl-lang/diagnostics.js';
import {
  compileAclSource,
  type Diagnostic,
  type EvaluateOptions,
  evaluate,
  formatDiagnostics,
  parseAcl,
  printAcl,
} from '../../../acl-lang/index.js';
import { BACKENDS, ctx, FIXTURES, naiveDecision } from './helpers.js';

/** Each property stops generating new cases after this long (and then passes). */
const TIME_LIMIT_MS = 2000;
const params = (numRuns: number) => ({
  numRuns,
  plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
});

const L = { offset: 0, endOffset: 0 };
const LOC_KEYS = new Set(['loc', 'nameLoc', 'opLoc', 'listLoc']);

/** The tree without source positions, for comparison. */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!LOC_KEYS.has(k)) out[k] = strip(x);
    return out;
  }
  return v;
}

// ---- syntax-level generator (any tree the parser can produce) ---------------------------

const RESERVED = new Set(['and', 'or', 'not', 'in', 'true', 'false']);
const segment = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/);
const identifier = fc
  .tuple(
    segment.filter((s) => !RESERVED.has(s)),
    fc.array(segment, { maxLength: 2 }),
  )
  .map(([h, t]) => [h, ...t].join('.'));
const blockName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}$/);

/** String contents: anything but `"` and a newline (strings have no escapes). */
const text = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 10 }),
    fc.constantFrom('#', '\\.', '\\', ' } { ', 'policy', '\t', '\r', 'bücher', '😀', 'a#b'),
  )
  .map((s) => s.replace(/["\n]/g, ''));
const str = text.map((value): StringLit => ({ type: 'string', value, loc: L }));
const int = fc
  .stringMatching(/^-?[0-9]{1,20}$/)
  .map((raw) => ({ type: 'int' as const, raw, loc: L }));
const duration = fc
  .tuple(fc.nat(1_000_000), fc.constantFrom('ms', 's', 'm', 'h', 'd', 'w', 'wk'))
  .map(([n, u]) => ({ type: 'duration' as const, raw: `${n}${u}`, loc: L }));
const bool = fc.boolean().map((value) => ({ type: 'bool' as const, value, loc: L }));
const setItem: fc.Arbitrary<SetItem> = fc.oneof(str, int, duration);
const set = fc
  .array(setItem, { maxLength: 4 })
  .map((items) => ({ type: 'set' as const, items, loc: L }));
const fileSet = str.map((path) => ({ type: 'file' as const, path, loc: L }));
const operand: fc.Arbitrary<Operand> = fc.oneof(str, int, duration, bool, set, fileSet);
const operator = fc.constantFrom<Operator>('==', '!=', '=~', '!~', '<', '<=', '>', '>=', 'in');

const cmp = fc.record({
  type: fc.constant('cmp' as const),
  attr: identifier.map((name) => ({ name, loc: L })),
  op: operator,
  opLoc: fc.constant(L),
  value: operand,
  loc: fc.constant(L),
});

const { expr } = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    cmp,
    tie('expr').map((e): Expr => ({ type: 'not', expr: e, loc: L })),
    fc
      .tuple(
        fc.constantFrom('and' as const, 'or' as const),
        fc.array(tie('expr'), { minLength: 2, maxLength: 3 }),
      )
      .map(([type, items]): Expr => ({ type, items, loc: L })),
  ),
}));

const withLog = <T extends ActionNode>(a: T, log: StringLit | null): T => (log ? { ...a, log } : a);
const action: fc.Arbitrary<ActionNode> = fc.oneof(
  fc.option(str).map((log) => withLog({ type: 'allow', loc: L }, log)),
  fc
    .tuple(fc.option(str), fc.option(str))
    .map(([template, log]) =>
      withLog(
        template ? { type: 'deny' as const, template, loc: L } : { type: 'deny' as const, loc: L },
        log,
      ),
    ),
  fc
    .tuple(str, fc.option(str))
    .map(([uri, log]) => withLog({ type: 'redirect', uri, loc: L }, log)),
);

const policyAttr: fc.Arbitrary<PolicyAttr> = fc.oneof(
  expr.map((e): PolicyAttr => ({ kind: 'when', expr: e, loc: L })),
  expr.map((e): PolicyAttr => ({ kind: 'require', expr: e, loc: L })),
  action.map((a): PolicyAttr => ({ kind: 'action', action: a, loc: L })),
);
const routeAttr: fc.Arbitrary<RouteAttr> = fc.oneof(
  expr.map((e): RouteAttr => ({ kind: 'when', expr: e, loc: L })),
  fc
    .array(str, { maxLength: 3 })
    .map((backends): RouteAttr => ({ kind: 'use', backends, listLoc: L, loc: L })),
);
const block: fc.Arbitrary<Block> = fc.oneof(
  fc.record({
    kind: fc.constant('policy' as const),
    name: blockName,
    nameLoc: fc.constant(L),
    attrs: fc.array(policyAttr, { maxLength: 4 }),
    loc: fc.constant(L),
  }),
  fc.record({
    kind: fc.constant('route' as const),
    name: blockName,
    nameLoc: fc.constant(L),
    attrs: fc.array(routeAttr, { maxLength: 3 }),
    loc: fc.constant(L),
  }),
);
const aclFile: fc.Arbitrary<AclFile> = fc
  .array(block, { maxLength: 5 })
  .map((blocks) => ({ blocks }));

describe('printer', () => {
  test('print then parse gives the same tree (positions stripped)', () => {
    fc.assert(
      fc.property(aclFile, (ast) => {
        const source = printAcl(ast);
        const r = parseAcl(source, 'f.acl');
        assert.deepEqual(
          r.diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`),
          [],
          source,
        );
        assert.deepEqual(strip(r.ast), strip(ast), source);
        // And printing is a fixed point.
        assert.equal(printAcl(r.ast), source);
      }),
      params(600),
    );
  });

  test('the fixture round-trips through the printer', () => {
    const source = readFileSync(join(FIXTURES, 'valid.acl'), 'utf8');
    const printed = printAcl(parseAcl(source, 'valid.acl').ast);
    assert.deepEqual(
      strip(parseAcl(printed, 'p.acl').ast),
      strip(parseAcl(source, 'valid.acl').ast),
    );
  });
});

// ---- type-aware generator (ACLs the checker accepts) ---------------------------------------

const REGEXES = ['^a', 'example', '\\.corp\\.', '[0-9]+$', '(?i)adm', '^$', 'é', '.*', 'a|b'];
const HOSTS = [
  'example.com',
  'a.example.com',
  'bücher.example',
  'Example.COM.',
  '192.0.2.1',
  'x.org',
];
const HOST_PATTERNS = [
  '.example.com',
  '*.example.com',
  'x.org',
  'bücher.example',
  '.org',
  '*.a.example.com',
];
const IPS = ['10.0.0.1', '::1', '::ffff:10.0.0.1', 'fd00::5', '192.0.2.1'];
const CIDRS = [
  '10.0.0.0/8',
  'fd00::/8',
  '192.0.2.0/24',
  '::1/128',
  '0.0.0.0/0',
  '::ffff:10.0.0.0/104',
];
const WORDS = ['eng', 'ops', 'connect', 'forward', '/admin', '', 'x y', 'é'];

type Kind = 'hostname' | 'number' | 'duration' | 'ip' | 'string' | 'list' | 'bool' | 'unknown';
const ATTRIBUTES: [string, Kind][] = [
  ['host', 'hostname'],
  ['port', 'number'],
  ['device.trust_level', 'number'],
  ['device.patch_age', 'duration'],
  ['dst.ip', 'ip'],
  ['client.ip', 'ip'],
  ['proxy.cmd', 'string'],
  ['path', 'string'],
  ['user.groups', 'list'],
  ['user.authenticated', 'bool'],
  ['route.local', 'bool'],
  ['route.backend', 'string'],
  ['custom.zone', 'unknown'],
  ['notes', 'unknown'],
];

const q = (s: string) => `"${s}"`;
const pick = (xs: readonly string[]) => fc.constantFrom(...xs);
const list = (item: fc.Arbitrary<string>) =>
  fc.array(item, { maxLength: 4 }).map((xs) => `[${xs.join(', ')}]`);
const intLit = fc.oneof(
  fc.integer({ min: -5, max: 70000 }).map(String),
  fc.constantFrom('9223372036854775806', '-9223372036854775807', '0'),
);
const durLit = fc
  .tuple(fc.nat(100), fc.constantFrom('ms', 's', 'm', 'h', 'd', 'wk'))
  .map(([n, u]) => `${n}${u}`);
const regex = pick(REGEXES).map(q);
const ord = fc.constantFrom('<', '<=', '>', '>=');
const eq = fc.constantFrom('==', '!=');
const re = fc.constantFrom('=~', '!~');

function comparisonFor(attr: string, kind: Kind): fc.Arbitrary<string> {
  const c = (op: fc.Arbitrary<string>, v: fc.Arbitrary<string>) =>
    fc.tuple(op, v).map(([o, x]) => `${attr} ${o} ${x}`);
  const strSet = list(pick(WORDS).map(q));
  switch (kind) {
    case 'hostname':
      return fc.oneof(
        c(eq, pick(HOSTS).map(q)),
        c(fc.constant('in'), list(pick(HOST_PATTERNS).map(q))),
        c(re, regex),
      );
    case 'number':
      return fc.oneof(
        c(fc.oneof(eq, ord), intLit),
        c(fc.constant('in'), list(fc.integer({ min: 0, max: 70000 }).map(String))),
      );
    case 'duration':
      return fc.oneof(
        c(fc.oneof(eq, ord), fc.oneof(durLit, intLit)),
        c(fc.constant('in'), list(durLit)),
      );
    case 'ip':
      return fc.oneof(
        c(eq, pick(IPS).map(q)),
        c(fc.constant('in'), list(pick(CIDRS).map(q))),
        c(re, regex),
      );
    case 'string':
    case 'list':
      return fc.oneof(c(eq, pick(WORDS).map(q)), c(fc.constant('in'), strSet), c(re, regex));
    case 'bool':
      return c(eq, fc.constantFrom('true', 'false'));
    case 'unknown':
      return fc.oneof(
        c(eq, fc.oneof(pick(WORDS).map(q), intLit, durLit, fc.constantFrom('true', 'false'))),
        c(ord, fc.oneof(intLit, durLit)),
        c(re, regex),
        c(fc.constant('in'), fc.oneof(strSet, list(intLit))),
      );
  }
}

const typedCmp = fc.constantFrom(...ATTRIBUTES).chain(([a, k]) => comparisonFor(a, k));
const { typedExpr } = fc.letrec<{ typedExpr: string }>((tie) => ({
  typedExpr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    typedCmp,
    tie('typedExpr').map((e) => `not (${e})`),
    fc
      .tuple(
        fc.constantFrom(' and ', ' or '),
        fc.array(tie('typedExpr'), { minLength: 2, maxLength: 3 }),
      )
      .map(([op, xs]) => xs.map((x) => `(${x})`).join(op)),
  ),
}));
const clause = (kw: string) =>
  fc.option(typedExpr).map((e) => (e === null ? '' : `  ${kw} ${e}\n`));
const typedAction = fc.oneof(
  fc.constant('allow'),
  fc.constant('deny'),
  fc.constant('allow log "t"'),
  fc.constant('redirect "https://help.example.com/x"'),
);
const typedPolicy = (i: number) =>
  fc
    .tuple(clause('when'), clause('require'), typedAction)
    .map(([w, r, a]) => `policy p${i} {\n${w}${r}  action ${a}\n}\n`);
const typedRoute = (i: number) =>
  fc
    .tuple(clause('when'), fc.subarray(['par01', 'par02', 'par03', 'direct'], { minLength: 1 }))
    .map(([w, b]) => `route r${i} {\n${w}  use [${b.map(q).join(', ')}]\n}\n`);
const typedAcl = fc
  .array(fc.boolean(), { minLength: 1, maxLength: 8 })
  .chain((kinds) =>
    fc.tuple(...kinds.map((isPolicy, i) => (isPolicy ? typedPolicy(i) : typedRoute(i)))),
  )
  .map((blocks) => blocks.join('\n'));

/** Attribute values of every type (so mostly of the wrong type for the attribute). */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  pick([
    ...HOSTS,
    ...IPS,
    ...WORDS,
    'BÜCHER.example.',
    'xn--bcher-kva.example',
    '',
    '.',
    '[::1]',
    'a..b',
  ]),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.boolean(),
  fc.array(fc.oneof(pick(WORDS), fc.string({ unit: 'binary', maxLength: 6 })), { maxLength: 4 }),
  fc.constant(null),
  fc.constant(undefined),
);
const context = fc.dictionary(
  fc.constantFrom(...ATTRIBUTES.map(([a]) => a)),
  anyValue,
) as fc.Arbitrary<Record<string, unknown>>;
const evalOptions: fc.Arbitrary<EvaluateOptions> = fc.record(
  { forceLocal: fc.boolean(), defaultBackend: fc.option(pick(['par01', 'par02'])) },
  { requiredKeys: [] },
);

describe('evaluator on random contexts', () => {
  test('generated well-typed ACLs compile', () => {
    fc.assert(
      fc.property(typedAcl, (source) => {
        const r = compileAclSource(source, 'f.acl', { backends: BACKENDS });
        const errors = r.diagnostics.filter((d) => d.severity === 'error');
        assert.deepEqual(errors, [], `${formatDiagnostics(errors)}\n${source}`);
      }),
      params(300),
    );
  });

  test('never throws, always allow/deny/redirect, and agrees with the naive first match', () => {
    fc.assert(
      fc.property(
        typedAcl,
        fc.array(fc.tuple(context, evalOptions), { minLength: 1, maxLength: 8 }),
        (source, runs) => {
          const { acl } = compileAclSource(source, 'f.acl', { backends: BACKENDS });
          fc.pre(acl !== null);
          for (const [values, opts] of runs) {
            const d = evaluate(acl, ctx(values), opts);
            assert.ok(['allow', 'deny', 'redirect'].includes(d.action));
            if (d.policy === null) assert.equal(d.action, 'deny');
            if (d.action === 'redirect') assert.equal(typeof d.redirect, 'string');
            assert.deepEqual(d.missing, [...new Set(d.missing)].sort());
            assert.equal(new Set(d.backends).size, d.backends.length);
            const want = naiveDecision(acl, ctx(values), opts);
            assert.deepEqual(
              [d.routes, d.backends, d.local, d.policy],
              [want.routes, want.backends, want.local, want.policy],
              source,
            );
          }
        },
      ),
      params(300),
    );
  });

  test('no ACL: always deny, whatever the context', () => {
    fc.assert(
      fc.property(context, (values) => {
        assert.equal(evaluate(null, ctx(values)).action, 'deny');
      }),
      params(200),
    );
  });
});

// ---- robustness of the loader ---------------------------------------------------------------

const BASES = [
  readFileSync(join(FIXTURES, 'valid.acl'), 'utf8'),
  readFileSync(join(FIXTURES, 'invalid.acl'), 'utf8'),
  'policy a {\n  when host == "x" and\n  route.local == true\n  action allow\n}\nroute r { use ["par01"] }\n',
  'policy p { when { a == 1 or not (b in [1, 2,]) } require c =~ "x" action { deny explain-template="t" log "l" } }',
];
const TOKENS = [
  '{',
  '}',
  '"',
  '\n',
  '#',
  '==',
  'and',
  'not',
  '(',
  ')',
  '[',
  ']',
  ',',
  'policy ',
  'route ',
  ' ',
  '9223372036854775808',
  '\r\n',
  '\t',
  'é',
  '😀',
  '\u0000',
];
const insertion = fc.oneof(pick(TOKENS), fc.string({ unit: 'binary', maxLength: 4 }));

type Mutation = { kind: 'insert' | 'delete' | 'replace'; at: number; len: number; text: string };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('insert', 'delete', 'replace'),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 6 }),
  text: insertion,
});

function mutate(source: string, ms: readonly Mutation[]): string {
  let s = source;
  for (const m of ms) {
    const at = s.length === 0 ? 0 : m.at % (s.length + 1);
    if (m.kind === 'insert') s = s.slice(0, at) + m.text + s.slice(at);
    else if (m.kind === 'delete') s = s.slice(0, at) + s.slice(at + m.len);
    else s = s.slice(0, at) + m.text + s.slice(at + m.len);
  }
  return s;
}

/** Loads a source, checking the invariants every result must satisfy. */
function checkLoads(source: string): void {
  const started = performance.now();
  const parsed = parseAcl(source, 'f.acl');
  const r = compileAclSource(source, 'f.acl', { backends: BACKENDS, baseDir: '/nonexistent' });
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `loading took ${elapsed} ms`);
  const lines = source.split('\n');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (r.acl === null) assert.ok(errors.length >= 1, 'invalid without an error');
  else assert.equal(errors.length, 0, 'compiled despite errors');
  if (parsed.diagnostics.length) assert.equal(r.acl, null);
  for (const d of [...parsed.diagnostics, ...r.diagnostics] as Diagnostic[]) {
    assert.ok(d.severity === 'error' || d.severity === 'warning');
    assert.equal(d.file, 'f.acl');
    assert.ok(Number.isInteger(d.line) && d.line >= 1 && d.line <= lines.length, `line ${d.line}`);
    const lineText = lines[d.line - 1].replace(/\r$/, '');
    assert.ok(Number.isInteger(d.column) && d.column >= 1, `column ${d.column}`);
    assert.ok(d.column <= lines[d.line - 1].length + 1, `column ${d.column} past the line`);
    assert.ok(d.length >= 1);
    // The line as the file has it, secrets masked in place (docs/security.md, "Secrets in
    // diagnostics"): random bytes can look like `user:password@`.
    assert.equal(d.sourceLine, maskSecrets(lineText));
    // A diagnostic points at text, not at the blank before it (end of line aside).
    const at = lineText[d.column - 1];
    if (at !== undefined)
      assert.ok(!' \t\r'.includes(at), `column ${d.column} is blank: ${d.message}`);
  }
}

describe('loader robustness', () => {
  test('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, utf8) => {
        checkLoads(Buffer.from(bytes).toString(utf8 ? 'utf8' : 'latin1'));
      }),
      params(600),
    );
  });

  test('random token soup', () => {
    fc.assert(
      fc.property(fc.array(insertion, { maxLength: 60 }), (parts) => checkLoads(parts.join(''))),
      params(600),
    );
  });

  test('random mutations of valid and invalid files', () => {
    fc.assert(
      fc.property(pick(BASES), fc.array(mutation, { minLength: 1, maxLength: 6 }), (base, ms) =>
        checkLoads(mutate(base, ms)),
      ),
      params(600),
    );
  });

  test('random mutations of generated files', () => {
    fc.assert(
      fc.property(typedAcl, fc.array(mutation, { minLength: 1, maxLength: 4 }), (base, ms) =>
        checkLoads(mutate(base, ms)),
      ),
      params(300),
    );
  });

  test('a long file full of errors stays fast', () => {
    const broken = Array.from(
      { length: 500 },
      (_, i) => `policy p${i} { when a "x" action allow }`,
    ).join('\n');
    const started = performance.now();
    checkLoads(broken);
    assert.ok(performance.now() - started < 2000);
  });
});
