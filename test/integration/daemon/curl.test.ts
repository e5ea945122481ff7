// The real daemon with real curl against real Node origins on loopback: every way a
// client reaches an origin through portail, and the exact errors curl reports when the
// ACL says no (with the decision record in the audit file).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { curl, makeTestCa, type Owner, requireTool } from '../../harness/index.js';
import { startPortail } from './portail.js';

async function origin(t: Owner, host = '127.0.0.1') {
  const server = http.createServer((req, res) => {
    res.end(`hello from origin ${req.method} ${req.url}`);
  });
  server.listen(0, host);
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

test('SOCKS5 (IP and hostname), plain HTTP proxy and CONNECT tunnel reach the origin', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const port = await origin(t);
  const p = await startPortail(t);
  const proxy = `127.0.0.1:${p.port}`;
  const url = `http://127.0.0.1:${port}/x?y=1`;
  for (const args of [
    ['--socks5', proxy, url],
    ['--socks5-hostname', proxy, `http://localhost:${port}/x?y=1`],
    ['-x', `http://${proxy}`, url],
    ['-x', `http://${proxy}`, '--proxytunnel', url],
  ]) {
    const r = await curl(args);
    assert.equal(r.code, 0, `curl ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, 'hello from origin GET /x?y=1');
  }
  const decisions = p.records().filter((r) => r.event === 'decision');
  assert.equal(decisions.length, 4);
  assert.deepEqual(
    decisions.map((d) => d.protocol),
    ['socks5', 'socks5', 'http', 'http'],
  );
  assert.equal(decisions[1].host, 'localhost');
  for (const d of decisions) assert.equal(d.action, 'allow');
  // Every tunnel gets its close record with the same trace id.
  for (const d of decisions) {
    const c = await p.waitRecord((r) => r.event === 'close' && r.trace_id === d.trace_id);
    assert.ok(Number(c.bytes_down) > 0);
  }
});

test('HTTPS through CONNECT with a test CA', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const ca = await makeTestCa({ t });
  const server = https.createServer(
    { cert: ca.pem.serverCert, key: ca.pem.serverKey },
    (_req, res) => res.end('secure hello'),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const p = await startPortail(t, { acl: `policy tls { when port == ${port} action allow }\n` });
  const r = await curl([
    '--cacert',
    ca.caCert,
    '-x',
    `http://127.0.0.1:${p.port}`,
    `https://localhost:${port}/`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'secure hello');
  const d = p.records().find((x) => x.event === 'decision');
  assert.equal(d?.host, 'localhost');
  assert.equal(d?.policy, 'tls');
});

test('IPv6: portail on [::1], origin on ::1', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const port = await origin(t, '::1');
  const p = await startPortail(t, { bind: ['[::1]:0', '127.0.0.1:0'] });
  assert.match(p.addresses[0], /^\[::1\]:\d+$/);
  assert.match(p.addresses[1], /^127\.0\.0\.1:\d+$/);
  for (const args of [
    ['--socks5', `[::1]:${p.port}`, `http://[::1]:${port}/v6`],
    ['-x', `http://[::1]:${p.port}`, `http://[::1]:${port}/v6`],
    ['-x', `http://[::1]:${p.port}`, '--proxytunnel', `http://[::1]:${port}/v6`],
  ]) {
    const r = await curl(args);
    assert.equal(r.code, 0, `curl ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, 'hello from origin GET /v6');
  }
  const d = p.records().find((x) => x.event === 'decision');
  assert.equal(d?.host, '::1');
  assert.match(String(d?.client), /^\[::1\]:\d+$/);
});

test('denial: curl exit 97 (SOCKS5 reply 2) and 56 (CONNECT 403); decision records; origin untouched', async (t) => {
  if (!requireTool(t, 'curl')) return;
  let hits = 0;
  const server = http.createServer((_q, s) => {
    hits++;
    s.end('should not be reached');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const p = await startPortail(t, {
    acl: `policy only_elsewhere { when port == 1 action allow }\npolicy deny_all { action deny }\n`,
  });
  const socks = await curl(['--socks5', `127.0.0.1:${p.port}`, `http://127.0.0.1:${port}/`]);
  assert.equal(socks.code, 97, socks.stderr);
  assert.match(socks.stderr, /Can't complete SOCKS5 connection to 127\.0\.0\.1\. \(2\)/);
  const tunnel = await curl([
    '-x',
    `http://127.0.0.1:${p.port}`,
    '--proxytunnel',
    `http://127.0.0.1:${port}/`,
  ]);
  assert.equal(tunnel.code, 56, tunnel.stderr);
  assert.match(tunnel.stderr, /CONNECT tunnel failed, response 403/);
  const plain = await curl(['-x', `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${port}/`]);
  assert.match(plain.stdout, /denied by policy deny_all/);
  assert.equal(hits, 0);
  const decisions = p.records().filter((r) => r.event === 'decision');
  assert.equal(decisions.length, 3);
  for (const d of decisions) {
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, 'deny_all');
    assert.equal(d.port, port);
  }
  assert.equal(
    p.records().filter((r) => r.event === 'close').length,
    0,
    'a denial has no close record',
  );
});
