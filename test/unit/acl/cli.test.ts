// `portail check-acl-syntax [--config FILE] [--json] ACL_FILE`
// (docs/reference/commands.md), run as users run it: the built CLI in a child process. Exit
// 0 when valid (warnings allowed), 1 with `file:line:column`, the source line and a caret
// otherwise, 2 on usage errors.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CliRun, FIXTURES, ROOT, runPortail } from './helpers.js';

const CONFIG_LOADER = join(ROOT, 'dist', 'proxy', 'config', 'load.js');

type Run = CliRun;

function portail(args: string[], cwd = FIXTURES): Promise<Run> {
  return runPortail(args, cwd);
}

/** The CLI must start at all: a broken import fails every test with the reason. */
function assertStarted(r: Run): void {
  assert.doesNotMatch(
    r.stderr,
    /ERR_MODULE_NOT_FOUND|SyntaxError: The requested module|Cannot find module/,
    `the CLI did not start:\n${r.stderr}`,
  );
}

/** The three lines of a diagnostic: head, source line, caret line. */
function diagnosticAt(stderr: string, head: RegExp): [string, string, string] {
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => head.test(l));
  assert.ok(i >= 0, `no diagnostic matching ${head} in:\n${stderr}`);
  return [lines[i], lines[i + 1] ?? '', lines[i + 2] ?? ''];
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portail-cli-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('portail check-acl-syntax', () => {
  test('a valid file: exit 0', async () => {
    const r = await portail(['check-acl-syntax', 'valid.acl']);
    assertStarted(r);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid\.acl: OK/);
    assert.doesNotMatch(r.stderr, /error/);
  });

  test('list files and templates resolve against the ACL file, not the working directory', async () => {
    const r = await portail(
      ['check-acl-syntax', join('test', 'fixtures', 'acl', 'valid.acl')],
      ROOT,
    );
    assertStarted(r);
    assert.equal(r.code, 0, r.stderr);
  });

  test('warnings only: exit 0, the warnings are listed with their position', async () => {
    const r = await portail(['check-acl-syntax', 'warnings.acl']);
    assertStarted(r);
    assert.equal(r.code, 0, r.stderr);
    diagnosticAt(r.stderr, /^warnings\.acl:3:8: warning: unknown attribute custom\.trust/);
    diagnosticAt(r.stderr, /^warnings\.acl:8:32: warning: .*explain\/missing\.html/);
  });

  test('an invalid file: exit 1, file:line:column, the source line and a caret', async () => {
    const r = await portail(['check-acl-syntax', 'invalid.acl']);
    assertStarted(r);
    assert.equal(r.code, 1);
    const [, src, caret] = diagnosticAt(r.stderr, /^invalid\.acl:2:13: error: syntax error/);
    assert.equal(src, '    when host "x.example"');
    assert.equal(caret, `  ${' '.repeat(12)}${'^'.repeat('"x.example"'.length)}`);
    const [, src2, caret2] = diagnosticAt(r.stderr, /^invalid\.acl:8:3: error: duplicate `when`/);
    assert.equal(src2, '    when port == 80');
    assert.equal(caret2, '    ^^^^');
    assert.match(r.stderr, /expected/);
    // Without --config, backend names are not checked.
    assert.doesNotMatch(r.stderr, /par09/);
  });

  test('--json: parseable, with valid and positioned diagnostics', async () => {
    const bad = await portail(['check-acl-syntax', '--json', 'invalid.acl']);
    assertStarted(bad);
    assert.equal(bad.code, 1);
    const out = JSON.parse(bad.stdout) as {
      valid: boolean;
      diagnostics: {
        severity: string;
        line: number;
        column: number;
        message: string;
        file: string;
      }[];
    };
    assert.equal(out.valid, false);
    assert.deepEqual(out.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity}`).sort(), [
      '2:13 error',
      '8:3 error',
    ]);
    for (const d of out.diagnostics) {
      assert.equal(typeof d.message, 'string');
      assert.match(d.file, /invalid\.acl$/);
      for (const key of ['severity', 'length', 'sourceLine']) assert.ok(key in d, key);
    }
    const good = await portail(['check-acl-syntax', '--json', 'warnings.acl']);
    assert.equal(good.code, 0, good.stderr);
    const g = JSON.parse(good.stdout) as {
      valid: boolean;
      diagnostics: { line: number; column: number }[];
    };
    assert.equal(g.valid, true);
    assert.deepEqual(g.diagnostics.map((d) => `${d.line}:${d.column}`).sort(), ['3:8', '8:32']);
  });

  test('--config names the backends: an unknown one is an error', async (t) => {
    if (!existsSync(CONFIG_LOADER)) {
      t.skip('needs the configuration loader (proxy/config/load.ts, not built yet)');
      return;
    }
    const ok = await portail(['check-acl-syntax', '--config', 'portail.toml', 'valid.acl']);
    assertStarted(ok);
    assert.equal(ok.code, 0, ok.stderr);

    const acl = join(dir, 'routes.acl');
    writeFileSync(
      acl,
      'route r {\n  when host == "y.example"\n  use ["par01", "par09"]\n}\npolicy p { action allow }\n',
    );
    const bad = await portail(
      ['check-acl-syntax', '--config', join(FIXTURES, 'portail.toml'), acl],
      dir,
    );
    assert.equal(bad.code, 1);
    const [head, src, caret] = diagnosticAt(bad.stderr, /:3:17: error: unknown backend "par09"/);
    assert.ok(head.startsWith(acl), head);
    assert.equal(src, '    use ["par01", "par09"]');
    assert.equal(caret, `  ${' '.repeat(16)}^^^^^^^`);

    const json = await portail([
      'check-acl-syntax',
      '--json',
      '--config',
      'portail.toml',
      'invalid.acl',
    ]);
    assert.equal(json.code, 1);
    const out = JSON.parse(json.stdout) as {
      valid: boolean;
      diagnostics: { line: number; column: number }[];
    };
    assert.equal(out.valid, false);
    assert.ok(out.diagnostics.some((d) => d.line === 14 && d.column === 17));

    // The same ACL without configuration: names are not checked.
    const unchecked = await portail(['check-acl-syntax', acl], dir);
    assert.equal(unchecked.code, 0, unchecked.stderr);
  });

  test('an unreadable ACL file: exit 1 with a message', async () => {
    const r = await portail(['check-acl-syntax', join(dir, 'missing.acl')]);
    assertStarted(r);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.acl/);
  });

  test('usage error (no ACL file): exit 2', async () => {
    const r = await portail(['check-acl-syntax']);
    assertStarted(r);
    assert.equal(r.code, 2);
  });
});
