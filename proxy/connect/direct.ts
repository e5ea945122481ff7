// The direct exit: resolve (unless the ACL already did), then Happy Eyeballs
// (RFC 8305) over the addresses, first connected socket wins.
//
// DNS-rebinding safety: when the pipeline passes `addresses` (the ones the ACL saw as
// dst.ip), we connect to those and only those, never resolving the name again.
import net from 'node:net';
import { formatHostPort } from '../../common/host-port.js';
import { addDeadline } from '../deadlines.js';
import { abortError, watchAbort } from '../net/abort.js';
import { happyEyeballsOrder } from '../net/address-order.js';
import { relaySocket } from '../net/fast-read.js';
import { canonicalIp } from '../net/ip.js';
import type { Resolver } from '../net/resolver.js';
import { ConnectError, type Target } from '../types.js';

/** RFC 8305 "Connection Attempt Delay": the next address is tried after this, or as soon as the previous attempt fails. */
export const CONNECTION_ATTEMPT_DELAY_MS = 250;

export interface DirectConnectorOptions {
  resolver: Resolver;
  /** Per attempt (config `connect-timeout`). */
  connectTimeoutMs: number;
  /** Source address for outbound connections (config `outgoing-address`). */
  outgoingAddress?: string;
  tcpNoDelay: boolean;
  /**
   * Sockets made with `allowHalfOpen`: a FIN from the peer ends only its direction.
   * For exits a relay will own: a server that half-closes before the relay starts
   * (a banner then FIN, while the client's reply is still on its way) must still get
   * the client's bytes. Node reads the flag when the FIN arrives, so the relay setting
   * it later is too late for a FIN read earlier. Off for backends, whose handshake
   * code expects a peer's FIN to close the socket.
   */
  halfOpen?: boolean;
}

export interface DirectConnectOptions {
  /** Overall abort (client gone, pipeline deadline): every attempt is destroyed. */
  signal?: AbortSignal;
  /** Already-resolved addresses the ACL checked: connect only to these. */
  addresses?: string[];
}

export interface DirectConnector {
  connect(target: Target, opts?: DirectConnectOptions): Promise<net.Socket>;
}

