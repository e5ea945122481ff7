// Destination name resolution (config `[dns]`, docs/security.md "Name resolution"):
// c-ares against the configured servers, or against the system's (/etc/resolv.conf,
// after /etc/hosts) when none is configured — never getaddrinfo, whose calls cannot be
// cancelled and queue up on libuv's small thread pool (docs/DECISIONS.md). Every lookup
// is bounded by `timeoutMs`, queued or running; concurrent lookups of one name share
// one query, cancelled when its last waiter leaves; answers are cached for their TTL;
// what does not fit the queue is refused at once. Every failure is a
// ConnectError('dns', …) whose message says what went wrong.
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { formatHostPort, parseHostPort } from '../../common/host-port.js';
import { ConnectError } from '../types.js';
import { abortError, watchAbort } from './abort.js';
import { happyEyeballsOrder } from './address-order.js';
import { DnsCache } from './dns-cache.js';
import { canonicalIp } from './ip.js';
import { type SystemDns, type SystemDnsPaths, searchNames, systemDnsReader } from './system-dns.js';

export interface Resolver {
  /**
   * All addresses of `host` (IPv6 and IPv4), canonical text form, ordered for Happy
   * Eyeballs. An IP literal is returned as is (canonicalised), without any query.
   */
  lookup(host: string, signal?: AbortSignal): Promise<string[]>;
}

/** What createResolver makes: a resolver with its counters. */
export interface CountedResolver extends Resolver {
  /** Counters since creation, and the current queue (metrics, tests). */
  readonly stats: ResolverStats;
}

export interface ResolverStats {
  /** Names asked for (IP literals not counted). */
  lookups: number;
  /** Answered from the cache: addresses, and "no such name" / "no address". */
  cacheHits: number;
  negativeHits: number;
  /** Joined a query already under way for the same name. */
  coalesced: number;
  /** Queries sent (one per distinct name not cached). */
  queries: number;
  /** Refused at once: the queue was full. */
  refused: number;
  /** Queries cancelled because every waiter left (aborted) before the answer. */
  cancelled: number;
  /** Queries that reached the timeout (queued or running). */
  timedOut: number;
  /** Now: queries running, and waiting for a place to run. */
  running: number;
  waiting: number;
  /** Now: cached answers. */
  cached: number;
}

/** The limits (docs/security.md "Name resolution"); tests use smaller ones. */
export interface ResolverLimits {
  /** Queries (distinct names) running at once. */
  maxRunning: number;
  /** Queries waiting for a place; beyond: refused at once. */
  maxWaiting: number;
  /** Cached answers (least recently used dropped first). */
  cacheEntries: number;
  /** Upper bound of a positive answer's TTL in the cache. */
  maxTtlMs: number;
  /** How long "no such name" / "no address" is cached. */
  negativeTtlMs: number;
}

export const DEFAULT_LIMITS: Readonly<ResolverLimits> = Object.freeze({
  maxRunning: 256,
  maxWaiting: 1024,
  cacheEntries: 10_000,
  maxTtlMs: 300_000,
  negativeTtlMs: 10_000,
});

export interface ResolverOptions {
  /** `HOST` or `HOST:PORT` (IPv6 in brackets when a port is given); empty = the system's servers. */
  servers: string[];
  /** Upper bound of one lookup, time waiting in the queue, all servers and both address families included. */
  timeoutMs: number;
  limits?: Partial<ResolverLimits>;
  /** Where the system's configuration is read (default /etc/resolv.conf, /etc/hosts). */
  system?: SystemDnsPaths;
}

/** Parses one `[dns] resolvers` entry into the form c-ares accepts; throws a TypeError naming it. */
export function parseDnsServer(entry: string): string {
  const hp = parseHostPort(entry.trim(), { portOptional: true, host: 'any' });
  const family = 'error' in hp ? 0 : isIP(hp.host);
  if ('error' in hp || family === 0) {
    throw new TypeError(
      `invalid DNS server "${entry}": expected an IP address, optionally with :PORT (1-65535)`,
    );
  }
  if (hp.port !== undefined) return formatHostPort({ host: hp.host, port: hp.port });
  return family === 6 ? `[${hp.host}]` : hp.host;
}

const LOOPBACK: readonly string[] = Object.freeze(['::1', '127.0.0.1']);

interface Waiter {
  resolve(addresses: string[]): void;
  reject(err: Error): void;
  unwatch?: () => void;
}

