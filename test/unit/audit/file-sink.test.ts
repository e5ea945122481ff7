import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openFileSink } from '../../../proxy/audit/file-sink.js';

test('file sink: appends at once, reopen() follows a rotation', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portail-sink-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'sub', 'audit.jsonl');
  const errors: Error[] = [];
  const sink = openFileSink(path, (e) => errors.push(e));
  sink.write('one\n');
  // Synchronous: on disk before write() returns.
  assert.equal(readFileSync(path, 'utf8'), 'one\n');
  renameSync(path, `${path}.1`);
  sink.write('two\n');
  sink.reopen();
  sink.write('three → ünïcode\n');
  sink.close();
  sink.write('after close\n');
  assert.equal(readFileSync(`${path}.1`, 'utf8'), 'one\ntwo\n');
  assert.equal(readFileSync(path, 'utf8'), 'three → ünïcode\n');
  assert.deepEqual(errors, []);
});

test('file sink: a full disk is reported once per error and never throws', () => {
  const errors: Error[] = [];
  const sink = openFileSink('/dev/full', (e) => errors.push(e));
  for (let i = 0; i < 5; i++) sink.write('a record that cannot be written\n');
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ENOSPC');
  sink.close();
});

test('file sink: an audit file that cannot be opened is a start-up error naming it', () => {
  assert.throws(
    () => openFileSink('/proc/version/audit.jsonl', () => {}),
    /cannot open the audit file \/proc\/version\/audit\.jsonl/,
  );
});
