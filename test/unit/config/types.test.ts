// Wrong types and bad values: the message says what was expected and what was found.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDnsServer } from '../../../proxy/net/resolver.js';
import { assertOneError, load } from './helpers.js';

test('wrong types are reported in TOML terms', async () => {
  const cases: [string, RegExp][] = [
    ['tcp-nodelay = "yes"', /^tcp-nodelay: expected true or false, got a string \("yes"\)$/],
    ['watch-acl = 1', /^watch-acl: expected true or false, got an integer \(1\)$/],
    ['fallback-to-direct = [true]', /^fallback-to-direct: expected true or false, got an array$/],
    ['max-connections = "4096"', /^max-connections: expected an integer, got a string \("4096"\)$/],
    ['max-connections = 0', /^max-connections: must be between 1 and 1000000, got 0$/],
    ['max-connections = 1000001', /must be between 1 and 1000000/],
    [
      'filter-acl-rules-path = 3',
      /^filter-acl-rules-path: expected a file path \(a string\), got an integer \(3\)$/,
    ],
    ['filter-acl-rules-path = ""', /^filter-acl-rules-path: must not be empty$/],
    ['filter-acl-rules-path = "~bob/x.acl"', /only "~\/" \(the current user's home\) is supported/],
    ['default-backend = 1', /^default-backend: expected a backend name, got an integer/],
    ['outgoing-address = "example.com"', /^outgoing-address: "example.com" is not an IP address/],
    ['outgoing-address = "[::1]"', /^outgoing-address: "\[::1\]" is not an IP address/],
    ['dns = 5', /^dns: expected a table, got an integer \(5\)$/],
    ['backends = []', /^backends: expected a table, got an array$/],
    ['handshake-timeout = 1979-05-27', /^handshake-timeout: expected a duration/],
    [
      '[dns]\nresolvers = "1.1.1.1"',
      /^dns\.resolvers: expected an array of IP addresses, got a string/,
    ],
    [
      '[dns]\nresolvers = ["1.1.1.1", "resolver.example"]',
      /^dns\.resolvers\[2\]: expected an IP address/,
    ],
    ['[dns]\nresolvers = ["1.1.1.1:99999"]', /^dns\.resolvers\[1\]: expected an IP address/],
    [
      '[rpc]\nadmin-groups = "wheel"',
      /^rpc\.admin-groups: expected an array of group names, got a string/,
    ],
    [
      '[rpc]\ntrusted-groups = ["a", 2]',
      /^rpc\.trusted-groups\[2\]: expected a non-empty string, got an integer \(2\)$/,
    ],
    [
      '[log]\nlevel = "verbose"',
      /^log\.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", got a string \("verbose"\)$/,
    ],
    [
      '[log]\naudit = "syslog"',
      /^log\.audit: expected "journald", "stdout" or "file:PATH", got a string \("syslog"\)$/,
    ],
    ['[log]\naudit = "file:"', /^log\.audit: "file:" needs a path/],
    ['[metrics]\nlisten = "9469"', /^metrics\.listen: "9469": expected HOST:PORT/],
    ['[metrics]\nlisten = 9469', /^metrics\.listen: expected "HOST:PORT", got an integer/],
    ['[listener]\nproxy-protocol = "v2"', /^listener\.proxy-protocol: expected true or false/],
    ['[escaper]\npkcs11-uri = 7', /^escaper\.pkcs11-uri: expected a PKCS#11 URI, got an integer/],
    ['[geoip]\ndatabase = false', /^geoip\.database: expected a file path/],
  ];
  for (const [text, re] of cases) await assertOneError(text, re);
});

test('the caret of an array element points at the element', async () => {
  const d = await assertOneError('[dns]\nresolvers = ["1.1.1.1", "nope"]\n', /resolvers\[2\]/);
  assert.deepEqual([d.line, d.column, d.length], [2, 25, 6]);
});

test('TOML floats that are whole numbers are integers', async () => {
  assert.equal((await load('max-connections = 10.0')).maxConnections, 10);
});

test('[dns] resolvers: bare IPs (upstream) and IP:PORT, both families, in one list', async () => {
  const entries = ['192.0.2.53', '2001:db8::53', '192.0.2.54:5353', '[2001:db8::54]:5353'];
  const c = await load(`[dns]\nresolvers = ${JSON.stringify(entries)}\n`);
  assert.deepEqual(c.dns.resolvers, entries);
  assert.deepEqual(entries.map(parseDnsServer), [
    '192.0.2.53',
    '[2001:db8::53]',
    '192.0.2.54:5353',
    '[2001:db8::54]:5353',
  ]);
});
