// Real peers on loopback for the front-end tests: the listener behind a real
// net.Server, a TCP echo server, an HTTP origin, a UDP echo, curl, and a raw client
// that reads exact bytes.
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { TestContext } from 'node:test';
import {
  createProxyListener,
  type ProxyListener,
  type ProxyListenerOptions,
} from '../../../proxy/listen/listener.js';
import { FakePipeline } from './fake-pipeline.js';

export interface ProxyUnderTest {
  listener: ProxyListener;
  pipeline: FakePipeline;
  port: number;
  host: string;
  errors: Error[];
  close(): Promise<void>;
}

export async function startProxy(
  opts: Partial<Omit<ProxyListenerOptions, 'pipeline'>> & { host?: string } = {},
): Promise<ProxyUnderTest> {
  const pipeline = new FakePipeline();
  const errors: Error[] = [];
  const listener = createProxyListener({
    handshakeTimeoutMs: 5000,
    maxConnections: 1000,
    onError: (err) => errors.push(err),
    ...opts,
    pipeline,
  });
  const host = opts.host ?? '127.0.0.1';
  // As the daemon's: a client's FIN ends only its direction (proxy/daemon/daemon.ts).
  const server = net.createServer({ allowHalfOpen: true }, (s) => listener.handleSocket(s));
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    listener,
    pipeline,
    port,
    host,
    errors,
    async close() {
      listener.closeAll();
      pipeline.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface EchoServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function startEcho(host = '127.0.0.1'): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    host,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface Origin {
  port: number;
  /** Requests as the origin saw them. */
  seen: {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
    rawHeaders: string[];
    body: string;
  }[];
  close(): Promise<void>;
}

/** An HTTP origin answering "hello from origin <method> <url>" (and echoing request bodies). */
export async function startOrigin(host = '127.0.0.1'): Promise<Origin> {
  const seen: Origin['seen'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
      });
      res.setHeader('Connection', 'keep-alive, X-Secret-Hop');
      res.setHeader('X-Secret-Hop', 'must not reach the client');
      res.setHeader('Keep-Alive', 'timeout=30');
      res.end(`hello from origin ${req.method} ${req.url}${body ? ` body=${body}` : ''}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface UdpEcho {
  port: number;
  close(): void;
}

export async function startUdpEcho(host = '127.0.0.1'): Promise<UdpEcho> {
  const sock = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) =>
    sock.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address),
  );
  await new Promise<void>((r) => sock.bind(0, host, r));
  return { port: sock.address().port, close: () => sock.close() };
}

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

let curlAvailable: boolean | undefined;
export async function needCurl(t: TestContext): Promise<boolean> {
  if (curlAvailable === undefined) {
    curlAvailable = await new Promise<boolean>((r) =>
      execFile('curl', ['--version'], (err) => r(!err)),
    );
  }
  if (!curlAvailable) t.skip('needs curl (apt-get install curl)');
  return curlAvailable;
}

export function curl(args: string[], timeoutMs = 10_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-sS', '--max-time', String(timeoutMs / 1000), ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

/** A raw TCP client that collects every byte and knows when the server closed. */
export class RawClient {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** `halfOpen`: the client never sends its FIN unless told to (a peer that lingers). */
  static connect(port: number, host = '127.0.0.1', halfOpen = false): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, allowHalfOpen: halfOpen });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get received(): Buffer {
    return this.buf;
  }

  write(data: Uint8Array | string): void {
    this.socket.write(data);
  }

  /** Resolves with exactly n bytes (consumed), or rejects on close/timeout. */
  async read(n: number, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended || this.closed) {
        throw new Error(
          `closed after ${this.buf.length} of ${n} bytes: ${this.buf.toString('hex')}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout after ${this.buf.length} of ${n} bytes`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads until `marker` is seen (consumed, marker included). */
  async readUntil(marker: string, timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.buf.indexOf(marker);
      if (i >= 0) {
        const out = this.buf.subarray(0, i + marker.length).toString('latin1');
        this.buf = this.buf.subarray(i + marker.length);
        return out;
      }
      if (this.ended || this.closed)
        throw new Error(`closed before ${JSON.stringify(marker)}: ${this.buf.toString('latin1')}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timeout waiting for ${JSON.stringify(marker)}: ${this.buf.toString('latin1')}`,
        );
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves with the ms it took for the server to close (FIN or reset); rejects on timeout. */
  async waitClosed(timeoutMs = 3000): Promise<number> {
    const start = Date.now();
    while (!this.ended && !this.closed) {
      const left = start + timeoutMs - Date.now();
      if (left <= 0) throw new Error('server did not close the connection');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return Date.now() - start;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** SOCKS5 CONNECT request bytes. */
export function socksConnect(atyp: number, address: Buffer, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, 1, 0, atyp]), address, p]);
}

export function ipv4(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

export function domain(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  return Buffer.concat([Buffer.from([b.length]), b]);
}

export interface RawResponse {
  status: number;
  head: string;
  headers: Map<string, string>;
  body: string;
}

/** Reads one HTTP/1.1 response framed by Content-Length (what the proxy itself sends). */
export async function readResponse(c: RawClient, timeoutMs = 3000): Promise<RawResponse> {
  const head = await c.readUntil('\r\n\r\n', timeoutMs);
  const lines = head.split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  const length = Number(headers.get('content-length') ?? 0);
  const body = length > 0 ? (await c.read(length, timeoutMs)).toString('utf8') : '';
  return { status, head, headers, body };
}
