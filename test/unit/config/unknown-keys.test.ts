// Unknown keys are errors naming the full key path and its line (a typo must never be
// silently ignored in a security product).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatConfigError } from '../../../proxy/config/errors.js';
import { assertOneError, load, loadErrors } from './helpers.js';

test('an unknown top-level key', async () => {
  const d = await assertOneError(
    'handshake-timeout = 15\nconect-timeout = 5\n',
    /^conect-timeout: unknown key \(did you mean "connect-timeout"\?\)$/,
  );
  assert.deepEqual([d.line, d.column, d.length], [2, 1, 'conect-timeout'.length]);
});

test('snake_case spellings of keys upstream knows: a warning, and the key they spell (upstream example)', async () => {
  // Upstream's examples/config.toml writes `tcp_nodelay`, which upstream ignores.
  let c = await load('connect-timeout = 5\ntcp_nodelay = true\n');
  assert.equal(c.tcpNodelay, true);
  assert.deepEqual(
    c.warnings.map((d) => `${d.line}:${d.column} ${d.message}`),
    [
      '2:1 tcp_nodelay: read as "tcp-nodelay" (upstream ignores this spelling; portail applies it): write "tcp-nodelay"',
    ],
  );
  c = await load(
    '[rpc]\nadmin_groups = ["wheel"]\n[listener]\ntls_privkey = "k.pem"\ntls_chain = "c.pem"\ncacert_file = "ca.pem"\n[backends.a]\ntarget_address = "192.0.2.1:1080"\n',
  );
  assert.deepEqual(c.rpc.adminGroups, ['wheel']);
  assert.match(c.listener.cacertFile ?? '', /ca\.pem$/);
  assert.equal(c.backends.a?.targetAddress?.port, 1080);
  assert.equal(c.warnings.length, 5);
  // A bad value is reported under the key as written, on its line.
  const d = await assertOneError('\ntcp_nodelay = "yes"\n', /^tcp_nodelay: expected true or false/);
  assert.deepEqual([d.line, d.column], [2, 1]);
  // Both spellings of one key: which one is meant? An error.
  await assertOneError(
    'tcp_nodelay = true\ntcp-nodelay = false\n',
    /^tcp_nodelay: is "tcp-nodelay" written another way, and "tcp-nodelay" is set too: keep one$/,
  );
});

test('other snake_case and camelCase spellings stay errors, with their kebab-case form suggested', async () => {
  // Our own keys (upstream has none of them): a typo in require-tls must not pass.
  await assertOneError(
    '[listener]\nrequire_tls = true\n',
    /^listener\.require_tls: unknown key \(did you mean "require-tls"\?\)/,
  );
  await assertOneError('idle_timeout = 3', /did you mean "idle-timeout"/);
  await assertOneError('maxConnections = 3', /did you mean "max-connections"/);
});

test("request-timeout is upstream's alias of connect-timeout", async () => {
  const c = await load('request-timeout = 7\n');
  assert.equal(c.connectTimeoutMs, 7000);
  assert.deepEqual(c.warnings, []);
  const d = await assertOneError('request-timeout = "x"\n', /^request-timeout: invalid duration/);
  assert.equal(d.line, 1);
  await assertOneError(
    'request-timeout = 7\nconnect-timeout = 5\n',
    /^request-timeout: is "connect-timeout" written another way/,
  );
});

test('a key with nothing close to it gets no suggestion', async () => {
  const d = await assertOneError('frobnicate = 1', /^frobnicate: unknown key$/);
  assert.equal(d.line, 1);
});

test('an unknown key in a table', async () => {
  const d = await assertOneError(
    '[listener]\nproxy-protocol = true\ntls-key = "k.pem"\n',
    /^listener\.tls-key: unknown key/,
  );
  assert.deepEqual([d.line, d.column], [3, 1]);
});

test('an unknown table', async () => {
  const d = await assertOneError(
    '\n[listner]\nrequire-tls = true\n',
    /^listner: unknown key \(did you mean "listener"\?\)/,
  );
  assert.deepEqual([d.line, d.column, d.length], [2, 2, 7]);
});

