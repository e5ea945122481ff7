// Reload takes new [listener] certificates and a new [geoip] database: a gateway moved
// to another PKI by SIGHUP refuses the old identities and accepts the new ones; an open
// TLS connection keeps its session.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { makeTestCa, requireTool } from '../../harness/index.js';
import { echo, tcpServer } from '../daemon/portail.js';
import { socks5Connect, startGateway, tlsConnect } from './gateway.js';

test('SIGHUP rotates the listener certificates and CA; open connections carry on', async (t) => {
  if (!requireTool(t, 'openssl')) return;
  const gw = await startGateway(t, {
    acl: 'policy all { when client.auth == "tls" action allow }\n',
  });
  const next = await makeTestCa({ t });
  const target = await tcpServer(t, echo);
  const before = await tlsConnect(gw.port, gw.ca);
  t.after(() => before.destroy());
  assert.equal(await socks5Connect(before, '127.0.0.1', target.port), 0x00);
  writeFileSync(gw.configPath, readFileSync(gw.configPath, 'utf8').replaceAll(gw.ca.dir, next.dir));
  gw.signal('SIGHUP');
  const rec = await gw.waitRecord((r) => r.event === 'reload');
  assert.equal(rec.result, 'ok', String(rec.reason));
  // The old PKI: the client no longer trusts the server, nor the server the client.
  await assert.rejects(tlsConnect(gw.port, gw.ca));
  const s = await tlsConnect(gw.port, next);
  t.after(() => s.destroy());
  assert.equal(await socks5Connect(s, '127.0.0.1', target.port), 0x00);
  // The connection opened before the reload still relays.
  before.write('still here');
  const got = await new Promise<string>((resolve) =>
    before.once('data', (d) => resolve(String(d))),
  );
  assert.equal(got, 'still here');
});
