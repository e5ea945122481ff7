// makeTestCa: the chain verifies with openssl; the server certificate is good for
// localhost, 127.0.0.1 and ::1 with curl; a server requiring client certificates
// accepts ours and refuses a client without one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { curl, makeTestCa, requireTool } from '../../harness/index.js';

describe('makeTestCa', () => {
  test('a client without a certificate is refused; with ours it is let in, for every name', async (t) => {
    if (!requireTool(t, 'openssl') || !requireTool(t, 'curl')) return;
    const ca = await makeTestCa({ t, clientCn: 'alice-laptop' });
    const srv = https.createServer(
      {
        key: ca.pem.serverKey,
        cert: ca.pem.serverCert,
        ca: ca.pem.ca,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.end(`hello ${peer.subject?.CN}`);
      },
    );
    await new Promise<void>((r) => srv.listen(0, '::', r));
    t.after(() => srv.close());
    const { port } = srv.address() as AddressInfo;

    const anonymous = await curl(['--cacert', ca.caCert, `https://localhost:${port}/`]);
    assert.notEqual(anonymous.code, 0, 'a client without a certificate got in');
    const untrusted = await curl([`https://localhost:${port}/`]); // system store: unknown CA
    assert.equal(untrusted.code, 60, untrusted.stderr);

    for (const host of ['localhost', '127.0.0.1', '[::1]']) {
      const r = await curl([
        '--cacert',
        ca.caCert,
        '--cert',
        ca.clientCert,
        '--key',
        ca.clientKey,
        `https://${host}:${port}/`,
      ]);
      assert.equal(r.code, 0, `${host}: ${r.stderr}`);
      assert.equal(r.stdout, 'hello alice-laptop');
    }
  });

  test('the chain verifies; roles are separated by extended key usage', async (t) => {
    if (!requireTool(t, 'openssl')) return;
    const ca = await makeTestCa({ t });
    const verify = (purpose: string, cert: string) =>
      execFileSync('openssl', ['verify', '-purpose', purpose, '-CAfile', ca.caCert, cert], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    assert.match(verify('sslserver', ca.serverCert), /OK/);
    assert.match(verify('sslclient', ca.clientCert), /OK/);
    assert.throws(() => verify('sslserver', ca.clientCert)); // a client cert is no server cert
    const server = new X509Certificate(ca.pem.serverCert);
    assert.equal(
      server.subjectAltName,
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    assert.ok(server.checkIssued(new X509Certificate(ca.pem.ca)));
    assert.match(ca.pem.serverKey, /PRIVATE KEY/);
  });
});
