// Every default of docs/configuration.md, from an empty file, and the shape of the result.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { load } from './helpers.js';

test('an empty file gets every documented default (docs/configuration.md)', async () => {
  const c = await load('');
  assert.equal(c.handshakeTimeoutMs, 15_000);
  assert.equal(c.connectTimeoutMs, 5_000);
  assert.equal(c.idleTimeoutMs, 3_600_000);
  assert.equal(c.tcpNodelay, false);
  assert.equal(c.maxConnections, 4096);
  assert.equal(c.fallbackToDirect, true);
  assert.equal(c.watchAcl, true);
  assert.equal(c.defaultBackend, undefined);
  assert.equal(c.outgoingAddress, undefined);
  assert.equal(c.filterAclRulesPath, undefined);
  assert.equal(c.explainAclRulesPath, undefined);
  assert.deepEqual(c.dns, { resolvers: [], timeoutMs: 5_000 });
  assert.deepEqual(c.listener, { proxyProtocol: false, requireTls: false });
  assert.deepEqual(c.escaper, {});
  assert.deepEqual(c.rpc, { adminGroups: [], trustedGroups: [] });
  assert.deepEqual(c.log, { level: 'info' });
  assert.deepEqual(c.metrics, {});
  assert.deepEqual(c.geoip, {});
  assert.equal(Object.keys(c.backends).length, 0);
  assert.deepEqual(c.warnings, []);
});

test('empty tables get the same defaults as absent ones', async () => {
  const c = await load(
    '[dns]\n[listener]\n[escaper]\n[rpc]\n[log]\n[metrics]\n[geoip]\n[backends]\n',
  );
  assert.deepEqual(c.dns, { resolvers: [], timeoutMs: 5_000 });
  assert.deepEqual(c.listener, { proxyProtocol: false, requireTls: false });
  assert.deepEqual(c.log, { level: 'info' });
});

test('a backend gets its defaults', async () => {
  const c = await load('[backends.a]\ntarget-address = "127.0.0.1:1080"\n');
  const a = c.backends.a;
  assert.deepEqual(a, {
    name: 'a',
    targetAddress: { host: '127.0.0.1', port: 1080 },
    dynamic: false,
    identityAware: false,
    agent: false,
  });
});

test('every value set explicitly is kept', async () => {
  const c = await load(`
handshake-timeout = 20
connect-timeout = "2s"
idle-timeout = 0
tcp-nodelay = true
max-connections = 10
fallback-to-direct = false
watch-acl = false
outgoing-address = "::1"
[dns]
resolvers = ["127.0.0.53", "[::1]:5353"]
timeout = "1500ms"
[rpc]
admin-groups = ["wheel"]
trusted-groups = ["portail", "staff"]
[log]
audit = "journald"
level = "debug"
[metrics]
listen = "[::1]:9469"
`);
  assert.equal(c.handshakeTimeoutMs, 20_000);
  assert.equal(c.connectTimeoutMs, 2_000);
  assert.equal(c.idleTimeoutMs, 0);
  assert.equal(c.tcpNodelay, true);
  assert.equal(c.maxConnections, 10);
  assert.equal(c.fallbackToDirect, false);
  assert.equal(c.watchAcl, false);
  assert.equal(c.outgoingAddress, '::1');
  assert.deepEqual(c.dns, { resolvers: ['127.0.0.53', '[::1]:5353'], timeoutMs: 1500 });
  assert.deepEqual(c.rpc, { adminGroups: ['wheel'], trustedGroups: ['portail', 'staff'] });
  assert.deepEqual(c.log, { audit: { kind: 'journald' }, level: 'debug' });
  assert.deepEqual(c.metrics, { listen: { host: '::1', port: 9469 } });
});

test('the result is deeply frozen, backends included', async () => {
  const c = await load(
    '[backends.a]\ntarget-address = "127.0.0.1:1080"\n[rpc]\nadmin-groups = ["x"]\n',
  );
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.dns));
  assert.ok(Object.isFrozen(c.rpc.adminGroups));
  assert.ok(Object.isFrozen(c.backends.a));
  assert.throws(() => {
    (c as { maxConnections: number }).maxConnections = 1;
  }, TypeError);
  const backends = c.backends as Record<string, unknown>;
  assert.throws(() => {
    backends.b = {};
  }, TypeError);
  assert.throws(() => {
    delete backends.a;
  }, TypeError);
  assert.equal(Object.getPrototypeOf(c.backends), null);
  assert.equal(Object.keys(c.backends).length, 1);
});

test('backends keep their file order', async () => {
  const c = await load(
    '[backends.zeta]\ndynamic = true\n[backends.alpha]\ndynamic = true\n[backends.mid]\ndynamic = true\n',
  );
  assert.deepEqual(Object.keys(c.backends), ['zeta', 'alpha', 'mid']);
});

test('backend names that are Object.prototype members are plain names', async () => {
  const c = await load('[backends.toString]\ndynamic = true\n');
  assert.deepEqual(Object.keys(c.backends), ['toString']);
  const name: string = 'toString';
  assert.equal(c.backends[name].dynamic, true);
  assert.equal(Object.hasOwn(c.backends, 'hasOwnProperty'), false);
  assert.equal('valueOf' in c.backends, false);
});
