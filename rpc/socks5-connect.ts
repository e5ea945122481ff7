// The SOCKS5 CONNECT of `portailctl connect`, through the `socks` package: the
// destination name goes to the proxy unresolved, so the proxy's ACL sees the host the
// user asked for. We open the TCP connection ourselves so that "the proxy cannot be
// reached" (exit 3) is told apart from "the proxy refused" (exit 1).
import net from 'node:net';
import { SocksClient } from 'socks';

/** RFC 1928 reply codes (the `socks` package's names), worded for a person. */
const REPLIES: Record<string, [code: number, text: string]> = {
  Failure: [1, 'general failure'],
  NotAllowed: [2, 'connection not allowed by the proxy’s rules'],
  NetworkUnreachable: [3, 'network unreachable'],
  HostUnreachable: [4, 'host unreachable'],
  ConnectionRefused: [5, 'connection refused'],
  TTLExpired: [6, 'timed out'],
  CommandNotSupported: [7, 'command not supported'],
  AddressNotSupported: [8, 'address type not supported'],
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

/**
 * Opens a tunnel to host:port through the SOCKS5 proxy at proxyHost:proxyPort. Bytes
 * the proxy sent after its reply are delivered as the socket's first 'data' (the
 * `socks` package re-emits them once the caller has had a chance to listen).
 */
export async function socks5Connect(
  proxyHost: string,
  proxyPort: number,
  host: string,
  port: number,
  timeoutMs = 30_000,
): Promise<net.Socket> {
  if (net.isIP(host) === 0 && (host === '' || Buffer.byteLength(host) > 255))
    throw new Socks5Error(`invalid host name "${host}"`);
  const socket = await reach(proxyHost, proxyPort, timeoutMs);
  try {
    const { socket: tunnel } = await SocksClient.createConnection({
      proxy: { host: proxyHost, port: proxyPort, type: 5 },
      command: 'connect',
      destination: { host, port },
      existing_socket: socket,
      timeout: timeoutMs,
    });
    return tunnel;
  } catch (e) {
    socket.destroy();
    throw refusal((e as Error).message);
  }
}

function reach(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new Socks5Error(`cannot reach the proxy at ${host}:${port}: ${why}`, undefined, true));
    };
    socket.setTimeout(timeoutMs, () => fail('no answer in time'));
    socket.once('error', (e) => fail(e.message));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** The `socks` package's message ("Socks5 proxy rejected connection - NotAllowed", …) for a person. */
function refusal(message: string): Socks5Error {
  const rejected = / - (\w+)$/.exec(message);
  const reply = rejected ? REPLIES[rejected[1]] : undefined;
  if (reply) return new Socks5Error(`the proxy refused: ${reply[1]}`, reply[0]);
  if (/no accepted authentication type|unknown authentication type/.test(message))
    return new Socks5Error('the proxy does not accept SOCKS5 without authentication');
  if (/timed out/i.test(message)) return new Socks5Error('the proxy did not answer in time');
  if (/Socket closed/.test(message)) return new Socks5Error('the proxy closed the connection');
  return new Socks5Error(`invalid reply from the proxy (${message})`);
}
