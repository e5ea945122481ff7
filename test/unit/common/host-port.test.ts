// The one HOST:PORT grammar (common/host-port.ts): the configuration's checked form is
// tested through the loader (test/unit/config/addresses.test.ts); here, the form the
// command lines use for a destination (port optional, the host left to the daemon).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHostPort, parseHostPort } from '../../../common/host-port.js';

const dest = (text: string) => parseHostPort(text, { portOptional: true, host: 'any' });

test('HOST[:PORT]: the port may be left out, a bare IPv6 is a host', () => {
  assert.deepEqual(dest('example.com'), { host: 'example.com' });
  assert.deepEqual(dest('example.com:22'), { host: 'example.com', port: 22 });
  assert.deepEqual(dest('::1'), { host: '::1' });
  assert.deepEqual(dest('[::1]'), { host: '::1' });
  assert.deepEqual(dest('[::1]:22'), { host: '::1', port: 22 });
  // Not a DNS name, but the daemon judges destinations (IDNA, its own message).
  assert.deepEqual(dest('bad..host'), { host: 'bad..host' });
  assert.deepEqual(dest('bücher.example'), { host: 'bücher.example' });
});

test('HOST[:PORT]: what no reading can use is refused, in the same words', () => {
  for (const [text, re] of [
    ['', /is not a valid host name/],
    [':22', /is not a valid host name/],
    ['a.example.com:99999', /port must be a number from 1 to 65535/],
    ['[::1]x', /expected HOST or HOST:PORT/],
    ['[::1', /missing "\]"/],
    ['[10.0.0.1]:1', /is not an IPv6 address/],
  ] as const) {
    const r = dest(text);
    assert.ok('error' in r, text);
    assert.match(r.error, re, text);
  }
});

test('formatHostPort brackets any host holding a colon', () => {
  assert.equal(formatHostPort({ host: 'fe80::1%eth0', port: 1 }), '[fe80::1%eth0]:1');
  assert.equal(formatHostPort({ host: 'a.b', port: 2 }), 'a.b:2');
});
