// A throw-away PKI made with the openssl CLI: a CA, a server certificate for
// localhost / 127.0.0.1 / ::1 and a client certificate, all ECDSA P-256 (fast to make)
// and valid for two days.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Owner } from './cleanup.js';
import { tmpDir } from './tmp.js';

const run = promisify(execFile);

export interface TestCa {
  dir: string;
  /** Paths of PEM files. */
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Server certificate followed by the CA certificate. */
  serverChain: string;
  clientCert: string;
  clientKey: string;
  /** The client certificate's subject CN. */
  clientCn: string;
  /** PEM contents, for tls.createServer / tls.connect. */
  pem: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string };
}

export interface TestCaOptions {
  /** Where to write the files (default: a new tmpDir owned by `t`). */
  dir?: string;
  t?: Owner;
  clientCn?: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${err.stderr || err.message}`);
  }
}

async function leaf(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      `0x${randomBytes(12).toString('hex')}`,
      '-days',
      '2',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

/** Makes the CA, server and client certificates in `opts.dir` (or a new temp folder). */
export async function makeTestCa(opts: TestCaOptions = {}): Promise<TestCa> {
  const dir = opts.dir ?? tmpDir(opts.t, 'portail-ca-');
  const clientCn = opts.clientCn ?? 'portail-test-client';
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '3',
      '-sha256',
      '-subj',
      '/CN=portail test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  await leaf(
    dir,
    'server',
    '/CN=localhost',
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      '',
    ].join('\n'),
  );
  await leaf(
    dir,
    'client',
    `/CN=${clientCn}`,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=clientAuth',
      '',
    ].join('\n'),
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const pem = {
    ca: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
  };
  writeFileSync(join(dir, 'server-chain.pem'), pem.serverCert + pem.ca);
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    serverChain: join(dir, 'server-chain.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    clientCn,
    pem,
  };
}