export function createDirectConnector(options: DirectConnectorOptions): DirectConnector {
  const { resolver, connectTimeoutMs, tcpNoDelay } = options;
  const allowHalfOpen = options.halfOpen === true;
  if (!(connectTimeoutMs > 0))
    throw new TypeError('connect timeout must be a positive number of milliseconds');
  let localAddress: string | undefined;
  if (options.outgoingAddress !== undefined) {
    const canonical = canonicalIp(options.outgoingAddress, 'keep');
    if (canonical === null)
      throw new TypeError(`outgoing-address "${options.outgoingAddress}" is not an IP address`);
    localAddress = canonical;
  }
  const localFamily = localAddress === undefined ? 0 : net.isIP(localAddress);

  const lookup = async (target: Target, signal: AbortSignal | undefined) => {
    try {
      return await resolver.lookup(target.host, signal);
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      throw new ConnectError(
        'dns',
        `cannot resolve ${target.host}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };

  /** After the addresses are known: the order, the source family, the attempts. */
  const attempt = (target: Target, label: string, found: string[], signal?: AbortSignal) => {
    let addresses = happyEyeballsOrder(found);
    if (localFamily !== 0) {
      // A socket bound to an IPv4 source cannot reach an IPv6 destination, and vice versa.
      addresses = addresses.filter((a) => net.isIP(a) === localFamily);
      if (addresses.length === 0) {
        throw new ConnectError(
          'unreachable',
          `${label} has no IPv${localFamily} address (outgoing-address is ${localAddress})`,
        );
      }
    }
    return race(addresses, target, label, {
      connectTimeoutMs,
      localAddress,
      tcpNoDelay,
      allowHalfOpen,
      signal,
    });
  };

  return {
    // Not async: an IP literal or addresses the ACL checked (the common cases) start
    // connecting in this very call, without a round of promise resolutions first.
    connect(target, opts = {}) {
      const { signal } = opts;
      const label = formatHostPort(target);
      try {
        if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
          throw new ConnectError('internal', `invalid destination port in ${label}`);
        }
        if (signal?.aborted) throw abortError(signal, `connect to ${label}`);
        if (opts.addresses !== undefined) {
          const addresses = opts.addresses
            .map((a) => canonicalIp(a, 'keep'))
            .filter((a): a is string => a !== null);
          if (addresses.length === 0)
            throw new ConnectError('dns', `no address to connect to for ${label}`);
          return attempt(target, label, addresses, signal);
        }
        const literal = canonicalIp(target.host, 'keep');
        if (literal !== null) return attempt(target, label, [literal], signal);
      } catch (err) {
        return Promise.reject(err);
      }
      return lookup(target, signal).then((found) => attempt(target, label, found, signal));
    },
  };
}

interface RaceOptions {
  connectTimeoutMs: number;
  localAddress: string | undefined;
  tcpNoDelay: boolean;
  allowHalfOpen: boolean;
  signal: AbortSignal | undefined;
}

/** Staggered connection attempts; resolves with the first connected socket, destroys the others. */
function race(
  addresses: string[],
  target: Target,
  label: string,
  o: RaceOptions,
): Promise<net.Socket> {
  const literal = canonicalIp(target.host, 'keep');
  return new Promise((resolve, reject) => {
    const attempts = new Map<net.Socket, { cancelDeadline: () => void; cleanup: () => void }>();
    const failures: ConnectError[] = [];
    let next = 0;
    let stagger: NodeJS.Timeout | undefined;
    let settled = false;

    // Shared watchers and deadlines (abort.ts, deadlines.ts): no listener and no timer of
    // its own per attempt.
    const unwatch = o.signal
      ? watchAbort(o.signal, () =>
          settle(abortError(o.signal as AbortSignal, `connect to ${label}`)),
        )
      : undefined;

    function settle(err: ConnectError | null, winner?: net.Socket) {
      if (settled) return;
      settled = true;
      clearTimeout(stagger);
      unwatch?.();
      for (const [sock, a] of attempts) {
        a.cancelDeadline();
        a.cleanup();
        if (sock !== winner) discard(sock);
      }
      attempts.clear();
      if (winner) resolve(winner);
      else reject(err);
    }

    function failed(sock: net.Socket, err: ConnectError) {
      const a = attempts.get(sock);
      if (!a || settled) return;
      a.cancelDeadline();
      a.cleanup();
      attempts.delete(sock);
      discard(sock);
      failures.push(err);
      if (next < addresses.length) startNext();
      else if (attempts.size === 0) settle(mostTelling(failures, addresses.length));
    }

    function startNext() {
      clearTimeout(stagger);
      const address = addresses[next++];
      const where = address === literal ? label : `${label} via ${address}`;
      let sock: net.Socket;
      try {
        // relaySocket: the relay can then read it into one reused buffer (net/fast-read.ts).
        sock = relaySocket({ allowHalfOpen: o.allowHalfOpen }).connect({
          host: address,
          port: target.port,
          localAddress: o.localAddress,
        });
      } catch (err) {
        failures.push(classify(err, where));
        if (next < addresses.length) startNext();
        else if (attempts.size === 0) settle(mostTelling(failures, addresses.length));
        return;
      }
      const onConnect = () => {
        sock.setNoDelay(o.tcpNoDelay);
        connectedTo.set(sock, address);
        settle(null, sock);
      };
      const onError = (err: Error) => failed(sock, classify(err, where));
      sock.once('connect', onConnect);
      sock.on('error', onError);
      const cancelDeadline = addDeadline(o.connectTimeoutMs, () =>
        failed(
          sock,
          new ConnectError(
            'timeout',
            `connect to ${where} timed out after ${o.connectTimeoutMs} ms`,
          ),
        ),
      );
      attempts.set(sock, {
        cancelDeadline,
        cleanup: () => {
          sock.removeListener('connect', onConnect);
          sock.removeListener('error', onError);
        },
      });
      if (next < addresses.length) stagger = setTimeout(startNext, CONNECTION_ATTEMPT_DELAY_MS);
    }

    startNext();
  });
}

const connectedTo = new WeakMap<net.Socket, string>();

/**
 * The address a socket from this connector was connected to (canonical form, as the
 * ACL saw it for dst.ip), without asking the kernel (getpeername) on every connection.
 */
export function connectedAddress(sock: net.Socket): string | undefined {
  return connectedTo.get(sock) ?? sock.remoteAddress;
}

/** A losing or failed attempt: a late error event must not become an uncaught exception. */
function discard(sock: net.Socket): void {
  sock.on('error', () => {});
  sock.destroy();
}

function classify(err: unknown, where: string): ConnectError {
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return new ConnectError('refused', `connect to ${where}: connection refused`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
      return new ConnectError(
        'unreachable',
        `connect to ${where}: ${code === 'ENETUNREACH' || code === 'ENETDOWN' ? 'network' : 'host'} unreachable (${code})`,
      );
    case 'ETIMEDOUT':
      return new ConnectError('timeout', `connect to ${where}: timed out (${code})`);
    case 'EADDRNOTAVAIL':
      return new ConnectError(
        'internal',
        `connect to ${where}: source address not available (${code}; check outgoing-address)`,
      );
    default:
      return new ConnectError(
        'internal',
        `connect to ${where}: ${err instanceof Error ? err.message : String(err)}`,
      );
  }
}

/** With every attempt failed, report the most informative failure: refused > timeout > unreachable > other. */
function mostTelling(failures: ConnectError[], tried: number): ConnectError {
  const rank = { refused: 4, timeout: 3, unreachable: 2 } as Record<string, number>;
  const best = failures.reduce((a, b) => ((rank[b.reason] ?? 0) > (rank[a.reason] ?? 0) ? b : a));
  if (tried < 2) return best;
  return new ConnectError(best.reason, `${best.message} (${tried} addresses tried)`);
}
