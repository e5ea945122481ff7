// Identity-aware chaining: portail → upstream over TLS with our [escaper] client
// certificate, the upstream's certificate verified. The upstream is a small Node TLS
// server that requires and verifies client certificates and forwards the decrypted
// bytes to a real microsocks / tinyproxy.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import {
  makeTestCa,
  type Owner,
  requireTool,
  startMicrosocks,
  startTinyproxy,
  type TestCa,
} from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { startGateway } from '../gateway/gateway.js';
import { origin, via } from './helpers.js';

/** mTLS terminator in front of `to` (a client certificate optional with `requestCert: false`); counts handshakes that completed. */
async function mtlsFront(t: Owner, ca: TestCa, to: number, requestCert = true) {
  let authorized = 0;
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: ca.pem.serverCert,
      key: ca.pem.serverKey,
      ca: ca.pem.ca,
      requestCert,
      rejectUnauthorized: true,
    },
    (s) => {
      authorized++;
      const up = net.connect(to, '127.0.0.1');
      sockets.add(s);
      sockets.add(up);
      s.on('error', () => up.destroy());
      up.on('error', () => s.destroy());
      s.pipe(up).pipe(s);
    },
  );
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, authorized: () => authorized };
}

function escaper(trust: TestCa, identity: TestCa) {
  return `[escaper]\ncacert-file = "${trust.caCert}"\ntls-certificate = "${identity.clientCert}"\ntls-privkey = "${identity.clientKey}"\n`;
}

const backend = (port: number, extra = '') =>
  `[backends.gw]\ntarget-address = "127.0.0.1:${port}"\nidentity-aware = true\n${extra}`;

const ACL = 'route up { use ["gw"] }\npolicy all { action allow }\n';

test('identity-aware SOCKS5 and HTTP upstreams over mutual TLS', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'tinyproxy') || !requireTool(t, 'openssl'))
    return;
  const ca = await makeTestCa({ t });
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.21' });
  const tp = await startTinyproxy({ t, bind: '127.0.0.22' });
  const socksFront = await mtlsFront(t, ca, ms.port);
  const httpFront = await mtlsFront(t, ca, tp.port);
  const o = await origin(t);
  // Without `type` the client's protocol is spoken inside TLS.
  const a = await startPortail(t, {
    acl: ACL,
    config: `fallback-to-direct = false\n${escaper(ca, ca)}${backend(socksFront.port)}`,
  });
  const r1 = await via('socks5', a.port, o.port);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout, 'from 127.0.0.21');
  // The default verification name is the target-address host (an IP SAN here);
  // tls-server-name overrides it.
  const b = await startPortail(t, {
    acl: ACL,
    config: `fallback-to-direct = false\n${escaper(ca, ca)}${backend(httpFront.port, 'tls-server-name = "localhost"\n')}`,
  });
  const r2 = await via('http-connect', b.port, o.port);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.stdout, 'from 127.0.0.22');
  assert.equal(socksFront.authorized(), 1);
  assert.equal(httpFront.authorized(), 1);
});

test('identity-aware: wrong CA, wrong name or a client certificate the upstream does not trust are refused', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'openssl')) return;
  const ca = await makeTestCa({ t });
  const other = await makeTestCa({ t });
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.23' });
  const front = await mtlsFront(t, ca, ms.port);
  const o = await origin(t);
  const cases = [
    // We do not trust the upstream's certificate.
    {
      name: 'wrong CA',
      config: `${escaper(other, ca)}${backend(front.port)}`,
      why: /TLS to gw .*certificate/,
    },
    // The upstream's certificate is not for that name.
    {
      name: 'wrong name',
      config: `${escaper(ca, ca)}${backend(front.port, 'tls-server-name = "gw.example.com"\n')}`,
      why: /gw\.example\.com/,
    },
    // The upstream does not trust our client certificate.
    {
      name: 'untrusted client',
      config: `${escaper(ca, other)}${backend(front.port)}`,
      why: /gw .*(closed|alert|certificate)/i,
    },
  ];
  for (const c of cases) {
    const p = await startPortail(t, {
      acl: ACL,
      config: `fallback-to-direct = false\n${c.config}`,
    });
    const r = await via('socks5', p.port, o.port);
    assert.notEqual(r.code, 0, c.name);
    const d = await p.waitRecord((x) => x.event === 'decision');
    assert.match(String(d.reason), c.why, c.name);
  }
  assert.deepEqual(o.seen, [], 'nothing reached the origin');
  assert.equal(front.authorized(), 0);
});

test('portail → portail gateway: the gateway is used with our identity; a wrong CA on either side refuses', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const gw = await startGateway(t, {
    acl: 'policy all { action allow }\n',
    top: 'outgoing-address = "127.0.0.24"\n',
  });
  const other = await makeTestCa({ t });
  const o = await origin(t);
  const ws = (trust: TestCa, identity: TestCa) =>
    startPortail(t, {
      acl: ACL,
      config: `fallback-to-direct = false\n${escaper(trust, identity)}${backend(gw.port, 'type = "socks5"\ntls-server-name = "localhost"\n')}`,
    });
  const good = await ws(gw.ca, gw.ca);
  const r = await via('http-connect', good.port, o.port);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from 127.0.0.24');
  const decisions = () => gw.records().filter((x) => x.event === 'decision').length;
  assert.equal(decisions(), 1);
  for (const [trust, identity] of [
    [other, gw.ca],
    [gw.ca, other],
  ]) {
    const bad = await ws(trust, identity);
    const b = await via('socks5', bad.port, o.port);
    assert.notEqual(b.code, 0);
  }
  assert.deepEqual(o.seen, ['127.0.0.24']);
  assert.equal(decisions(), 1, 'the gateway judged no request from an untrusted peer');
});

test('identity-aware with only [listener] cacert-file (upstream node): verified TLS, no client certificate', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'openssl')) return;
  const ca = await makeTestCa({ t });
  const other = await makeTestCa({ t });
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.25' });
  const front = await mtlsFront(t, ca, ms.port, false);
  const o = await origin(t);
  const node = (trust: TestCa) =>
    startPortail(t, {
      acl: ACL,
      config: `fallback-to-direct = false\n[listener]\ncacert-file = "${trust.caCert}"\n${backend(front.port)}`,
    });
  const good = await node(ca);
  const r = await via('socks5', good.port, o.port);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from 127.0.0.25');
  assert.equal(front.authorized(), 1);
  // Still verified: a backend certificate outside those anchors is refused.
  const bad = await node(other);
  const b = await via('socks5', bad.port, o.port);
  assert.notEqual(b.code, 0);
  const d = await bad.waitRecord((x) => x.event === 'decision');
  assert.match(String(d.reason), /TLS to gw .*certificate/);
  assert.equal(front.authorized(), 1);
  // A front that requires a client certificate refuses a node that has none.
  const strict = await mtlsFront(t, ca, ms.port);
  const n = await startPortail(t, {
    acl: ACL,
    config: `fallback-to-direct = false\n[listener]\ncacert-file = "${ca.caCert}"\n${backend(strict.port)}`,
  });
  assert.notEqual((await via('socks5', n.port, o.port)).code, 0);
  assert.equal(strict.authorized(), 0);
});
