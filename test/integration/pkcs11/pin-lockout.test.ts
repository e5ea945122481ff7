// A wrong PKCS#11 PIN costs one login, not one per connection: a YubiKey PIV or a TPM
// locks after about three. The real daemon signs through SoftHSM2 behind OpenSC's
// pkcs11-spy, which records every PKCS#11 call the process makes (pkcs11js and the
// OpenSSL engine alike): the observable is the number of C_Login calls.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import { makeTestCa, type Owner, requireFile, requireTool, tmpDir } from '../../harness/index.js';
import { origin, via } from '../chain/helpers.js';
import { portailctl, socksConnect, startPortail } from '../daemon/portail.js';
import { importObject, initToken, makeKey, SOFTHSM_MODULE, softHsm } from './softhsm.js';

const SPY = '/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so';
const ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';
const WRONG = '86420';

const ctl = portailctl;

/** A TLS HTTP CONNECT proxy requiring a client certificate signed by `clientCa`. */
async function tlsConnectProxy(t: Owner, key: string, cert: string, clientCa: string) {
  const clients: string[] = [];
  const srv = tls.createServer(
    { key, cert, requestCert: true, rejectUnauthorized: true, ca: clientCa },
    (s) => {
      clients.push(String(s.getPeerCertificate().subject?.CN));
      s.once('data', (d: Buffer) => {
        const m = /^CONNECT ([^ :]+):(\d+) HTTP/.exec(d.toString('latin1'));
        if (!m) return void s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        const up = net.connect(Number(m[2]), m[1], () => {
          s.write('HTTP/1.1 200 Connection established\r\n\r\n');
          s.pipe(up).pipe(s);
        });
        up.on('error', () => s.destroy());
      });
      s.on('error', () => {});
    },
  );
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, clients };
}

/** The return value of every C_Login call the spy saw, in order. */
function logins(spyLog: string): string[] {
  if (!existsSync(spyLog)) return [];
  const out: string[] = [];
  const blocks = readFileSync(spyLog, 'latin1').split(/\n(?=\d+: C_)/);
  for (const b of blocks) {
    if (!/^\d+: C_Login\b/.test(b)) continue;
    out.push(/Returned:\s+\d+ (\w+)/.exec(b)?.[1] ?? 'unknown');
  }
  return out;
}

const failedLogins = (spyLog: string) =>
  logins(spyLog).filter((r) => r !== 'CKR_OK' && r !== 'CKR_USER_ALREADY_LOGGED_IN');

