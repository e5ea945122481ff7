// Candidates, failover, back-off, fallback-to-direct and its ACL re-evaluation, connect
// timeouts, run-time default backend and dynamic backends — against the real daemon
// with microsocks upstreams, each sending from its own 127.0.0.x address.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, startMicrosocks } from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { blackholePort, deadPort, origin, portailctl, portailRpc, via } from './helpers.js';

const backend = (name: string, port: number) =>
  `[backends.${name}]\ntype = "socks5"\ntarget-address = "127.0.0.1:${port}"\n`;

test('a dead upstream: the client gets an error and nothing reaches the origin directly', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["dead"] }\npolicy all { action allow }\n',
    config: `fallback-to-direct = false\n${backend('dead', await deadPort())}`,
  });
  for (const kind of ['socks5', 'http-connect', 'http-forward'] as const) {
    const r = await via(kind, p.port, o.port);
    assert.doesNotMatch(r.stdout, /^from/, kind);
    // A plain forward gets its 502 as a response (curl exits 0 without -f).
    if (kind !== 'http-forward') assert.notEqual(r.code, 0, kind);
    if (kind === 'http-connect') assert.match(r.stderr, /502/, kind);
  }
  assert.deepEqual(o.seen, []);
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.equal(d.action, 'allow');
  assert.equal(d.route, 'dead');
  assert.match(String(d.reason), /dead/);
  const c = await p.waitRecord((x) => x.event === 'close');
  assert.equal(c.close_reason, 'connect_error');
});

test('failover: the first candidate is down, the second is used (and named in the audit)', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.15' });
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["down", "ms"] }\npolicy all { action allow }\n',
    config: `fallback-to-direct = false\n${backend('down', await deadPort())}${backend('ms', ms.port)}`,
  });
  const r = await via('socks5', p.port, o.port);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from 127.0.0.15');
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.equal(d.route, 'ms');
  assert.match(String(d.reason), /via ms after: .*down/);
  // `down` is backed off now: skipped without an attempt.
  const again = await via('socks5', p.port, o.port);
  assert.equal(again.code, 0, again.stderr);
  const d2 = await p.waitRecord((x) => x.event === 'decision' && x.trace_id !== d.trace_id);
  assert.equal(d2.route, 'ms');
  assert.match(String(d2.reason), /skipped \(backing off\): down/);
  assert.deepEqual(o.seen, ['127.0.0.15', '127.0.0.15']);
});

test('all candidates down: fallback-to-direct exits directly when the ACL allows', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["a", "b"] }\npolicy all { action allow }\n',
    config: `${backend('a', await deadPort())}${backend('b', await deadPort())}`,
  });
  const r = await via('socks5', p.port, o.port);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from 127.0.0.1');
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.equal(d.route, 'direct');
  assert.match(String(d.reason), /fallback-to-direct \(allowed by policy all\) after: .*a .*b /);
});

test('all candidates down: a policy requiring route.local == false blocks the fallback', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["a"] }\npolicy tunnel_only { require route.local == false action allow }\n',
    config: backend('a', await deadPort()),
  });
  for (const kind of ['socks5', 'http-connect'] as const) {
    const r = await via(kind, p.port, o.port);
    assert.notEqual(r.code, 0, kind);
  }
  assert.deepEqual(o.seen, [], 'no direct connection was attempted');
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.match(String(d.reason), /fallback-to-direct refused by the ACL/);
});

test('all candidates down, fallback-to-direct = false: error, origin untouched', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["a"] }\npolicy all { action allow }\n',
    config: `fallback-to-direct = false\n${backend('a', await deadPort())}`,
  });
  const r = await via('http-connect', p.port, o.port);
  assert.notEqual(r.code, 0);
  assert.deepEqual(o.seen, []);
});

test('an upstream that never accepts fails within connect-timeout (+ a little)', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const o = await origin(t);
  const hole = await blackholePort(t);
  const p = await startPortail(t, {
    acl: 'route up { use ["hole"] }\npolicy all { action allow }\n',
    config: `connect-timeout = "1s"\nfallback-to-direct = false\n${backend('hole', hole)}`,
  });
  const t0 = Date.now();
  const r = await via('http-connect', p.port, o.port);
  const took = Date.now() - t0;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /504/);
  assert.ok(took >= 900, `failed too early (${took} ms)`);
  assert.ok(took < 2800, `took ${took} ms`);
  assert.deepEqual(o.seen, []);
});

test('default backend switched at run time: traffic follows at once', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const one = await startMicrosocks({ t, bindOutgoing: '127.0.0.16' });
  const two = await startMicrosocks({ t, bindOutgoing: '127.0.0.17' });
  const o = await origin(t);
  let sock = '';
  const p = await startPortail(t, {
    acl: 'policy all { action allow }\n',
    config: `default-backend = "one"\n${backend('one', one.port)}${backend('two', two.port)}`,
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const from = async () => {
    const r = await via('socks5', p.port, o.port);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  assert.equal(await from(), 'from 127.0.0.16');
  const set = await portailctl(sock, 'set-default-backend', 'two');
  assert.equal(set.code, 0, set.stderr);
  assert.equal(await from(), 'from 127.0.0.17');
  const unset = await portailctl(sock, 'unset-default-backend');
  assert.equal(unset.code, 0, unset.stderr);
  assert.equal(await from(), 'from 127.0.0.1');
  const routes = p
    .records()
    .filter((r) => r.event === 'decision')
    .map((r) => r.route);
  assert.deepEqual(routes, ['one', 'two', 'direct']);
});

test('dynamic backend: unreachable until its address is set, then used', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.18' });
  const o = await origin(t);
  let sock = '';
  const p = await startPortail(t, {
    acl: 'route up { use ["dyn"] }\npolicy all { action allow }\n',
    config: 'fallback-to-direct = false\n[backends.dyn]\ntype = "socks5"\ndynamic = true\n',
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const before = await via('socks5', p.port, o.port);
  assert.notEqual(before.code, 0);
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.match(String(d.reason), /dynamic backend dyn has no address yet/);
  const up = await portailRpc(
    sock,
    'update-dynamic-backend',
    'dyn',
    '--target-address',
    `127.0.0.1:${ms.port}`,
  );
  assert.equal(up.code, 0, up.stderr);
  const after = await via('socks5', p.port, o.port);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(after.stdout, 'from 127.0.0.18');
  assert.deepEqual(o.seen, ['127.0.0.18']);
});

test('a reload that changes a backend address: new connections follow it', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const one = await startMicrosocks({ t, bindOutgoing: '127.0.0.19' });
  const two = await startMicrosocks({ t, bindOutgoing: '127.0.0.20' });
  const o = await origin(t);
  let sock = '';
  const p = await startPortail(t, {
    acl: 'route up { use ["gw"] }\npolicy all { action allow }\n',
    config: `watch-acl = false\nfallback-to-direct = false\n${backend('gw', one.port)}`,
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const first = await via('socks5', p.port, o.port);
  assert.equal(first.stdout, 'from 127.0.0.19', first.stderr);
  const text = readFileSync(p.configPath, 'utf8').replace(`:${one.port}"`, `:${two.port}"`);
  writeFileSync(p.configPath, text);
  const r = await portailctl(sock, 'reload');
  assert.equal(r.code, 0, r.stderr);
  const second = await via('socks5', p.port, o.port);
  assert.equal(second.stdout, 'from 127.0.0.20', second.stderr);
});
