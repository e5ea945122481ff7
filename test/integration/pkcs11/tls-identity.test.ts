// pkcs11TlsOptions against SoftHSM2 tokens: mutual TLS with a Node server that checks
// the client certificate, and every error a user can make, in plain words.
//
// SoftHSM reads SOFTHSM2_CONF once per process, so every token lives in one
// configuration made in before(); each error case has its own token so that one
// test's login cannot hide another's wrong PIN.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { EscaperConfig } from '../../../proxy/config/types.js';
import { pkcs11TlsOptions } from '../../../proxy/connect/pkcs11.js';
import { ConnectError } from '../../../proxy/types.js';
import { makeTestCa, type TestCa, which } from '../../harness/index.js';
import {
  importObject,
  initToken,
  makeKey,
  SOFTHSM_MODULE,
  type SoftHsm,
  softHsm,
} from './softhsm.js';

const ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';
const missing = [
  which('softhsm2-util') ? '' : 'softhsm2',
  which('pkcs11-tool') ? '' : 'opensc',
  which('openssl') ? '' : 'openssl',
  (() => {
    try {
      readFileSync(SOFTHSM_MODULE, { flag: 'r' }).subarray(0, 1);
      readFileSync(ENGINE).subarray(0, 1);
      return '';
    } catch {
      return 'softhsm2 libengine-pkcs11-openssl';
    }
  })(),
].filter(Boolean);
const skip = missing.length
  ? `needs ${missing.join(' ')} (apt-get install ${missing.join(' ')})`
  : false;

const run = promisify(execFile);
const PIN = '1234';
const WRONG_PIN_SECRET = '864209';

async function rejectsWith(p: Promise<unknown>, message: RegExp, secret?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConnectError, `expected a ConnectError, got ${String(e)}`);
    assert.equal(e.reason, 'internal');
    assert.match(e.message, message);
    if (secret) assert.ok(!e.message.includes(secret), `the message shows the PIN: ${e.message}`);
    return true;
  });
}

/** A TLS server that requires a client certificate signed by (or equal to) `clientCa`. */
async function mtlsServer(ca: TestCa, clientCa: string) {
  const seen: string[] = [];
  const srv = tls.createServer(
    {
      key: ca.pem.serverKey,
      cert: ca.pem.serverCert,
      requestCert: true,
      rejectUnauthorized: true,
      ca: clientCa,
    },
    (s) => {
      seen.push(String(s.getPeerCertificate().subject?.CN));
      s.end('welcome');
    },
  );
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as { port: number }).port,
    seen,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

async function handshake(
  ca: TestCa,
  port: number,
  opts: tls.SecureContextOptions,
): Promise<string> {
  const c = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: ca.pem.ca,
    ...opts,
  });
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  await once(c, 'end');
  c.destroy();
  return Buffer.concat(chunks).toString();
}

