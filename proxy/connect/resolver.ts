// Destination name resolution (config `[dns]`): the system resolver (getaddrinfo,
// honours /etc/hosts and NSS) when no server is configured, else c-ares against the
// configured servers. Every lookup is bounded by `timeoutMs` and abortable, and every
// failure is a ConnectError('dns', …) whose message says what went wrong.
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { ConnectError } from '../types.js';
import { abortError } from './abort.js';
import { canonicalIp, happyEyeballsOrder } from './address-order.js';

export interface Resolver {
  /**
   * All addresses of `host` (IPv6 and IPv4), canonical text form, ordered for Happy
   * Eyeballs. An IP literal is returned as is (canonicalised), without any query.
   */
  lookup(host: string, signal?: AbortSignal): Promise<string[]>;
}

export interface ResolverOptions {
  /** `HOST` or `HOST:PORT` (IPv6 in brackets when a port is given); empty = system resolver. */
  servers: string[];
  /** Upper bound of one lookup, all servers and both address families included. */
  timeoutMs: number;
}

/** Parses one `[dns] resolvers` entry into the form c-ares accepts; throws a TypeError naming it. */
export function parseDnsServer(entry: string): string {
  const text = entry.trim();
  let host = text;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2];
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    if (colon > 0 && !text.slice(0, colon).includes(':')) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  const family = isIP(host);
  if (family === 0) {
    throw new TypeError(
      `invalid DNS server "${entry}": expected an IP address, optionally with :PORT`,
    );
  }
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65535) {
      throw new TypeError(`invalid DNS server "${entry}": port must be 1-65535`);
    }
    return family === 6 ? `[${host}]:${n}` : `${host}:${n}`;
  }
  return family === 6 ? `[${host}]` : host;
}

export function createResolver(opts: ResolverOptions): Resolver {
  if (!(opts.timeoutMs > 0))
    throw new TypeError('DNS timeout must be a positive number of milliseconds');
  const servers = opts.servers.map(parseDnsServer);
  // Let c-ares refuse what it would refuse later (e.g. a zone id) at configuration time.
  if (servers.length > 0) new dnsPromises.Resolver().setServers(servers);
  const query = servers.length === 0 ? systemLookup : serverLookup(servers, opts.timeoutMs);
  return {
    async lookup(host, signal) {
      const literal = canonicalIp(host);
      if (literal !== null) return [literal];
      if (host === '' || host.length > 253)
        throw new ConnectError('dns', `invalid host name "${host}"`);
      if (signal?.aborted) throw abortError(signal, `lookup of ${host}`);
      const stop = new AbortController();
      const addresses = await bounded(
        query(host, stop.signal),
        host,
        opts.timeoutMs,
        signal,
      ).finally(() => stop.abort());
      const ordered = happyEyeballsOrder(
        addresses.map((a) => canonicalIp(a)).filter((a): a is string => a !== null),
      );
      if (ordered.length === 0) throw new ConnectError('dns', `no address for ${host}`);
      return ordered;
    },
  };
}

/** One lookup; `stop` fires when nobody waits for the answer any more. */
type Query = (host: string, stop: AbortSignal) => Promise<string[]>;

/** getaddrinfo through libuv's thread pool: cannot be cancelled, only stopped waiting for. */
async function systemLookup(host: string): Promise<string[]> {
  try {
    const found = await dnsPromises.lookup(host, { all: true, verbatim: true });
    return found.map((a) => a.address);
  } catch (err) {
    throw dnsError(host, err);
  }
}

/** c-ares against the configured servers: AAAA and A in parallel, IPv6 first (RFC 8305). */
function serverLookup(servers: string[], timeoutMs: number): Query {
  return async (host, stop) => {
    // RFC 6761: localhost is the loopback, never a question for the network.
    if (host === 'localhost' || host.endsWith('.localhost')) return ['::1', '127.0.0.1'];
    // One channel per lookup (about 20 µs) so that a lookup given up on is cancelled
    // alone. c-ares tries the servers in turn: share the budget among them.
    const resolver = new dnsPromises.Resolver({
      timeout: Math.max(100, Math.floor(timeoutMs / servers.length)),
      tries: 1,
    });
    resolver.setServers(servers);
    stop.addEventListener('abort', () => resolver.cancel(), { once: true });
    const [v6, v4] = await Promise.allSettled([resolver.resolve6(host), resolver.resolve4(host)]);
    const addresses = [
      ...(v6.status === 'fulfilled' ? v6.value : []),
      ...(v4.status === 'fulfilled' ? v4.value : []),
    ];
    if (addresses.length > 0) return addresses;
    const errors = [v6, v4].flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    errors.sort((a, b) => severity(b) - severity(a));
    throw errors.length > 0
      ? dnsError(host, errors[0])
      : new ConnectError('dns', `no address for ${host}`);
  };
}

/** Races the query against the timeout and the signal. */
function bounded(
  pending: Promise<string[]>,
  host: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new ConnectError('dns', `lookup of ${host} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => finish(abortError(signal as AbortSignal, `lookup of ${host}`));
    signal?.addEventListener('abort', onAbort, { once: true });
    let done = false;
    function finish(err: Error | null, value?: string[]) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value as string[]);
    }
    pending.then(
      (v) => finish(null, v),
      (e) => finish(e instanceof ConnectError ? e : dnsError(host, e)),
    );
  });
}

/** Which of two failures says more: a broken server beats "no such name" beats "no address". */
function severity(err: unknown): number {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENODATA') return 0;
  if (code === 'ENOTFOUND') return 1;
  return 2;
}

function dnsError(host: string, err: unknown): ConnectError {
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  const why: Record<string, string> = {
    ENOTFOUND: 'no such host',
    ENODATA: 'no address',
    EAI_NONAME: 'no such host',
    EAI_NODATA: 'no address',
    EAI_AGAIN: 'temporary failure in name resolution',
    ETIMEOUT: 'DNS server did not answer in time',
    ECONNREFUSED: 'DNS server refused the connection (nothing listening?)',
    ESERVFAIL: 'DNS server failure (SERVFAIL)',
    EREFUSED: 'DNS server refused the query',
    EFORMERR: 'DNS server rejected the query as malformed',
    EBADRESP: 'bad DNS response',
    EBADNAME: 'invalid host name',
    ECANCELLED: 'lookup cancelled',
  };
  const detail = why[code]
    ? `${why[code]} (${code})`
    : err instanceof Error
      ? err.message
      : String(err);
  return new ConnectError('dns', `cannot resolve ${host}: ${detail}`);
}
