// Helpers for the gateway tests: extra client certificates (another CN, SANs, expired,
// from a foreign CA), a gateway daemon with `[listener]` TLS, and small clients
// (SOCKS5 over any stream, a hand-written PROXY v2 header).
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ipaddr from 'ipaddr.js';
import { makeTestCa, type Owner, type TestCa } from '../../harness/index.js';
import { type Portail, type PortailOptions, startPortail } from '../daemon/portail.js';

const run = promisify(execFile);

/** The repository root (dist/test/integration/gateway → 4 levels up). */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/**
 * MaxMind's test database, in a data folder beside the checkout (../shared/testdata/geoip;
 * docs/testing.md, "GeoIP test database").
 */
export const GEOIP_COUNTRY_DB = join(
  ROOT,
  '..',
  'shared',
  'testdata',
  'geoip',
  'GeoIP2-Country-Test.mmdb',
);

export interface ClientCert {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

/** A client certificate signed by `ca` (openssl ca: any validity window, any SAN). */
export async function issueClientCert(
  ca: TestCa,
  name: string,
  opts: { cn: string; san?: string; startdate?: string; enddate?: string },
): Promise<ClientCert> {
  const dir = ca.dir;
  const cnf = join(dir, `${name}.cnf`);
  writeFileSync(join(dir, `${name}.index`), '');
  writeFileSync(
    cnf,
    [
      '[ca]',
      'default_ca = d',
      '[d]',
      `database = ${join(dir, `${name}.index`)}`,
      `new_certs_dir = ${dir}`,
      `certificate = ${ca.caCert}`,
      `private_key = ${ca.caKey}`,
      'default_md = sha256',
      'policy = any',
      'rand_serial = yes',
      'unique_subject = no',
      'default_days = 2',
      '[any]',
      'commonName = supplied',
      '[ext]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = clientAuth',
      ...(opts.san ? [`subjectAltName = ${opts.san}`] : []),
      '',
    ].join('\n'),
  );
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  const csr = join(dir, `${name}.csr`);
  await run(
    'openssl',
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      keyPath,
      '-out',
      csr,
      '-subj',
      `/CN=${opts.cn}`,
    ]),
  );
  const window = opts.startdate
    ? ['-startdate', opts.startdate, '-enddate', opts.enddate ?? '20200102000000Z']
    : [];
  await run('openssl', [
    'ca',
    '-batch',
    '-notext',
    '-config',
    cnf,
    '-extensions',
    'ext',
    '-in',
    csr,
    '-out',
    certPath,
    ...window,
  ]);
  return {
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
    certPath,
    keyPath,
  };
}

export interface Gateway extends Portail {
  ca: TestCa;
}

/** A portail gateway: TLS with client certificates required (unless `mtls: false`). */
export async function startGateway(
  t: Owner,
  opts: PortailOptions & { ca?: TestCa; mtls?: boolean; listener?: string; top?: string } = {},
): Promise<Gateway> {
  const ca = opts.ca ?? (await makeTestCa({ t }));
  const listener = [
    '[listener]',
    ...(opts.mtls === false ? [] : [`cacert-file = "${ca.caCert}"`]),
    `tls-privkey = "${ca.serverKey}"`,
    `tls-chain = "${ca.serverChain}"`,
    opts.listener ?? '',
  ].join('\n');
  const gw = await startPortail(t, {
    ...opts,
    config: `${opts.top ?? ''}\n${opts.config ?? ''}\n${listener}\n`,
  });
  return Object.assign(gw, { ca });
}

/** TLS to the gateway with the test client identity (or `as`), optionally with ALPN. */
export async function tlsConnect(
  port: number,
  ca: TestCa,
  opts: { as?: ClientCert | null; alpn?: string[]; socket?: Duplex } = {},
): Promise<tls.TLSSocket> {
  const id =
    opts.as === null ? {} : opts.as ? opts.as : { cert: ca.pem.clientCert, key: ca.pem.clientKey };
  const s = tls.connect({
    host: '127.0.0.1',
    port,
    socket: opts.socket,
    ca: ca.pem.ca,
    servername: 'localhost',
    ALPNProtocols: opts.alpn,
    ...id,
  });
  await once(s, 'secureConnect');
  return s;
}

/** Reads exactly `n` bytes (rejects if the stream ends first). */
export function readExactly(s: Duplex, n: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`timeout: ${buf.length}/${n} bytes`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) done();
    };
    const onEnd = () => done(new Error(`closed after ${buf.length}/${n} bytes`));
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onEnd);
      if (err) reject(err);
      else {
        if (buf.length > n) s.unshift(buf.subarray(n));
        resolve(buf.subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.once('error', onEnd);
  });
}

/** SOCKS5 CONNECT to an IPv4 address over an already open stream; the reply code. */
export async function socks5Connect(s: Duplex, ip: string, port: number): Promise<number> {
  s.write(Buffer.from([0x05, 0x01, 0x00]));
  const method = await readExactly(s, 2);
  if (method[1] !== 0x00) throw new Error(`SOCKS5 method ${method[1]}`);
  const req = Buffer.from([0x05, 0x01, 0x00, 0x01, ...ipaddr.IPv4.parse(ip).toByteArray(), 0, 0]);
  req.writeUInt16BE(port, 8);
  s.write(req);
  const reply = await readExactly(s, 10);
  return reply[1];
}

/** A PROXY v2 header (PROXY command, TCP over IPv4) claiming `src`. */
export function proxyV2Header(
  src: { ip: string; port: number },
  dst: { ip: string; port: number },
): Buffer {
  const h = Buffer.alloc(28);
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(h);
  h[12] = 0x21;
  h[13] = 0x11;
  h.writeUInt16BE(12, 14);
  h.set(ipaddr.IPv4.parse(src.ip).toByteArray(), 16);
  h.set(ipaddr.IPv4.parse(dst.ip).toByteArray(), 20);
  h.writeUInt16BE(src.port, 24);
  h.writeUInt16BE(dst.port, 26);
  return h;
}

/** A loopback HTTP server answering `hello from origin`, closed when the test ends. */
export async function origin(t: Owner): Promise<number> {
  const server = http.createServer((_req, res) => res.end('hello from origin'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}
