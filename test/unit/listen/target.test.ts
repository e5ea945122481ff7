import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHostPort } from '../../../common/host-port.js';
import { normalizeTargetHost, parseAuthority } from '../../../proxy/listen/target.js';
import { canonicalIp } from '../../../proxy/net/ip.js';

test('hostnames: lower case, no trailing dot, IDNA to punycode', () => {
  assert.equal(normalizeTargetHost('Example.COM'), 'example.com');
  assert.equal(normalizeTargetHost('example.com.'), 'example.com');
  assert.equal(normalizeTargetHost('bücher.de'), 'xn--bcher-kva.de');
  assert.equal(normalizeTargetHost('BÜCHER.de.'), 'xn--bcher-kva.de');
  assert.equal(normalizeTargetHost('a\u3002b'), 'a.b'); // ideographic full stop
  assert.equal(normalizeTargetHost('_srv.host-1.example'), '_srv.host-1.example');
  assert.equal(normalizeTargetHost('localhost'), 'localhost');
});

test('numeric spellings of IPv4 become the dotted quad (what getaddrinfo would dial)', () => {
  assert.equal(normalizeTargetHost('2130706433'), '127.0.0.1');
  assert.equal(normalizeTargetHost('0x7f.1'), '127.0.0.1');
  assert.equal(normalizeTargetHost('0177.0.0.1'), '127.0.0.1');
  assert.equal(normalizeTargetHost('127.1'), '127.0.0.1');
  assert.equal(normalizeTargetHost('1.2.3.4.5'), null);
  assert.equal(normalizeTargetHost('999.1.1.1'), null);
  assert.equal(normalizeTargetHost('example.123'), null);
});

test('IP literals: canonical, IPv4-mapped IPv6 unmapped, brackets removed', () => {
  assert.equal(normalizeTargetHost('[::1]'), '::1');
  assert.equal(normalizeTargetHost('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeTargetHost('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIp('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(canonicalIp('fe80::1%eth0'), null);
  assert.equal(canonicalIp('example.com'), null);
});

test('names that cannot be a destination are refused', () => {
  for (const bad of [
    '',
    '.',
    'a..b',
    '.a',
    'exa mple.com',
    'a/b',
    'a@b',
    'a:b',
    '%41.com',
    'a\0b',
    'a\\b',
    `${'a'.repeat(64)}.com`,
    `${'a.'.repeat(130)}com`,
    'ü ber.de',
  ]) {
    assert.equal(normalizeTargetHost(bad), null, JSON.stringify(bad));
  }
});

test('authorities: host, host:port, [v6], [v6]:port; default port', () => {
  assert.deepEqual(parseAuthority('example.com:8443', 443), { host: 'example.com', port: 8443 });
  assert.deepEqual(parseAuthority('Example.com', 443), { host: 'example.com', port: 443 });
  assert.deepEqual(parseAuthority('example.com:', 80), { host: 'example.com', port: 80 });
  assert.deepEqual(parseAuthority('[::1]:22', 443), { host: '::1', port: 22 });
  assert.deepEqual(parseAuthority('[::1]', 443), { host: '::1', port: 443 });
  assert.deepEqual(parseAuthority('[::1]:', 443), { host: '::1', port: 443 });
  assert.deepEqual(parseAuthority('10.0.0.1:0080', 443), { host: '10.0.0.1', port: 80 });
  for (const bad of [
    '',
    ':443',
    'a:0',
    'a:65536',
    'a:-1',
    'a:+1',
    'a:1:2',
    '::1:443',
    '[::1',
    '[::1]443',
    '[10.0.0.1]:1',
    '[fe80::1%25eth0]:1',
    'u@h:1',
    'h:1/',
    'h:1?',
    'h h:1',
  ]) {
    assert.equal(parseAuthority(bad, 443), null, JSON.stringify(bad));
  }
});

test('formatHostPort brackets IPv6 only', () => {
  assert.equal(formatHostPort({ host: '::1', port: 1 }), '[::1]:1');
  assert.equal(formatHostPort({ host: 'a.b', port: 2 }), 'a.b:2');
  assert.equal(formatHostPort({ host: '1.2.3.4', port: 3 }), '1.2.3.4:3');
});
