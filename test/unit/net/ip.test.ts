// One canonicalIp, two answers for a zone id: refused where a client names an address,
// kept where the address comes from this host (proxy/net/ip.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalIp, socketIp } from '../../../proxy/net/ip.js';

test('a zone id is refused by default, kept on request', () => {
  assert.equal(canonicalIp('fe80::1%eth0'), null);
  assert.equal(canonicalIp('[fe80::1%eth0]'), null);
  assert.equal(canonicalIp('fe80::1%eth0', 'refuse'), null);
  assert.equal(canonicalIp('FE80:0::1%eth0', 'keep'), 'fe80::1%eth0');
  assert.equal(socketIp('fe80::1%eth0'), 'fe80::1%eth0');
});

test('both ways agree on every address without a zone id', () => {
  for (const [text, want] of [
    ['10.0.0.1', '10.0.0.1'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['[2001:DB8::0:1]', '2001:db8::1'],
    ['example.com', null],
    ['', null],
  ] as const) {
    assert.equal(canonicalIp(text), want, text);
    assert.equal(canonicalIp(text, 'keep'), want, text);
  }
  assert.equal(socketIp('not an ip'), 'not an ip');
});
