// Two portail processes: a workstation portail chaining through an identity-aware
// backend (mutual TLS with its [escaper] identity) to a portail gateway, whose own ACL
// judges the certificate's CN. curl is the user's client.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { curl, requireTool } from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { issueClientCert, origin, startGateway } from './gateway.js';

test('workstation → gateway over mTLS: SOCKS5 and HTTP CONNECT chained, gateway ACL on the CN', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const gw = await startGateway(t, {
    acl: 'policy by_cn { when client.cert.subject.cn == "portail-test-client" action allow }\n',
  });
  const web = await origin(t);
  const local = (cert: string, key: string, type: string) =>
    startPortail(t, {
      acl: 'route all { use ["gw"] }\npolicy all { action allow }\n',
      config: [
        'fallback-to-direct = false',
        '[escaper]',
        `cacert-file = "${gw.ca.caCert}"`,
        `tls-certificate = "${cert}"`,
        `tls-privkey = "${key}"`,
        '[backends.gw]',
        type,
        `target-address = "127.0.0.1:${gw.port}"`,
        'identity-aware = true',
        'tls-server-name = "localhost"',
        '',
      ].join('\n'),
    });
  // The client's own protocol inside TLS (no `type`), then an explicit SOCKS5 backend.
  const same = await local(gw.ca.clientCert, gw.ca.clientKey, '');
  const socks = await local(gw.ca.clientCert, gw.ca.clientKey, 'type = "socks5"');
  const url = `http://127.0.0.1:${web}/`;
  const r1 = await curl(['--proxy', `socks5h://127.0.0.1:${same.port}`, url]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout, 'hello from origin');
  const r2 = await curl(['--proxy', `http://127.0.0.1:${socks.port}`, '--proxytunnel', url]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.stdout, 'hello from origin');
  // Audit records reach the file asynchronously.
  await gw.waitRecord(() => gw.records().filter((r) => r.event === 'decision').length >= 2);
  const allowed = gw.records().filter((r) => r.event === 'decision');
  assert.deepEqual(
    allowed.map((r) => [r.action, r.policy, r.protocol]),
    [
      ['allow', 'by_cn', 'socks5'],
      ['allow', 'by_cn', 'socks5'],
    ],
  );
  // Another identity from the same CA: the gateway's ACL denies it.
  const mallory = await issueClientCert(gw.ca, 'mallory', { cn: 'mallory' });
  const denied = await local(mallory.certPath, mallory.keyPath, 'type = "socks5"');
  const r3 = await curl(['--proxy', `socks5h://127.0.0.1:${denied.port}`, url]);
  assert.notEqual(r3.code, 0);
  const d = await gw.waitRecord((r) => r.event === 'decision' && r.action === 'deny');
  assert.equal(d.policy, null);
});
