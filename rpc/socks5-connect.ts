// A minimal SOCKS5 CONNECT client (RFC 1928, no authentication) for `portailctl
// connect`: the destination name goes to the proxy unresolved, so the proxy's ACL sees
// the host the user asked for.
import net from 'node:net';
import ipaddr from 'ipaddr.js';

/** RFC 1928 reply codes, worded for a person. */
const REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'connection not allowed by the proxy’s rules',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'timed out',
  7: 'command not supported',
  8: 'address type not supported',
};

export class Socks5Error extends Error {
  constructor(
    message: string,
    /** The proxy's reply code, when it answered one. */
    readonly reply?: number,
    /** The proxy itself could not be reached. */
    readonly unreachable = false,
  ) {
    super(message);
    this.name = 'Socks5Error';
  }
}

function destination(host: string, port: number): Buffer {
  const portBytes = Buffer.of(port >> 8, port & 0xff);
  if (net.isIP(host)) {
    const bytes = ipaddr.parse(host).toByteArray();
    return Buffer.concat([Buffer.of(bytes.length === 4 ? 1 : 4), Buffer.from(bytes), portBytes]);
  }
  const name = Buffer.from(host, 'utf8');
  if (name.length === 0 || name.length > 255) throw new Socks5Error(`invalid host name "${host}"`);
  return Buffer.concat([Buffer.of(3, name.length), name, portBytes]);
}

/** Bytes that make a complete CONNECT reply at the start of `buf`, or 0 if more are needed. */
function replyLength(buf: Buffer): number {
  if (buf.length < 5) return 0;
  const atyp = buf[3];
  const addr = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buf[4] : -1;
  if (addr < 0) throw new Socks5Error('invalid reply from the proxy (address type)');
  const total = 4 + addr + 2;
  return buf.length >= total ? total : 0;
}

export interface Socks5Connection {
  socket: net.Socket;
  /** Bytes the proxy sent after its reply (already from the destination). */
  head: Buffer;
}

/** Opens a tunnel to host:port through the SOCKS5 proxy at proxyHost:proxyPort. */
export function socks5Connect(
  proxyHost: string,
  proxyPort: number,
  host: string,
  port: number,
  timeoutMs = 30_000,
): Promise<Socks5Connection> {
  return new Promise((resolve, reject) => {
    const request = Buffer.concat([Buffer.of(5, 1, 0), destination(host, port)]);
    const socket = net.connect({ host: proxyHost, port: proxyPort });
    let stage: 'connecting' | 'method' | 'reply' = 'connecting';
    let buf = Buffer.alloc(0);
    const fail = (err: Socks5Error) => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Socks5Error('the proxy did not answer in time')));
    socket.once('connect', () => {
      stage = 'method';
      socket.write(Buffer.of(5, 1, 0));
    });
    socket.on('error', (e: Error & { code?: string }) => {
      fail(
        new Socks5Error(
          `cannot reach the proxy at ${proxyHost}:${proxyPort}: ${e.message}`,
          undefined,
          stage === 'connecting',
        ),
      );
    });
    socket.on('close', () => fail(new Socks5Error('the proxy closed the connection')));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'method') {
        if (buf.length < 2) return;
        if (buf[0] !== 5 || buf[1] !== 0) {
          return fail(new Socks5Error('the proxy does not accept SOCKS5 without authentication'));
        }
        buf = buf.subarray(2);
        stage = 'reply';
        socket.write(request);
      }
      if (stage === 'reply') {
        if (buf.length >= 2 && (buf[0] !== 5 || buf[1] !== 0)) {
          const code = buf[1];
          return fail(
            new Socks5Error(
              buf[0] === 5
                ? `the proxy refused: ${REPLIES[code] ?? `reply code ${code}`}`
                : 'invalid reply from the proxy',
              buf[0] === 5 ? code : undefined,
            ),
          );
        }
        let n: number;
        try {
          n = replyLength(buf);
        } catch (e) {
          return fail(e as Socks5Error);
        }
        if (n === 0) return;
        socket.off('data', onData);
        socket.removeAllListeners('close');
        socket.removeAllListeners('error');
        socket.setTimeout(0);
        socket.pause();
        resolve({ socket, head: buf.subarray(n) });
      }
    };
    socket.on('data', onData);
  });
}
