// The real daemon with its client identity on a SoftHSM2 token: an identity-aware HTTP
// CONNECT backend (a small TLS proxy that requires client certificates) sees the token's
// certificate on every connection, before and after a reload.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import { makeTestCa, type Owner, requireFile, requireTool, tmpDir } from '../../harness/index.js';
import { origin, via } from '../chain/helpers.js';
import { startPortail } from '../daemon/portail.js';
import { importObject, initToken, makeKey, SOFTHSM_MODULE, softHsm } from './softhsm.js';

/** A TLS HTTP CONNECT proxy requiring a client certificate signed by `clientCa`. */
async function tlsConnectProxy(t: Owner, key: string, cert: string, clientCa: string) {
  const clients: string[] = [];
  const srv = tls.createServer(
    { key, cert, requestCert: true, rejectUnauthorized: true, ca: clientCa },
    (s) => {
      clients.push(String(s.getPeerCertificate().subject?.CN));
      let head = '';
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        s.off('data', onData);
        const m = /^CONNECT ([^ :]+):(\d+) HTTP\/1\.[01]\r\n/.exec(head);
        if (!m) return void s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        const up = net.connect(Number(m[2]), m[1], () => {
          s.write('HTTP/1.1 200 Connection established\r\n\r\n');
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          if (rest.length) up.write(rest);
          s.pipe(up).pipe(s);
        });
        up.on('error', () => s.destroy());
      };
      s.on('data', onData);
      s.on('error', () => {});
    },
  );
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, clients };
}

test('identity-aware backend with the key on a SoftHSM2 token: quiet stderr, reloads to another key, a module change is refused', async (t) => {
  if (!requireTool(t, 'softhsm2-util') || !requireTool(t, 'pkcs11-tool') || !requireTool(t, 'curl'))
    return;
  if (!requireFile(t, SOFTHSM_MODULE, 'softhsm2')) return;
  if (!requireFile(t, '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so', 'libengine-pkcs11-openssl'))
    return;
  const dir = tmpDir(t, 'portail-pkcs11-daemon-');
  const hsm = softHsm(dir);
  mkdirSync(join(dir, 'ca'));
  const ca = await makeTestCa({ dir: join(dir, 'ca') });
  const device = await makeKey(dir, 'device', 'laptop-42');
  const second = await makeKey(dir, 'second', 'laptop-43', 'rsa');
  await initToken(hsm, 'dev', '1234');
  await importObject(hsm, 'dev', '1234', device.keyDer, 'privkey', '01', 'devkey');
  await importObject(hsm, 'dev', '1234', device.certDer, 'cert', '01', 'devkey');
  // Another token of the same module, with its own PIN.
  await initToken(hsm, 'spare', '4321');
  await importObject(hsm, 'spare', '4321', second.keyDer, 'privkey', '07', 'sparekey');
  await importObject(hsm, 'spare', '4321', second.certDer, 'cert', '07', 'sparekey');
  // The same library under another path: another module for the engine.
  const copy = join(dir, 'libsofthsm2-copy.so');
  writeFileSync(copy, readFileSync(SOFTHSM_MODULE));

  const target = await origin(t);
  const gw = await tlsConnectProxy(
    t,
    ca.pem.serverKey,
    ca.pem.serverCert,
    readFileSync(device.cert, 'utf8') + readFileSync(second.cert, 'utf8'),
  );
  const config = (uri: string, module: string) =>
    'fallback-to-direct = false\n' +
    `[escaper]\ncacert-file = "${ca.caCert}"\npkcs11-uri = "${uri}"\n` +
    `pkcs11-module = "${module}"\n` +
    `[backends.gw]\ntype = "http"\ntarget-address = "127.0.0.1:${gw.port}"\nidentity-aware = true\ntls-server-name = "localhost"\n`;
  const p = await startPortail(t, {
    env: { SOFTHSM2_CONF: hsm.conf },
    acl: `route gw { when port == ${target.port} use ["gw"] }\npolicy all { action allow }\n`,
    config: config('pkcs11:token=dev;object=devkey?pin-value=1234', SOFTHSM_MODULE),
  });
  // Everything the daemon writes on stderr from now on (the engine loads below).
  let stderr = '';
  p.proc.child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const rewrite = (uri: string, module: string) =>
    writeFileSync(
      p.configPath,
      `filter-acl-rules-path = "filter.acl"\n${config(uri, module)}\n[log]\naudit = "file:${p.auditPath}"\n`,
    );

  for (const kind of ['socks5', 'http-connect', 'socks5'] as const) {
    const r = await via(kind, p.port, target.port);
    assert.equal(r.code, 0, `${kind}: ${r.stderr}\n${p.proc.output()}`);
    assert.equal(r.stdout, 'from 127.0.0.1');
  }
  assert.deepEqual(gw.clients, ['laptop-42', 'laptop-42', 'laptop-42']);

  // Another token of the same module: new connections present its key at once.
  rewrite('pkcs11:token=spare;object=sparekey?pin-value=4321', SOFTHSM_MODULE);
  p.signal('SIGHUP');
  await p.waitRecord((r) => r.event === 'reload' && r.result === 'ok');
  const r2 = await via('socks5', p.port, target.port);
  assert.equal(r2.code, 0, `after reload: ${r2.stderr}\n${p.proc.output()}`);
  assert.deepEqual(gw.clients.slice(3), ['laptop-43']);

  // Only the daemon's own log lines: libp11 and OpenSSL print nothing (no "bad engine id").
  const foreign = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('portail: '));
  assert.deepEqual(foreign, [], `stderr:\n${stderr}`);

  // Another module cannot be loaded by the running engine: the reload is refused, the
  // previous identity stays in force.
  rewrite('pkcs11:token=dev;object=devkey?pin-value=1234', copy);
  p.signal('SIGHUP');
  const refused = await p.waitRecord((r) => r.event === 'reload' && r.result === 'failed');
  assert.match(String(refused.diagnostics), /pkcs11-module.*needs a restart of portail/s);
  assert.match(String(refused.reason), /previous rules kept/);
  const r3 = await via('http-connect', p.port, target.port);
  assert.equal(r3.code, 0, `after the refused reload: ${r3.stderr}\n${p.proc.output()}`);
  assert.deepEqual(gw.clients.slice(4), ['laptop-43']);

  assert.ok(!p.proc.output().includes('pin-value=1234'), 'the PIN is never logged');
  assert.doesNotMatch(stderr, /bad engine id|engine::|PKCS11_/, `stderr:\n${stderr}`);
});
