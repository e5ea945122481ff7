// The backend extension key `http2` (identity-aware HTTP backends: offer h2 by ALPN or
// only http/1.1): its type, where it is valid, and that its misspellings stay errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorMessages, load } from './helpers.js';

const ESCAPER = '[escaper]\ntls-certificate = "c.pem"\ntls-privkey = "k.pem"\n';
const backend = (extra: string) =>
  `${ESCAPER}[backends.gw]\ntype = "http"\ntarget-address = "127.0.0.1:8443"\nidentity-aware = true\n${extra}`;

test('http2 = false is kept; absent means the default (h2 offered)', async () => {
  const off = await load(backend('http2 = false\n'));
  assert.equal(off.backends.gw?.http2, false);
  const on = await load(backend('http2 = true\n'));
  assert.equal(on.backends.gw?.http2, true);
  const absent = await load(backend(''));
  assert.equal(absent.backends.gw?.http2, undefined);
  assert.deepEqual(absent.warnings, []);
});

test('unhappy: http2 must be a boolean, and a misspelt key is still an error', async () => {
  const typed = await errorMessages(backend('http2 = "no"\n'));
  assert.equal(typed.length, 1);
  assert.match(typed[0] ?? '', /backends\.gw\.http2: expected true or false/);
  const typo = await errorMessages(backend('htttp2 = false\n'));
  assert.equal(typo.length, 1);
  assert.match(typo[0] ?? '', /backends\.gw\.htttp2: unknown key/);
});

test('unhappy: http2 on a SOCKS5 or SSH backend is an error', async () => {
  for (const type of ['socks5', 'ssh']) {
    const ssh = type === 'ssh' ? 'user = "u"\nknown-hosts = "kh"\nagent = true\n' : '';
    const msgs = await errorMessages(
      `[backends.b]\ntype = "${type}"\ntarget-address = "127.0.0.1:22"\n${ssh}http2 = false\n`,
    );
    assert.deepEqual(msgs.filter((m) => /http2/.test(m)).length, 1, `${type}: ${msgs.join('; ')}`);
    assert.match(msgs.join('\n'), /http2: is only valid for HTTP backends/);
  }
});

test('http2 without identity-aware is accepted with a warning (nothing to negotiate)', async () => {
  const c = await load(
    '[backends.p]\ntype = "http"\ntarget-address = "127.0.0.1:3128"\nhttp2 = false\n',
  );
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0]?.message ?? '', /http2: has no effect without identity-aware/);
});
