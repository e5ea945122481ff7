// PROXY protocol on the gateway: HAProxy (send-proxy-v2) in front of two gateways, the
// client's own address in the audit records; hand-written v1/v2 headers (strictness, a
// missing header, LOCAL); and GeoIP through a claimed client address (geo.country) and a
// destination (dst.geo.country), with MaxMind's test database.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  freePort,
  requireFile,
  requireTool,
  sleep,
  startProcess,
  tmpDir,
} from '../../harness/index.js';
import { closed, echo, readBytes, startPortail, tcpServer } from '../daemon/portail.js';
import {
  GEOIP_COUNTRY_DB,
  proxyV2Header,
  readExactly,
  socks5Connect,
  startGateway,
  tlsConnect,
} from './gateway.js';

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

describe('PROXY protocol', () => {
  test('without proxy-protocol a PROXY header is just a bad request', async (t) => {
    const gw = await startPortail(t);
    const s = await connect(gw.port);
    t.after(() => s.destroy());
    s.write('PROXY TCP4 81.2.69.142 127.0.0.1 5555 1080\r\n');
    const head = (await readBytes(s, 12)).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 400/);
  });

  test('required: no header, a malformed one or a truncated one → closed and audited; v1 and LOCAL accepted', async (t) => {
    const gw = await startPortail(t, {
      config: '[listener]\nproxy-protocol = true\n',
      acl: 'policy all { action allow }\n',
    });
    const target = await tcpServer(t, echo);
    // No header: the SOCKS5 greeting is not a PROXY header.
    const bare = await connect(gw.port);
    bare.write(Buffer.from([0x05, 0x01, 0x00]));
    assert.equal((await readBytes(bare, 2, 2000).catch(() => Buffer.alloc(0))).length, 0);
    await closed(bare);
    // Port out of range in v1.
    const bad = await connect(gw.port);
    bad.write('PROXY TCP4 81.2.69.142 127.0.0.1 70000 1080\r\n');
    await closed(bad);
    await gw.waitRecord((r) => r.event === 'error' && /port/.test(String(r.reason)));
    const errors = gw.records().filter((r) => r.event === 'error');
    assert.equal(errors.length, 2);
    for (const e of errors) assert.match(String(e.reason), /^PROXY protocol: /);
    // v1: the claimed client is the one the ACL and the audit see.
    const v1 = await connect(gw.port);
    t.after(() => v1.destroy());
    v1.write('PROXY TCP4 192.0.2.7 127.0.0.1 4242 1080\r\n');
    assert.equal(await socks5Connect(v1, '127.0.0.1', target.port), 0x00);
    const rec = await gw.waitRecord((r) => r.event === 'decision');
    assert.equal(rec.client, '192.0.2.7:4242');
    // v2 LOCAL (the balancer's own health check): the real peer stays.
    const local = await connect(gw.port);
    t.after(() => local.destroy());
    const hdr = proxyV2Header({ ip: '192.0.2.9', port: 1 }, { ip: '127.0.0.1', port: 1 });
    hdr[12] = 0x20; // LOCAL
    local.write(hdr);
    assert.equal(await socks5Connect(local, '127.0.0.1', target.port), 0x00);
    const rec2 = await gw.waitRecord(
      (r) => r.event === 'decision' && r.client === `127.0.0.1:${local.localPort}`,
    );
    assert.equal(rec2.action, 'allow');
  });

  test('HAProxy send-proxy-v2 in front of two TLS gateways: client.ip/port are the client’s', async (t) => {
    const haproxy = requireTool(t, 'haproxy');
    if (!haproxy || !requireTool(t, 'openssl')) return;
    const acl = 'policy all { when client.auth == "tls" action allow }\n';
    const g1 = await startGateway(t, { acl, listener: 'proxy-protocol = true' });
    const g2 = await startGateway(t, { ca: g1.ca, acl, listener: 'proxy-protocol = true' });
    const target = await tcpServer(t, echo);
    const front = await freePort();
    const dir = tmpDir(t);
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 100',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 10s',
        '  timeout server 10s',
        'frontend fe',
        `  bind 127.0.0.1:${front}`,
        '  default_backend gateways',
        'backend gateways',
        '  balance roundrobin',
        `  server g1 127.0.0.1:${g1.port} send-proxy-v2`,
        `  server g2 127.0.0.1:${g2.port} send-proxy-v2`,
        '',
      ].join('\n'),
    );
    await startProcess(haproxy, ['-db', '-f', cfg], {
      t,
      readyWhen: { port: front },
      name: 'haproxy',
    });
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const raw = await connect(front);
      ports.push(raw.localPort as number);
      const s = await tlsConnect(front, g1.ca, { socket: raw });
      t.after(() => s.destroy());
      assert.equal(await socks5Connect(s, '127.0.0.1', target.port), 0x00);
      s.write('x');
      await readExactly(s, 1);
    }
    // HAProxy picks the gateway (its round robin is per thread): whichever it was, the
    // decisions name the clients' own ports, never HAProxy's.
    const decisions = () =>
      [g1, g2].flatMap((g) => g.records().filter((r) => r.event === 'decision'));
    for (let i = 0; i < 100 && decisions().length < 2; i++) await sleep(50);
    assert.deepEqual(
      decisions()
        .map((r) => r.client)
        .sort(),
      ports.map((p) => `127.0.0.1:${p}`).sort(),
      'the gateways saw each client by its own port (not HAProxy’s)',
    );
  });

  test('GeoIP: a v2 header claiming a test address makes a geo-fenced policy apply; dst.geo.country', async (t) => {
    if (!requireFile(t, GEOIP_COUNTRY_DB, 'the shared test data (../shared/testdata/geoip)'))
      return;
    const acl = [
      'policy local_from_gb {',
      '  when dst.ip in ["127.0.0.0/8"] and geo.country == "GB"',
      '  action allow',
      '}',
      'policy no_cn { when dst.geo.country == "CN" action deny }',
      'policy from_gb { when geo.country == "GB" action allow }',
      '',
    ].join('\n');
    const gw = await startPortail(t, {
      config: `[listener]\nproxy-protocol = true\n[geoip]\ndatabase = "${GEOIP_COUNTRY_DB}"\n`,
      acl,
    });
    const target = await tcpServer(t, echo);
    const dst = { ip: '127.0.0.1', port: gw.port };
    const via = async (src: string, ip: string, port: number) => {
      const s = await connect(gw.port);
      t.after(() => s.destroy());
      s.write(proxyV2Header({ ip: src, port: 40000 }, dst));
      return socks5Connect(s, ip, port);
    };
    assert.equal(await via('81.2.69.142', '127.0.0.1', target.port), 0x00, 'GB client allowed');
    assert.equal(await via('89.160.20.112', '127.0.0.1', target.port), 0x02, 'SE client denied');
    // A destination in China (never contacted: the ACL denies before any connection).
    assert.equal(await via('81.2.69.142', '175.16.199.1', 443), 0x02);
    // Audit records reach the file asynchronously.
    await gw.waitRecord(() => gw.records().filter((r) => r.event === 'decision').length >= 3);
    const decisions = gw.records().filter((r) => r.event === 'decision');
    assert.deepEqual(
      decisions.map((r) => [r.client, r.action, r.policy]),
      [
        ['81.2.69.142:40000', 'allow', 'local_from_gb'],
        ['89.160.20.112:40000', 'deny', decisions[1]?.policy ?? null],
        ['81.2.69.142:40000', 'deny', 'no_cn'],
      ],
    );
    assert.equal(target.connections(), 1);
  });
});