test('a wrong PIN (pin-value, then pin-source) costs one C_Login, disables the token until its settings change', async (t) => {
  if (!requireTool(t, 'softhsm2-util') || !requireTool(t, 'pkcs11-tool')) return;
  if (!requireFile(t, SOFTHSM_MODULE, 'softhsm2')) return;
  if (!requireFile(t, SPY, 'opensc-pkcs11')) return;
  if (!requireFile(t, ENGINE, 'libengine-pkcs11-openssl')) return;
  const dir = tmpDir(t, 'portail-pkcs11-lockout-');
  const hsm = softHsm(dir);
  mkdirSync(join(dir, 'ca'));
  const ca = await makeTestCa({ dir: join(dir, 'ca') });
  const device = await makeKey(dir, 'device', 'laptop-42');
  // Login state is per token: each variant has its own.
  for (const label of ['dev', 'two']) {
    await initToken(hsm, label, '1234');
    await importObject(hsm, label, '1234', device.keyDer, 'privkey', '01', 'devkey');
    await importObject(hsm, label, '1234', device.certDer, 'cert', '01', 'devkey');
  }
  const spyLog = join(dir, 'spy.log');
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${WRONG}\n`);
  chmodSync(pinFile, 0o644);

  const target = await origin(t);
  const gw = await tlsConnectProxy(
    t,
    ca.pem.serverKey,
    ca.pem.serverCert,
    readFileSync(device.cert, 'utf8'),
  );
  const config = (uri: string) =>
    'fallback-to-direct = false\nwatch-acl = false\n' +
    `[escaper]\ncacert-file = "${ca.caCert}"\npkcs11-uri = "${uri}"\npkcs11-module = "${SPY}"\n` +
    `[backends.gw]\ntype = "http"\ntarget-address = "127.0.0.1:${gw.port}"\nidentity-aware = true\ntls-server-name = "localhost"\n`;
  let sock = '';
  const p = await startPortail(t, {
    env: { SOFTHSM2_CONF: hsm.conf, PKCS11SPY: SOFTHSM_MODULE, PKCS11SPY_OUTPUT: spyLog },
    acl: `route gw { when port == ${target.port} use ["gw"] }\npolicy all { action allow }\n`,
    config: config(`pkcs11:token=dev;object=devkey?pin-value=${WRONG}`),
    args: (d) => {
      sock = join(d, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const rewrite = (uri: string) =>
    writeFileSync(
      p.configPath,
      `filter-acl-rules-path = "filter.acl"\n${config(uri)}\n[log]\naudit = "file:${p.auditPath}"\n`,
    );
  const status = async () => {
    const s = await ctl(sock, 'status', '--json');
    assert.equal(s.code, 0, s.stderr);
    return JSON.parse(s.stdout).pkcs11 as Record<string, string | null>;
  };
  const refusedRequests = async (n: number) => {
    // A burst of concurrent first requests, then one after the other.
    const burst = Math.min(5, n);
    const all = await Promise.allSettled([
      ...Array.from({ length: burst }, () => socksConnect(p.port, '127.0.0.1', target.port)),
    ]);
    for (let i = burst; i < n; i++)
      all.push(...(await Promise.allSettled([socksConnect(p.port, '127.0.0.1', target.port)])));
    for (const r of all) {
      if (r.status === 'fulfilled') r.value.destroy();
      assert.equal(r.status, 'rejected', 'a request went through with a wrong PIN');
    }
  };
  assert.equal((await status()).state, 'unused');

  // 1. pin-value: 15 requests, one failed login.
  await refusedRequests(15);
  assert.deepEqual(logins(spyLog), ['CKR_PIN_INCORRECT'], 'C_Login calls');
  const failures = p
    .records()
    .filter((r) => r.event === 'decision' && /wrong PIN/.test(String(r.reason ?? '')));
  assert.equal(failures.length, 15, JSON.stringify(p.records(), null, 1));
  for (const r of failures) {
    assert.match(
      String(r.reason),
      /wrong PIN for PKCS#11 token "dev".*disabled.*not retried until/,
    );
  }
  // Said once by the daemon itself: one error record and one log line, not one per request.
  const told = p
    .records()
    .filter((r) => r.event === 'error' && /token disabled since/.test(String(r.reason ?? '')));
  assert.equal(told.length, 1, 'one error record when the token is disabled');
  assert.equal(p.proc.output().match(/error: .*token disabled since/g)?.length, 1);
  let st = await status();
  assert.equal(st.state, 'disabled');
  assert.match(String(st.reason), /wrong PIN for PKCS#11 token "dev"/);
  assert.ok(st.since);
  const human = await ctl(sock, 'status');
  assert.match(human.stdout, /pkcs11 token:\s+DISABLED since/);

  // 2. A reload of the same configuration does not retry, and says why.
  const same = await ctl(sock, 'reload');
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stderr, /pkcs11-uri: wrong PIN .*token disabled since/);
  await refusedRequests(3);
  assert.equal(logins(spyLog).length, 1, 'a reload of unchanged settings retried the login');
  assert.equal((await status()).state, 'disabled');

  // 3. The right PIN in the configuration: one login, and it works.
  rewrite('pkcs11:token=dev;object=devkey?pin-value=1234');
  assert.equal((await ctl(sock, 'reload')).code, 0);
  assert.equal((await status()).state, 'unused');
  const ok = await via('socks5', p.port, target.port);
  assert.equal(ok.code, 0, `${ok.stderr}\n${p.proc.output()}`);
  assert.deepEqual(gw.clients, ['laptop-42']);
  assert.equal((await status()).state, 'ready');

  // 4. pin-source (another token): the file readable by others is warned about, its
  // wrong PIN costs one login; an unchanged file is not retried, a fixed one is.
  rewrite(`pkcs11:token=two;object=devkey?pin-source=file:${pinFile}`);
  const warned = await ctl(sock, 'reload');
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /holds a PIN and is readable by other users \(chmod go-r\)/);
  const before = logins(spyLog).length;
  await refusedRequests(15);
  assert.deepEqual(logins(spyLog).slice(before), ['CKR_PIN_INCORRECT']);
  assert.equal((await ctl(sock, 'reload')).code, 0);
  await refusedRequests(2);
  assert.equal(logins(spyLog).length, before + 1);
  st = await status();
  assert.equal(st.state, 'disabled');
  assert.match(String(st.reason), /wrong PIN for PKCS#11 token "two"/);
  writeFileSync(pinFile, '1234\n');
  chmodSync(pinFile, 0o600);
  const fixed = await ctl(sock, 'reload');
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.doesNotMatch(fixed.stderr, /readable by other users/);
  const ok2 = await via('http-connect', p.port, target.port);
  assert.equal(ok2.code, 0, `${ok2.stderr}\n${p.proc.output()}`);
  // The engine logs in too once the PIN is right (CKR_OK or already logged in).
  assert.equal(logins(spyLog).slice(before)[0], 'CKR_PIN_INCORRECT');
  assert.deepEqual(failedLogins(spyLog), ['CKR_PIN_INCORRECT', 'CKR_PIN_INCORRECT']);

  // The PIN never reached a log, the audit file or the control socket's answers.
  const everything = p.proc.output() + readFileSync(p.auditPath, 'utf8') + human.stdout;
  assert.ok(!everything.includes(WRONG), 'the wrong PIN was logged');
});