/** One query for one name, shared by every lookup of that name while it runs. */
interface Flight {
  key: string;
  host: string;
  waiters: Set<Waiter>;
  timer: NodeJS.Timeout;
  startedAt: number;
  channel?: InstanceType<typeof dnsPromises.Resolver>;
  done: boolean;
}

interface Answer {
  addresses: string[];
  /** Smallest TTL of the records, seconds. */
  ttl: number;
}

export function createResolver(opts: ResolverOptions): CountedResolver {
  if (!(opts.timeoutMs > 0))
    throw new TypeError('DNS timeout must be a positive number of milliseconds');
  const { timeoutMs } = opts;
  const limits: ResolverLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const configured = opts.servers.map(parseDnsServer);
  // Let c-ares refuse what it would refuse later (e.g. a zone id) at configuration time.
  if (configured.length > 0) new dnsPromises.Resolver().setServers(configured);
  const system = configured.length === 0 ? systemDnsReader(opts.system) : undefined;

  const cache = new DnsCache(limits.cacheEntries);
  const flights = new Map<string, Flight>();
  /** Flights waiting for a place, oldest first (a Set: a cancelled one leaves at once). */
  const waiting = new Set<Flight>();
  let running = 0;
  const counters = {
    lookups: 0,
    cacheHits: 0,
    negativeHits: 0,
    coalesced: 0,
    queries: 0,
    refused: 0,
    cancelled: 0,
    timedOut: 0,
  };

  /** Answers that need no query: RFC 6761 localhost, then /etc/hosts (system only). */
  function fixedAnswer(name: string, sys: SystemDns | undefined): readonly string[] | undefined {
    const bare = name.endsWith('.') ? name.slice(0, -1) : name;
    const listed = sys?.hosts.get(bare);
    if (listed !== undefined) return listed;
    if (bare === 'localhost' || bare.endsWith('.localhost')) return LOOPBACK;
    return undefined;
  }

  function finish(f: Flight, err: Error | null, answer?: Answer): void {
    if (f.done) return;
    f.done = true;
    clearTimeout(f.timer);
    flights.delete(f.key);
    if (!waiting.delete(f)) {
      running--;
      // Whatever is still outstanding on the channel (the other family, search names).
      f.channel?.cancel();
    }
    const now = performance.now();
    let addresses: string[] = [];
    if (answer !== undefined) {
      addresses = happyEyeballsOrder(
        answer.addresses.map((a) => canonicalIp(a, 'keep')).filter((a): a is string => a !== null),
      );
      if (addresses.length === 0) err = noAddress(f.host);
      else cache.setAddresses(f.key, addresses, Math.min(answer.ttl * 1000, limits.maxTtlMs), now);
    }
    if (err instanceof ConnectError && isNegative(err)) {
      cache.setError(f.key, err, limits.negativeTtlMs, now);
    }
    for (const w of f.waiters) {
      w.unwatch?.();
      if (err) w.reject(err);
      else w.resolve(addresses.slice());
    }
    f.waiters.clear();
    pump();
  }

  function pump(): void {
    while (running < limits.maxRunning && waiting.size > 0) {
      const next = waiting.values().next().value as Flight;
      waiting.delete(next);
      start(next);
    }
  }

  function start(f: Flight): void {
    running++;
    counters.queries++;
    const sys = system?.();
    const servers = sys?.servers ?? configured;
    const names = sys ? searchNames(f.host, sys) : [f.host.replace(/\.$/, '')];
    // One channel per query, so that one given up on is cancelled alone. c-ares tries
    // the servers in turn: what is left of the budget is shared among them.
    const left = timeoutMs - (performance.now() - f.startedAt);
    const channel = new dnsPromises.Resolver({
      timeout: Math.max(100, Math.floor(left / servers.length)),
      tries: 1,
    });
    channel.setServers(servers);
    f.channel = channel;
    query(channel, f.host, names, () => f.done).then(
      (answer) => finish(f, null, answer),
      (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ETIMEOUT' && !f.done) counters.timedOut++;
        finish(f, e instanceof ConnectError ? e : dnsError(f.host, e));
      },
    );
  }

  /** A waiter left (its signal fired): the query goes on only while someone waits. */
  function leave(f: Flight, w: Waiter, err: ConnectError): void {
    if (!f.waiters.delete(w)) return;
    w.reject(err);
    if (f.waiters.size === 0 && !f.done) {
      counters.cancelled++;
      finish(f, err);
    }
  }

  return {
    lookup(host, signal) {
      const literal = canonicalIp(host, 'keep');
      if (literal !== null) return Promise.resolve([literal]);
      const key = host.toLowerCase();
      if (!validName(key)) {
        return Promise.reject(new ConnectError('dns', `invalid host name ${JSON.stringify(host)}`));
      }
      counters.lookups++;
      const fixed = fixedAnswer(key, system?.());
      if (fixed !== undefined) return Promise.resolve(happyEyeballsOrder([...fixed]));
      const hit = cache.get(key, performance.now());
      if (hit !== undefined) {
        if (hit.addresses !== undefined) {
          counters.cacheHits++;
          return Promise.resolve(hit.addresses.slice());
        }
        counters.negativeHits++;
        const e = hit.error as ConnectError;
        return Promise.reject(new ConnectError(e.reason, e.message));
      }
      if (signal?.aborted) return Promise.reject(abortError(signal, `lookup of ${host}`));
      let f = flights.get(key);
      if (f !== undefined) counters.coalesced++;
      else {
        if (running >= limits.maxRunning && waiting.size >= limits.maxWaiting) {
          counters.refused++;
          return Promise.reject(
            new ConnectError(
              'dns',
              `resolver overloaded: ${running} lookups running and ${waiting.size} waiting; lookup of ${host} refused`,
            ),
          );
        }
        const flight: Flight = {
          key,
          host,
          waiters: new Set(),
          startedAt: performance.now(),
          done: false,
          timer: setTimeout(() => {
            counters.timedOut++;
            finish(
              flight,
              new ConnectError('dns', `lookup of ${host} timed out after ${timeoutMs} ms`),
            );
          }, timeoutMs),
        };
        f = flight;
        flights.set(key, f);
        if (running < limits.maxRunning) start(f);
        else waiting.add(f);
      }
      const joined = f;
      return new Promise<string[]>((resolve, reject) => {
        const w: Waiter = { resolve, reject };
        joined.waiters.add(w);
        // One listener per signal however many lookups watch it (abort.ts): the
        // pipeline's signal is shared by every request.
        if (signal !== undefined) {
          w.unwatch = watchAbort(signal, () =>
            leave(joined, w, abortError(signal, `lookup of ${host}`)),
          );
        }
      });
    },
    get stats(): ResolverStats {
      return { ...counters, running, waiting: waiting.size, cached: cache.size };
    },
  };
}