test('an unknown key in a backend names the backend and the line', async () => {
  const text = [
    '[backends.par01]',
    'target-address = "gw1.example.com:8443"',
    '',
    '[backends.par02]',
    'type = "socks5"',
    'target-adress = "gw2.example.com:8443"',
  ].join('\n');
  const ds = await loadErrors(text);
  const unknown = ds.find((d) => /unknown key/.test(d.message));
  assert.ok(unknown);
  assert.equal(
    unknown.message,
    'backends.par02.target-adress: unknown key (did you mean "target-address"?)',
  );
  assert.deepEqual([unknown.line, unknown.column], [6, 1]);
  // …and because of the typo the address is missing: reported too, on the table header.
  const missing = ds.find((d) => /target-address is required/.test(d.message));
  assert.ok(missing);
  assert.equal(missing.message.split(':')[0], 'backends.par02');
  assert.deepEqual([missing.line, missing.column], [4, 11]);
});

test('unknown keys written as dotted keys and inline tables are located', async () => {
  let d = await assertOneError('listener.tls-key = "x"\n', /^listener\.tls-key: unknown key/);
  assert.deepEqual([d.line, d.column], [1, 10]);
  d = await assertOneError(
    'backends = { a = { dynamic = true, colour = "red" } }\n',
    /^backends\.a\.colour: unknown key/,
  );
  assert.deepEqual([d.line, d.column], [1, 36]);
});

test('every problem is reported at once, in file order, with the caret under the key', async () => {
  const text = 'a-typo = 1\n[dns]\nresolver = []\n[log]\nlevle = "info"\n';
  const ds = await loadErrors(text);
  assert.deepEqual(
    ds.map((d) => `${d.line}:${d.column} ${d.message}`),
    [
      '1:1 a-typo: unknown key',
      '3:1 dns.resolver: unknown key (did you mean "resolvers"?)',
      '5:1 log.levle: unknown key (did you mean "level"?)',
    ],
  );
  const { ConfigError } = await import('../../../proxy/config/errors.js');
  const out = formatConfigError(new ConfigError(ds));
  const lines = out.split('\n');
  assert.equal(lines.length, 9);
  assert.match(lines[0], /portail-\d+\.toml:1:1: error: a-typo: unknown key$/);
  assert.equal(lines[1], '  a-typo = 1');
  assert.equal(lines[2], '  ^^^^^^');
  assert.match(lines[6], /:5:1: error: log\.levle: unknown key \(did you mean "level"\?\)$/);
  assert.equal(lines[7], '  levle = "info"');
  assert.equal(lines[8], '  ^^^^^');
});

test('a quoted key that is unknown', async () => {
  const d = await assertOneError('[log]\n"audit file" = "x"\n', /^log\."audit file": unknown key/);
  assert.deepEqual([d.line, d.column], [2, 1]);
});

test('known keys are all accepted together (every documented key, less the files)', async () => {
  const c = await load(`
filter-acl-rules-path = "filter.acl"
explain-acl-rules-path = "explain.acl"
handshake-timeout = 15
connect-timeout = 5
idle-timeout = 3600
tcp-nodelay = false
max-connections = 4096
default-backend = "par01"
fallback-to-direct = true
watch-acl = true
outgoing-address = "192.0.2.10"
[dns]
resolvers = []
timeout = 5
[listener]
cacert-file = "ca.pem"
tls-privkey = "server.key"
tls-chain = "fullchain.pem"
proxy-protocol = false
require-tls = false
[escaper]
cacert-file = "ca.pem"
pkcs11-uri = "pkcs11:token=dev;object=devkey"
pkcs11-module = "/usr/lib/softhsm/libsofthsm2.so"
[rpc]
admin-groups = ["wheel"]
trusted-groups = ["portail"]
[log]
audit = "journald"
level = "info"
[metrics]
listen = "127.0.0.1:9469"
[geoip]
database = "GeoLite2-Country.mmdb"
[backends.par01]
type = "socks5"
target-address = "gw1.example.com:8443"
identity-aware = true
tls-server-name = "gw1.example.com"
[backends.squid]
type = "http"
target-address = "127.0.0.1:3128"
[backends.bastion]
type = "ssh"
target-address = "bastion.example.com:22"
user = "alice"
identity-file = "/home/alice/.ssh/id_ed25519"
known-hosts = "/home/alice/.ssh/known_hosts"
[backends.dyn]
dynamic = true
`);
  assert.deepEqual(Object.keys(c.backends), ['par01', 'squid', 'bastion', 'dyn']);
  assert.equal(c.escaper.pkcs11Uri, 'pkcs11:token=dev;object=devkey');
  assert.equal(c.backends.bastion?.type, 'ssh');
  assert.deepEqual(c.warnings, []);
});
