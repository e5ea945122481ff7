// A minimal SOCKS5 client (RFC 1928, no authentication, CONNECT) written for measuring:
// it reads exactly the bytes each step needs and times each connection from connect()
// to the first byte of the origin's answer, without curl's process start-up in the way.
import net from 'node:net';
import ipaddr from 'ipaddr.js';

export interface Endpoint {
  host: string;
  port: number;
}

/** Reads exact byte counts from a socket, in order. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private waiting?: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private failed?: Error;

  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.pump();
    });
    const fail = (e: Error) => {
      this.failed ??= e;
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(this.failed);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failed && this.buf.length < n) return reject(this.failed);
      this.waiting = { n, resolve, reject };
      this.pump();
    });
  }

  private pump() {
    const w = this.waiting;
    if (!w || this.buf.length < w.n) return;
    this.waiting = undefined;
    const out = this.buf.subarray(0, w.n);
    this.buf = this.buf.subarray(w.n);
    w.resolve(out);
  }
}

export class SocksError extends Error {
  constructor(readonly reply: number) {
    super(`SOCKS5 reply 0x${reply.toString(16).padStart(2, '0')}`);
  }
}

function connectTcp(to: Endpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: to.host, port: to.port });
    s.setNoDelay(true);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** The CONNECT request's address: IPv4/IPv6 literals as such, anything else as a name. */
function encodeTarget(target: Endpoint): Buffer {
  const port = Buffer.from([target.port >> 8, target.port & 0xff]);
  if (net.isIP(target.host)) {
    const bytes = ipaddr.parse(target.host).toByteArray();
    return Buffer.concat([Buffer.from([bytes.length === 4 ? 1 : 4, ...bytes]), port]);
  }
  const name = Buffer.from(target.host);
  return Buffer.concat([Buffer.from([3, name.length]), name, port]);
}

/**
 * Opens a relay to `target` through the SOCKS5 proxy: greeting, method, CONNECT, reply.
 * Resolves with the socket, ready to carry the target's bytes; rejects with SocksError
 * when the proxy answers with a failure code.
 */
export async function socksConnect(proxy: Endpoint, target: Endpoint): Promise<net.Socket> {
  const s = await connectTcp(proxy);
  const r = new Reader(s);
  try {
    s.write(Buffer.from([5, 1, 0]));
    const method = await r.read(2);
    if (method[0] !== 5 || method[1] !== 0)
      throw new Error(`SOCKS5 method refused: ${method.toString('hex')}`);
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeTarget(target)]));
    const head = await r.read(5);
    if (head[0] !== 5) throw new Error(`not a SOCKS5 reply: ${head.toString('hex')}`);
    if (head[1] !== 0) throw new SocksError(head[1] ?? 0xff);
    const atyp = head[3];
    const rest = atyp === 1 ? 3 + 2 : atyp === 4 ? 15 + 2 : atyp === 3 ? (head[4] ?? 0) + 2 : -1;
    if (rest < 0) throw new Error(`bad address type in reply: ${atyp}`);
    await r.read(rest);
    s.removeAllListeners('data');
    s.removeAllListeners('close');
    s.removeAllListeners('error');
    s.on('error', () => {});
    return s;
  } catch (e) {
    s.destroy();
    throw e;
  }
}

/**
 * Milliseconds from the first TCP connect to the first byte of the origin's HTTP answer
 * to `GET path`, through `proxy` (or directly when proxy is undefined). The connection
 * is then read to its end and closed.
 */
export async function timeFirstByte(
  proxy: Endpoint | undefined,
  origin: Endpoint,
  path = '/__peer',
): Promise<number> {
  const t0 = process.hrtime.bigint();
  const s = proxy ? await socksConnect(proxy, origin) : await connectTcp(origin);
  return new Promise((resolve, reject) => {
    let t1: bigint | undefined;
    s.once('data', () => {
      t1 = process.hrtime.bigint();
    });
    s.on('data', () => {});
    s.once('end', () => {
      s.destroy();
      if (t1 === undefined) reject(new Error('no answer from the origin'));
      else resolve(Number(t1 - t0) / 1e6);
    });
    s.once('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${origin.host}\r\nConnection: close\r\n\r\n`);
  });
}
