// TOML syntax errors and unreadable files: line and column from the parser, and the
// rendering `FILE:LINE:COLUMN: error: MESSAGE` + source line + caret.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, formatConfigError } from '../../../proxy/config/errors.js';
import { loadConfig } from '../../../proxy/config/load.js';
import { loadErrors, tempDir } from './helpers.js';

async function failure(path: string): Promise<ConfigError> {
  try {
    await loadConfig(path);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('a TOML syntax error carries the parser line and column', async () => {
  const ds = await loadErrors('tcp-nodelay = false\n[dns]\ntimeout = \n');
  assert.equal(ds.length, 1);
  assert.match(ds[0].message, /^TOML syntax error: /);
  assert.deepEqual([ds[0].line, ds[0].column], [3, 11]);
  assert.equal(ds[0].sourceLine, 'timeout = ');
});

test('a duplicated key is a syntax error at its second occurrence', async () => {
  const ds = await loadErrors('idle-timeout = 1\nidle-timeout = 2\n');
  assert.equal(ds.length, 1);
  assert.match(ds[0].message, /^TOML syntax error: .*redefine/);
  assert.equal(ds[0].line, 2);
});

test('an unterminated string and an unclosed table header', async () => {
  let ds = await loadErrors('a = 1\nfilter-acl-rules-path = "filter.acl\n');
  assert.equal(ds[0].line, 2);
  ds = await loadErrors('\n\n[backends.a\n');
  assert.equal(ds[0].line, 3);
});

test('"__proto__" and friends are refused, not silently dropped', async () => {
  const ds = await loadErrors('[backends.__proto__]\ndynamic = true\n');
  assert.match(ds[0].message, /unsafe/);
  assert.equal(ds[0].line, 1);
});

test('formatConfigError renders file:line:column, the line and a caret', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const file = join(dir, 'bad.toml');
  writeFileSync(file, 'watch-acl = true\nmax-connections = = 3\n');
  const out = formatConfigError(await failure(file));
  const lines = out.split('\n');
  assert.equal(lines.length, 3);
  assert.match(
    lines[0],
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:19: error: TOML syntax error: `),
  );
  assert.equal(lines[1], '  max-connections = = 3');
  assert.equal(lines[2], `  ${' '.repeat(18)}^`);
});

test('the file name in diagnostics is the path as given', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const cwd = process.cwd();
  t.after(() => process.chdir(cwd));
  process.chdir(dir);
  writeFileSync('rel.toml', 'nope = 1\n');
  const err = await failure('rel.toml');
  assert.equal(err.diagnostics[0].file, 'rel.toml');
  assert.match(
    formatConfigError(err),
    /^rel\.toml:1:1: error: nope: unknown key\n {2}nope = 1\n {2}\^\^\^\^$/,
  );
  assert.match(err.message, /^rel\.toml:1:1: nope: unknown key$/);
});

test('a missing file, a folder, invalid UTF-8', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  let err = await failure(join(dir, 'missing.toml'));
  assert.equal(err.diagnostics[0].line, 0);
  assert.equal(
    formatConfigError(err),
    `${join(dir, 'missing.toml')}: error: cannot read the configuration: no such file`,
  );
  mkdirSync(join(dir, 'folder.toml'));
  err = await failure(join(dir, 'folder.toml'));
  assert.match(err.diagnostics[0].message, /is a directory/);
  writeFileSync(
    join(dir, 'latin1.toml'),
    Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x22, 0xe9, 0x22, 0x0a]),
  );
  err = await failure(join(dir, 'latin1.toml'));
  assert.match(err.diagnostics[0].message, /not valid UTF-8/);
});

test('a UTF-8 byte-order mark is tolerated', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  writeFileSync(join(dir, 'bom.toml'), '\uFEFFwatch-acl = false\n');
  assert.equal((await loadConfig(join(dir, 'bom.toml'))).watchAcl, false);
});

test('formatConfigError on other errors gives their message', () => {
  assert.equal(formatConfigError(new Error('boom')), 'boom');
  assert.equal(formatConfigError('plain'), 'plain');
});
