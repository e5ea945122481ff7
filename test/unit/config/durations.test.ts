// Durations: integer seconds or "1500ms"/"30s"/"5m"/"2h"/"1d", milliseconds internally.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../../proxy/config/durations.js';
import { assertOneError, load } from './helpers.js';

test('bad durations are rejected with the key, line and a hint', async () => {
  const cases: [string, RegExp][] = [
    ['"30"', /invalid duration "30".*ms, s, m, h, d/],
    ['"30 s"', /invalid duration "30 s"/],
    ['"1.5s"', /invalid duration "1.5s"/],
    ['"-5s"', /invalid duration "-5s"/],
    ['"5x"', /invalid duration "5x"/],
    ['"5S"', /invalid duration "5S"/],
    ['""', /invalid duration ""/],
    ['-1', /cannot be negative/],
    ['1.5', /expected whole seconds .*got 1.5/],
    ['true', /expected a duration/],
    ['[5]', /expected a duration/],
    ['0', /must be greater than zero/],
    ['"0ms"', /must be greater than zero/],
    ['"25d"', /too long \(at most 24 days/],
    ['2073601', /too long/],
  ];
  for (const [value, re] of cases) {
    const d = await assertOneError(`# a comment\nconnect-timeout = ${value}\n`, re);
    assert.match(d.message, /^connect-timeout: /);
    assert.equal(d.line, 2, value);
    assert.equal(d.column, 1);
  }
});

test('a bad duration in a table names the full path', async () => {
  const d = await assertOneError(
    '[dns]\ntimeout = "fast"\n',
    /^dns\.timeout: invalid duration "fast"/,
  );
  assert.equal(d.line, 2);
});

test('durations in both forms become milliseconds', async () => {
  const c = await load(
    'handshake-timeout = "1500ms"\nconnect-timeout = 7\nidle-timeout = "5m"\n[dns]\ntimeout = "2s"\n',
  );
  assert.equal(c.handshakeTimeoutMs, 1500);
  assert.equal(c.connectTimeoutMs, 7000);
  assert.equal(c.idleTimeoutMs, 300_000);
  assert.equal(c.dns.timeoutMs, 2000);
  assert.equal((await load('idle-timeout = "2h"')).idleTimeoutMs, 7_200_000);
  assert.equal((await load('idle-timeout = "1d"')).idleTimeoutMs, 86_400_000);
  assert.equal((await load('idle-timeout = "24d"')).idleTimeoutMs, 24 * 86_400_000);
});

test('0 means "no idle timeout", and only there', async () => {
  assert.equal((await load('idle-timeout = 0')).idleTimeoutMs, 0);
  assert.equal((await load('idle-timeout = "0s"')).idleTimeoutMs, 0);
  await assertOneError('handshake-timeout = 0', /^handshake-timeout: must be greater than zero/);
  await assertOneError('[dns]\ntimeout = 0', /^dns\.timeout: must be greater than zero/);
});

test('parseDuration units', () => {
  assert.equal(parseDuration('1ms', false), 1);
  assert.equal(parseDuration('1s', false), 1000);
  assert.equal(parseDuration('1m', false), 60_000);
  assert.equal(parseDuration('1h', false), 3_600_000);
  assert.equal(parseDuration('1d', false), 86_400_000);
  assert.equal(parseDuration(3, false), 3000);
  assert.deepEqual(Object.keys(parseDuration('1w', false) as object), ['error']);
});