describe('PKCS#11 client identity (SoftHSM2)', { skip }, () => {
  let dir: string;
  let hsm: SoftHsm;
  let ca: TestCa;
  let ec: Awaited<ReturnType<typeof makeKey>>;
  let rsa: Awaited<ReturnType<typeof makeKey>>;
  let other: Awaited<ReturnType<typeof makeKey>>;
  const savedConf = process.env.SOFTHSM2_CONF;
  const esc = (uri: string, extra: Partial<EscaperConfig> = {}): EscaperConfig => ({
    pkcs11Uri: uri,
    pkcs11Module: SOFTHSM_MODULE,
    ...extra,
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portail-pkcs11-'));
    hsm = softHsm(dir);
    process.env.SOFTHSM2_CONF = hsm.conf;
    mkdirSync(join(dir, 'ca'));
    ca = await makeTestCa({ dir: join(dir, 'ca') });
    [ec, rsa, other] = await Promise.all([
      makeKey(dir, 'ec', 'device-ec'),
      makeKey(dir, 'rsa', 'device-rsa', 'rsa'),
      makeKey(dir, 'other', 'someone-else'),
    ]);
    for (const [label, pin] of [
      ['dev', PIN],
      ['wrongpin', PIN],
      ['nocert', PIN],
      ['mismatch', PIN],
    ] as const)
      await initToken(hsm, label, pin);
    await importObject(hsm, 'dev', PIN, ec.keyDer, 'privkey', '01', 'devkey');
    await importObject(hsm, 'dev', PIN, ec.certDer, 'cert', '01', 'devkey');
    // The RSA certificate under another label and id: found by its public key.
    await importObject(hsm, 'dev', PIN, rsa.keyDer, 'privkey', '02', 'rsakey');
    await importObject(hsm, 'dev', PIN, rsa.certDer, 'cert', '22', 'rsa certificate');
    await importObject(hsm, 'wrongpin', PIN, ec.keyDer, 'privkey', '01', 'devkey');
    await importObject(hsm, 'nocert', PIN, ec.keyDer, 'privkey', '01', 'devkey');
    await importObject(hsm, 'mismatch', PIN, ec.keyDer, 'privkey', '01', 'devkey');
    await importObject(hsm, 'mismatch', PIN, other.certDer, 'cert', '01', 'devkey');
  });
  after(() => {
    if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = savedConf;
    if (dir && process.env.PORTAIL_KEEP_TMP !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('unhappy: the module does not exist', async () => {
    await rejectsWith(
      pkcs11TlsOptions(
        esc('pkcs11:token=dev;object=devkey?pin-value=1234', {
          pkcs11Module: join(dir, 'nope.so'),
        }),
      ),
      /PKCS#11 module .*nope\.so does not exist/,
    );
  });

  test('unhappy: the module is not a PKCS#11 library', async () => {
    await rejectsWith(
      pkcs11TlsOptions(
        esc('pkcs11:token=dev;object=devkey?pin-value=1234', { pkcs11Module: hsm.conf }),
      ),
      /cannot load PKCS#11 module .*softhsm2\.conf/,
    );
  });

  test('unhappy: the token is absent', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc('pkcs11:token=yubikey;object=devkey?pin-value=1234')),
      /token "yubikey" is not present .*tokens present: .*"dev"/,
    );
  });

  test('unhappy: a wrong PIN (never shown)', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc(`pkcs11:token=wrongpin;object=devkey?pin-value=${WRONG_PIN_SECRET}`)),
      /wrong PIN for PKCS#11 token "wrongpin"/,
      WRONG_PIN_SECRET,
    );
  });

  test('unhappy: no key for the URI', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc('pkcs11:token=dev;object=nokey?pin-value=1234')),
      /no private key with object "nokey" on PKCS#11 token "dev"/,
    );
  });

  test('unhappy: no PIN at all hides the private keys, and says so', async () => {
    await rejectsWith(pkcs11TlsOptions(esc('pkcs11:token=nocert;object=devkey')), /no PIN given/);
  });

  test('unhappy: no certificate on the token', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc('pkcs11:token=nocert;object=devkey?pin-value=1234')),
      /no certificate matching private key "devkey" on PKCS#11 token "nocert"/,
    );
  });

  test('unhappy: a certificate with the key id but another public key is not used', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc('pkcs11:token=mismatch;object=devkey?pin-value=1234')),
      /no certificate matching private key "devkey"/,
    );
  });

  test('unhappy: [escaper] tls-certificate that does not match the token key', async () => {
    await rejectsWith(
      pkcs11TlsOptions(
        esc('pkcs11:token=dev;object=devkey?pin-value=1234', { tlsCertificate: other.cert }),
      ),
      /tls-certificate .*other\.pem does not match private key "devkey"/,
    );
  });

  test('unhappy: a misspelt URI attribute is an error, not a wider match (PIN redacted)', async () => {
    await rejectsWith(
      pkcs11TlsOptions(esc(`pkcs11:token=dev;objet=devkey;pin-value=${WRONG_PIN_SECRET}`)),
      /unknown attribute "objet"/,
      WRONG_PIN_SECRET,
    );
  });

  /** Runs the handshakes in a fresh process (the engine loads once per process). */
  async function inChild(
    escapers: EscaperConfig[],
    port: number,
    connections = 2,
    viaTlsIdentity = false,
  ) {
    const child = join(dirname(fileURLToPath(import.meta.url)), 'handshake-child.js');
    const { stdout, stderr } = await run(
      process.execPath,
      [child, JSON.stringify({ escapers, port, connections, viaTlsIdentity })],
      {
        env: hsm.env,
        timeout: 20_000,
      },
    );
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      certs: string[];
      stderr: string;
      answers: string[];
      error?: string;
      sameContext?: boolean;
      identifiers: string[];
      pinFilesLeft?: string[];
    };
    out.stderr = stderr;
    return out;
  }

  test('mutual TLS with the EC token key: the server sees the token certificate', async () => {
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      const r = await inChild(
        [esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ca.caCert })],
        srv.port,
      );
      assert.equal(r.error, undefined);
      assert.deepEqual(r.certs, [readFileSync(ec.cert, 'utf8')]);
      assert.deepEqual(r.answers, ['welcome', 'welcome']);
      assert.deepEqual(srv.seen, ['device-ec', 'device-ec']);
      // libp11 prints the key URI when it fails: the PIN is handed over in a file of
      // ours, removed once the key is loaded.
      assert.equal(r.identifiers.length, 1);
      assert.doesNotMatch(r.identifiers[0] ?? '', /pin-value|1234/);
      assert.deepEqual(r.pinFilesLeft, []);
    } finally {
      await srv.close();
    }
  });

  test('RSA key, PIN from pin-source=file:, certificate found by public key; asked twice, one context', async () => {
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
    const srv = await mtlsServer(ca, readFileSync(rsa.cert, 'utf8'));
    try {
      const e = esc(`pkcs11:token=dev;object=rsakey?pin-source=file:${pinFile}`, {
        cacertFile: ca.caCert,
      });
      const r = await inChild([e, e], srv.port, 1);
      assert.equal(r.error, undefined);
      assert.equal(r.certs[0], readFileSync(rsa.cert, 'utf8'));
      assert.equal(r.sameContext, true);
      assert.deepEqual(r.answers, ['welcome', 'welcome']);
      assert.deepEqual(srv.seen, ['device-rsa', 'device-rsa']);
    } finally {
      await srv.close();
    }
  });

  test('[escaper] tls-certificate that matches is used as is', async () => {
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      const r = await inChild(
        [
          esc('pkcs11:token=dev;id=%01?pin-value=1234', {
            tlsCertificate: ec.cert,
            cacertFile: ca.caCert,
          }),
        ],
        srv.port,
        1,
      );
      assert.equal(r.error, undefined);
      assert.equal(r.certs[0], new X509Certificate(readFileSync(ec.cert)).toString());
      assert.deepEqual(srv.seen, ['device-ec']);
    } finally {
      await srv.close();
    }
  });

  test('through the chaining code (loadTlsIdentity + tlsWrap): verified mutual TLS, twice', async () => {
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      const r = await inChild(
        [esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ca.caCert })],
        srv.port,
        2,
        true,
      );
      assert.equal(r.error, undefined);
      assert.deepEqual(r.answers, ['welcome', 'welcome']);
      assert.deepEqual(srv.seen, ['device-ec', 'device-ec']);
    } finally {
      await srv.close();
    }
  });

  test('unhappy: the upstream is still verified (a CA that did not sign it fails)', async () => {
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      // The device's self-signed certificate as the only trust anchor: the server's is not trusted.
      const r = await inChild(
        [esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ec.cert })],
        srv.port,
        1,
      );
      assert.match(r.error ?? '', /self[- ]signed|unable to (get|verify)|certificate/i);
      assert.deepEqual(srv.seen, []);
    } finally {
      await srv.close();
    }
  });

  test('a second PKCS#11 identity of the same module in one process: both keys sign', async () => {
    const srv = await mtlsServer(
      ca,
      `${readFileSync(ec.cert, 'utf8')}${readFileSync(rsa.cert, 'utf8')}`,
    );
    try {
      const r = await inChild(
        [
          esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ca.caCert }),
          esc('pkcs11:token=dev;object=rsakey?pin-value=1234', { cacertFile: ca.caCert }),
          esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ca.caCert }),
        ],
        srv.port,
        1,
      );
      assert.equal(r.error, undefined);
      assert.deepEqual(r.answers, ['welcome', 'welcome', 'welcome']);
      assert.deepEqual(srv.seen, ['device-ec', 'device-rsa', 'device-ec']);
      // The engine loads quietly (no "bad engine id" from a load by path).
      assert.equal(r.stderr, '');
    } finally {
      await srv.close();
    }
  });

  test('unhappy: another module once the engine is bound is a clear error (restart)', async () => {
    // A copy of SoftHSM under another path is another module for the loader (same tokens).
    const copy = join(dir, 'libsofthsm2-copy.so');
    writeFileSync(copy, readFileSync(SOFTHSM_MODULE));
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      const r = await inChild(
        [
          esc('pkcs11:token=dev;object=devkey?pin-value=1234', { cacertFile: ca.caCert }),
          esc('pkcs11:token=dev;object=devkey?pin-value=1234', {
            cacertFile: ca.caCert,
            pkcs11Module: copy,
          }),
        ],
        srv.port,
        1,
      );
      assert.deepEqual(r.answers, ['welcome']);
      assert.match(r.error ?? '', /bound to module .*libsofthsm2\.so .*restart portail/);
      assert.ok(!(r.error ?? '').includes('pin-value=1234'), 'the PIN is not shown');
    } finally {
      await srv.close();
    }
  });

  test('without the token key the server refuses (the test can fail)', async () => {
    const srv = await mtlsServer(ca, readFileSync(ec.cert, 'utf8'));
    try {
      // TLS 1.3: the client may finish before the server refuses its certificate.
      const answer = await handshake(ca, srv.port, {
        cert: readFileSync(other.cert),
        key: readFileSync(other.key),
      }).catch(() => 'refused');
      assert.notEqual(answer, 'welcome');
      assert.deepEqual(srv.seen, []);
    } finally {
      await srv.close();
    }
  });
});
