// Nesting limit and deep inputs (docs/acl.md "Nesting limit"): every recursive
// construct nested past the limit is one located error (never a stack overflow, in
// the parser or in any later pass), the limit itself is accepted, and a long flat
// chain of `or`/`and` is valid and evaluates without deep recursion.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  compileAclSource,
  evaluate,
  formatDiagnostics,
  parseAcl,
  printAcl,
} from '../../../acl-lang/index.js';
import { MAX_NESTING } from '../../../acl-lang/parse.js';
import { deepAcls, longChain } from './deep-acl.js';
import { ctx, runPortail } from './helpers.js';

const TOO_DEEP = /expression nested too deeply \(more than 64 levels of parentheses and `not`\)/;

/** Column of the first level past the limit on line 2 (`  when ` / `  require { `). */
function firstPastLimit(source: string): number {
  const line = source.split('\n')[1];
  let depth = 0;
  const re = /\(|\bnot\b/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    if (++depth > MAX_NESTING) return m.index + 1;
  }
  return -1;
}

describe('nesting limit', () => {
  test('the limit is 64', () => assert.equal(MAX_NESTING, 64));

  for (const levels of [MAX_NESTING + 1, 2000, 100_000]) {
    for (const { name, source } of deepAcls(levels)) {
      test(`${name}, ${levels} levels: one located error, nothing compiled`, () => {
        const r = compileAclSource(source, 'deep.acl', { baseDir: '/acl' });
        assert.equal(r.acl, null);
        const errors = r.diagnostics.filter((d) => d.severity === 'error');
        assert.ok(errors.length >= 1, formatDiagnostics(r.diagnostics));
        const e = errors[0];
        assert.match(e.message, TOO_DEEP);
        assert.equal(e.file, 'deep.acl');
        assert.equal(e.line, 2);
        assert.equal(e.column, firstPastLimit(source));
        // The next block is still parsed and checked (one run reports every broken block).
        assert.equal(errors.filter((d) => TOO_DEEP.test(d.message)).length, 1);
      });
    }
  }

  test('exactly the limit is accepted, checked, compiled, evaluated and printed', () => {
    for (const { name, source } of deepAcls(MAX_NESTING / 2)) {
      if (name === 'unclosed') continue;
      const r = compileAclSource(source, 'ok.acl', { baseDir: '/acl' });
      assert.ok(r.acl, `${name}: ${formatDiagnostics(r.diagnostics)}`);
      evaluate(r.acl, ctx({ port: 1, host: 'a.example' }));
      const parsed = parseAcl(source, 'ok.acl');
      assert.deepEqual(parsed.diagnostics, []);
      assert.ok(printAcl(parsed.ast).length > 0);
    }
    const { source } = deepAcls(MAX_NESTING)[0];
    assert.ok(compileAclSource(source, 'ok.acl', { baseDir: '/acl' }).acl);
  });

  test('parentheses inside strings and comments do not count', () => {
    const src = `policy a {\n  # ${'('.repeat(500)}\n  when host == "${'('.repeat(500)}" or port == 1\n  action allow\n}\n`;
    const r = compileAclSource(src, 'ok.acl', { baseDir: '/acl' });
    assert.deepEqual(
      r.diagnostics.filter((d) => d.severity === 'error'),
      [],
    );
  });

  test('parentheses inside a string spanning lines do not count either', () => {
    const deep = '('.repeat(100);
    const src = `policy a {\n  when host == "x\n${deep}\n" or port == 1\n  action allow\n}\n`;
    const r = compileAclSource(src, 'ok.acl', { baseDir: '/acl' });
    assert.deepEqual(
      r.diagnostics.filter((d) => d.severity === 'error'),
      [],
    );
    // …and `not-` names are names, not `not`s.
    const nots = `policy a {\n  when ${'not-x == 1 and '.repeat(100)}port == 1\n  action allow\n}\n`;
    assert.ok(compileAclSource(nots, 'ok.acl', { baseDir: '/acl' }).acl);
  });

  test('nesting spread over many blocks does not add up', () => {
    const block = `policy p_N {\n  when ${'not ('.repeat(30)}port == 1${')'.repeat(30)}\n  action allow\n}\n`;
    let src = '';
    for (let i = 0; i < 50; i++) src += block.replace('N', String(i));
    assert.ok(compileAclSource(src, 'ok.acl', { baseDir: '/acl' }).acl);
  });

  for (const op of ['or', 'and'] as const) {
    test(`a flat chain of 50,000 \`${op}\`: valid, compiled, evaluated, printed`, () => {
      const src = longChain(50_000, op);
      const r = compileAclSource(src, 'chain.acl', { baseDir: '/acl' });
      assert.ok(r.acl, formatDiagnostics(r.diagnostics));
      const d = evaluate(r.acl, ctx({ port: 49_999, host: 'a.example' }));
      assert.equal(d.policy, op === 'or' ? 'deep' : 'rest');
      assert.ok(printAcl(parseAcl(src, 'chain.acl').ast).length > src.length / 2);
    });
  }

  test('a chain of 200,000 host names in nested `or`s keys the host index', () => {
    const names: string[] = [];
    for (let i = 0; i < 200_000; i++) names.push(`host == "h${i}.example"`);
    const src = `policy a {\n  when (${names.join(' or ')}) or host == "last.example"\n  action allow\n}\npolicy rest { action deny }\n`;
    const r = compileAclSource(src, 'chain.acl', { baseDir: '/acl' });
    assert.ok(r.acl, formatDiagnostics(r.diagnostics));
    assert.equal(evaluate(r.acl, ctx({ host: 'h123.example', port: 1 })).policy, 'a');
    assert.equal(evaluate(r.acl, ctx({ host: 'nope.example', port: 1 })).policy, 'rest');
  });
});

describe('portail check-acl-syntax on deep input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portail-deep-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const levels of [2000, 100_000]) {
    test(`${levels} levels: exit 1, file:line:column and a caret, no stack trace`, async () => {
      const { source } = deepAcls(levels)[0];
      const file = join(dir, `deep${levels}.acl`);
      writeFileSync(file, source);
      const r = await runPortail(['check-acl-syntax', file], dir, 60_000);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /RangeError|Maximum call stack|\n\s+at /);
      const lines = r.stderr.split('\n');
      const i = lines.findIndex((l) => l.startsWith(`${file}:2:72: error: expression nested`));
      assert.ok(i >= 0, r.stderr.slice(0, 2000));
      // The caret is under the 65th `(` (column 72).
      assert.equal(lines[i + 2], `  ${' '.repeat(71)}^`);
    });
  }
});