/** AAAA and A in parallel for each name to try (search list), IPv6 first (RFC 8305). */
async function query(
  channel: InstanceType<typeof dnsPromises.Resolver>,
  host: string,
  names: string[],
  stopped: () => boolean,
): Promise<Answer> {
  let last: unknown;
  for (const name of names) {
    const [v6, v4] = await Promise.allSettled([
      channel.resolve6(name, { ttl: true }),
      channel.resolve4(name, { ttl: true }),
    ]);
    if (stopped()) break;
    const records = [
      ...(v6.status === 'fulfilled' ? v6.value : []),
      ...(v4.status === 'fulfilled' ? v4.value : []),
    ];
    if (records.length > 0) {
      return {
        addresses: records.map((r) => r.address),
        ttl: Math.min(...records.map((r) => r.ttl)),
      };
    }
    const errors = [v6, v4].flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    errors.sort((a, b) => severity(b) - severity(a));
    last = errors[0];
    // A broken or silent server: the other names would not fare better.
    if (severity(last) > 1) break;
  }
  throw last === undefined ? noAddress(host) : last;
}

/** RFC 1035 lengths; printable ASCII without spaces (a query name, not a URL). */
function validName(name: string): boolean {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare === '' || bare.length > 253 || !/^[\x21-\x7e]+$/.test(bare)) return false;
  return bare.split('.').every((l) => l.length > 0 && l.length <= 63);
}

/** "No such name" and "no address": answers worth caching, unlike a server failure. */
const negatives = new WeakSet<ConnectError>();
function isNegative(err: ConnectError): boolean {
  return negatives.has(err);
}

function noAddress(host: string): ConnectError {
  const e = new ConnectError('dns', `no address for ${host}`);
  negatives.add(e);
  return e;
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
  const e = new ConnectError('dns', `cannot resolve ${host}: ${detail}`);
  if (code === 'ENOTFOUND' || code === 'ENODATA') negatives.add(e);
  return e;
}
