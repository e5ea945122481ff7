// SOCKS5 CONNECT through an upstream SOCKS5 server (dante, microsocks, `ssh -D`, a
// portail gateway), with the `socks` package over a stream we connected ourselves —
// plain TCP or TLS — so that timeouts, aborts and TLS are handled the same way for
// every backend type. Host names are passed to the upstream unresolved (socks5h):
// the upstream resolves them in its own network, which is the point of chaining.
import type { Duplex } from 'node:stream';
import { abortError } from '../net/abort.js';
import { ConnectError, type Target } from '../types.js';

/** The upstream's reply code (RFC 1928 6) as our own refusal reason. */
const REPLY_REASON: Record<string, ConnectError['reason']> = {
  NotAllowed: 'refused',
  NetworkUnreachable: 'unreachable',
  HostUnreachable: 'unreachable',
  ConnectionRefused: 'refused',
  TTLExpired: 'timeout',
};

/** True when the upstream itself answered (it is healthy; the destination failed). */
export function isUpstreamReply(err: ConnectError): boolean {
  return err.message.includes('rejected the request');
}

// Loaded on the first connection through a SOCKS5 backend, not by every daemon
// (docs/performance.md, "Footprint"); kept once loaded.
let socks: typeof import('socks') | undefined;

/**
 * The first load takes file reads, during which the connected stream may already fail
 * (a TLS alert from an upstream that refuses our certificate) or close: with nobody
 * listening yet, the SOCKS5 handshake would then wait for its timeout. What happens
 * meanwhile is kept and turned into this attempt's failure.
 */
async function loadSocks(stream: Duplex, proxy: string): Promise<void> {
  let failure: Error | undefined;
  let closed = false;
  const onError = (err: Error) => {
    failure ??= err;
  };
  const onClose = () => {
    closed = true;
  };
  stream.on('error', onError);
  stream.on('close', onClose);
  try {
    socks = await import('socks');
  } finally {
    stream.off('error', onError);
    stream.off('close', onClose);
  }
  if (failure !== undefined || closed || stream.destroyed) {
    stream.destroy();
    throw new ConnectError(
      'internal',
      `upstream SOCKS5 ${proxy}: ${failure?.message ?? 'the connection closed before the SOCKS5 handshake'}`,
    );
  }
}

export async function socks5Connect(
  stream: Duplex,
  target: Target,
  opts: { proxy: string; signal: AbortSignal; timeoutMs: number },
): Promise<Duplex> {
  const { proxy, signal } = opts;
  if (socks === undefined) await loadSocks(stream, proxy);
  const { SocksClient } = socks as typeof import('socks');
  if (signal.aborted) {
    stream.destroy();
    throw abortError(signal, `SOCKS5 through ${proxy}`);
  }
  const onAbort = () => stream.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const { socket } = await SocksClient.createConnection({
      // Only used for logging inside the package: the stream is already connected.
      proxy: { host: '0.0.0.0', port: 1, type: 5 },
      command: 'connect',
      destination: { host: target.host, port: target.port },
      existing_socket: stream,
      timeout: opts.timeoutMs,
    });
    return socket;
  } catch (err) {
    stream.destroy();
    if (signal.aborted) throw abortError(signal, `SOCKS5 through ${proxy}`);
    const msg = (err as Error).message;
    const m = / - (\w+)$/.exec(msg);
    if (m && msg.startsWith('Socks5 proxy rejected connection')) {
      const reason = REPLY_REASON[m[1]] ?? 'internal';
      throw new ConnectError(reason, `upstream SOCKS5 ${proxy} rejected the request: ${m[1]}`);
    }
    if (/timed out/i.test(msg)) {
      throw new ConnectError('timeout', `upstream SOCKS5 ${proxy}: handshake timed out`);
    }
    throw new ConnectError('internal', `upstream SOCKS5 ${proxy}: ${msg}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
