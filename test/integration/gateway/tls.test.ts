// The gateway's TLS listener against real clients: curl as an HTTPS-proxy client with a
// client certificate, SOCKS5 inside TLS, HTTP/2 CONNECT (ALPN h2) with two streams on one
// connection, refused certificates (none, foreign CA, expired) with their audit records,
// require-tls, and the handshake deadline covering the TLS handshake.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, test } from 'node:test';
import { curl, makeTestCa, requireTool } from '../../harness/index.js';
import { closed, echo, readBytes, tcpServer } from '../daemon/portail.js';
import { issueClientCert, origin, socks5Connect, startGateway, tlsConnect } from './gateway.js';

const CN_ACL = (cn: string) =>
  `policy by_cn {\n  when client.auth == "tls" and client.cert.subject.cn == "${cn}"\n  action allow\n}\n`;

function curlVia(port: number, ca: string, id: { cert: string; key: string } | null, url: string) {
  return curl([
    '--proxy',
    `https://127.0.0.1:${port}`,
    '--proxy-cacert',
    ca,
    ...(id ? ['--proxy-cert', id.cert, '--proxy-key', id.key] : []),
    '--proxytunnel',
    url,
  ]);
}

describe('gateway TLS listener', () => {
  test('no, foreign-CA and expired client certificates: handshake refused, audit error, no decision', async (t) => {
    if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
    const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
    const web = await origin(t);
    const foreign = await makeTestCa({ t });
    const expired = await issueClientCert(gw.ca, 'expired', {
      cn: gw.ca.clientCn,
      startdate: '20200101000000Z',
      enddate: '20200102000000Z',
    });
    const url = `http://127.0.0.1:${web}/`;
    const none = await curlVia(gw.port, gw.ca.caCert, null, url);
    const wrong = await curlVia(
      gw.port,
      gw.ca.caCert,
      { cert: foreign.clientCert, key: foreign.clientKey },
      url,
    );
    const old = await curlVia(
      gw.port,
      gw.ca.caCert,
      { cert: expired.certPath, key: expired.keyPath },
      url,
    );
    for (const r of [none, wrong, old]) {
      assert.notEqual(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /hello from origin/);
    }
    const errors = await waitRecords(gw, (r) => r.event === 'error', 3);
    const reasons = errors.map((r) => String(r.reason)).join('\n');
    assert.match(reasons, /no client certificate/);
    assert.match(reasons, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    assert.match(reasons, /CERT_HAS_EXPIRED|expired/i);
    for (const r of errors) assert.match(String(r.client), /^127\.0\.0\.1:\d+$/);
    assert.equal(gw.records().filter((r) => r.event === 'decision').length, 0);
  });

  test('curl as an HTTPS-proxy client: CONNECT allowed by client.cert.subject.cn, another CN denied', async (t) => {
    if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
    const gw = await startGateway(t, { acl: CN_ACL('portail-test-client') });
    const web = await origin(t);
    const url = `http://127.0.0.1:${web}/`;
    const ok = await curlVia(
      gw.port,
      gw.ca.caCert,
      { cert: gw.ca.clientCert, key: gw.ca.clientKey },
      url,
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'hello from origin');
    const mallory = await issueClientCert(gw.ca, 'mallory', { cn: 'mallory' });
    const denied = await curlVia(
      gw.port,
      gw.ca.caCert,
      { cert: mallory.certPath, key: mallory.keyPath },
      url,
    );
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /403/);
    const decisions = await waitRecords(gw, (r) => r.event === 'decision', 2);
    assert.deepEqual(
      decisions.map((r) => [r.action, r.policy]),
      [
        ['allow', 'by_cn'],
        ['deny', null],
      ],
    );
  });

  test('client.cert.san and client.cert.fingerprint reach the ACL', async (t) => {
    if (!requireTool(t, 'openssl')) return;
    const ca = await makeTestCa({ t });
    const alice = await issueClientCert(ca, 'alice', {
      cn: 'alice',
      san: 'DNS:Alice.Example, IP:0:0:0:0:0:0:0:1, email:alice@example.com',
    });
    const fp = new X509Certificate(alice.cert).fingerprint256;
    const acl = [
      'policy san_fp {',
      '  when client.cert.san in ["DNS:alice.example"] and client.cert.san in ["IP:::1"]',
      `    and client.cert.san in ["email:alice@example.com"] and client.cert.fingerprint == "${fp}"`,
      '  action allow',
      '}',
      '',
    ].join('\n');
    const gw = await startGateway(t, { ca, acl });
    const target = await tcpServer(t, echo);
    const s = await tlsConnect(gw.port, ca, { as: alice });
    t.after(() => s.destroy());
    assert.equal(await socks5Connect(s, '127.0.0.1', target.port), 0x00);
    // The default test client (no SAN, other fingerprint) is refused by the same rules.
    const other = await tlsConnect(gw.port, ca);
    t.after(() => other.destroy());
    assert.equal(await socks5Connect(other, '127.0.0.1', target.port), 0x02);
  });

  test('SOCKS5 inside TLS (no ALPN: detected again), bytes relayed both ways', async (t) => {
    const gw = await startGateway(t, { acl: CN_ACL('portail-test-client') });
    const target = await tcpServer(t, echo);
    const s = await tlsConnect(gw.port, gw.ca);
    t.after(() => s.destroy());
    assert.equal(s.alpnProtocol, false);
    assert.equal(await socks5Connect(s, '127.0.0.1', target.port), 0x00);
    s.write('ping over tls');
    assert.equal((await readBytes(s as unknown as net.Socket, 13)).toString(), 'ping over tls');
    const rec = await gw.waitRecord((r) => r.event === 'decision');
    assert.equal(rec.protocol, 'socks5');
    assert.equal(rec.action, 'allow');
  });

  test('HTTP/2 CONNECT with ALPN h2: two multiplexed streams on one TLS connection', async (t) => {
    const gw = await startGateway(t, { acl: CN_ACL('portail-test-client') });
    const target = await tcpServer(t, echo);
    let sessions = 0;
    const session = http2.connect(`https://127.0.0.1:${gw.port}`, {
      ca: gw.ca.pem.ca,
      cert: gw.ca.pem.clientCert,
      key: gw.ca.pem.clientKey,
      servername: 'localhost',
    });
    session.on('connect', () => sessions++);
    t.after(() => session.destroy());
    const open = async (label: string) => {
      const stream = session.request({
        ':method': 'CONNECT',
        ':authority': `127.0.0.1:${target.port}`,
      });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(headers[':status'], 200);
      stream.write(label);
      const got = await readBytes(stream as unknown as net.Socket, label.length);
      return { stream, got: got.toString() };
    };
    const [a, b] = await Promise.all([open('stream-one'), open('stream-two')]);
    assert.equal(a.got, 'stream-one');
    assert.equal(b.got, 'stream-two');
    assert.notEqual(a.stream.id, b.stream.id);
    assert.equal(sessions, 1);
    assert.equal((session.socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2');
    const decisions = await waitRecords(gw, (r) => r.event === 'decision', 2);
    for (const r of decisions) assert.equal(r.protocol, 'http');
  });

  test('require-tls: plaintext SOCKS5 and HTTP closed (audited); TLS without cacert-file is client.auth none', async (t) => {
    const gw = await startGateway(t, {
      mtls: false,
      listener: 'require-tls = true',
      acl: 'policy anon { when client.auth == "none" action allow }\n',
    });
    const target = await tcpServer(t, echo);
    const plain = net.connect(gw.port, '127.0.0.1');
    plain.write(Buffer.from([0x05, 0x01, 0x00]));
    const got = await readBytes(plain, 2, 3000).catch(() => Buffer.alloc(0));
    assert.equal(got.length, 0, 'no SOCKS5 answer on plaintext');
    await closed(plain);
    const rec = await gw.waitRecord((r) => r.event === 'error');
    assert.match(String(rec.reason), /require-tls/);
    const s = await tlsConnect(gw.port, gw.ca, { as: null });
    t.after(() => s.destroy());
    assert.equal(await socks5Connect(s, '127.0.0.1', target.port), 0x00);
  });

  test('the TLS handshake counts against handshake-timeout', async (t) => {
    const gw = await startGateway(t, { top: 'handshake-timeout = "600ms"' });
    const s = net.connect(gw.port, '127.0.0.1');
    await once(s, 'connect');
    const t0 = Date.now();
    s.write(Buffer.from([0x16, 0x03, 0x01])); // a ClientHello that never completes
    await closed(s);
    const ms = Date.now() - t0;
    assert.ok(ms >= 400 && ms < 3000, `closed after ${ms} ms`);
  });
});

async function waitRecords(
  gw: { records(): Array<Record<string, unknown>> },
  pred: (r: Record<string, unknown>) => boolean,
  n: number,
  timeoutMs = 5000,
): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = gw.records().filter(pred);
    if (got.length >= n || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 25));
  }
}
