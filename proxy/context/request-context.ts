// The request context the ACL evaluates (docs/acl.md, "Attributes"). Facts the front-end
// already knows cost nothing; attributes that need I/O (DNS for dst.ip, the socket table for
// client.uid/user/process.*) are fetched by prepare() only when a rule names them,
// concurrently, and a failed lookup is simply a missing attribute.

import { KNOWN_ATTRIBUTES } from '../../acl-lang/attributes.js';
import type { AclContext, AttrType, AttrValue } from '../../acl-lang/types.js';
import { canonicalIp } from '../net/ip.js';
import type { Resolver } from '../net/resolver.js';
import { ConnectError, type ProxyRequest } from '../types.js';
import { type GeoLookup, installedGeoDatabase } from './geoip.js';
import {
  isLoopback,
  type ProcessInfo,
  type SocketOwner,
  type SocketTable,
} from './socket-table.js';

/** What a request says of itself: the front-end's request without its answer callbacks. */
export type RequestFacts = Pick<
  ProxyRequest,
  'target' | 'protocol' | 'cmd' | 'client' | 'http' | 'cert'
>;

export interface ContextServices {
  resolver: Resolver;
  now(): Date;
  socketTable: SocketTable;
  /** IANA zone for time.*; absent = the process's local time. */
  timeZone?: string;
  /** `[geoip] database` for geo.country / dst.geo.country; absent = the one the daemon installed. */
  geo?: GeoLookup;
}

/** Attributes this provider computes; their types are the language's (KNOWN_ATTRIBUTES). */
const PROVIDED_NAMES = [
  'host',
  'port',
  'dst.ip',
  'proxy.protocol',
  'proxy.cmd',
  'method',
  'scheme',
  'path',
  'query',
  'client.ip',
  'client.port',
  'client.auth',
  'client.uid',
  'client.user',
  'client.process.exe',
  'client.process.name',
  'client.cert.subject.cn',
  'client.cert.san',
  'client.cert.fingerprint',
  'time.hour',
  'time.weekday',
];
export const PROVIDED_ATTRIBUTES: ReadonlyMap<string, AttrType> = new Map(
  PROVIDED_NAMES.map((n) => [n, KNOWN_ATTRIBUTES.get(n) as AttrType]),
);

const OWNER_ATTRS = ['client.uid', 'client.user', 'client.process.exe', 'client.process.name'];
const PROCESS_ATTRS = ['client.process.exe', 'client.process.name'];
const TIME_ATTRS = ['time.hour', 'time.weekday'];

const NOTHING_COMPUTED: Readonly<Record<string, AttrValue>> = Object.freeze({});

export class RequestContext implements AclContext {
  /** Attributes fetched by prepare() (or the clock), in the order they were computed;
   * created on first use (most requests need none). */
  private computed: Map<string, AttrValue> | undefined;
  /** client.ip in canonical form; dst.ip when the host is an IP literal. */
  private readonly clientIp: string | undefined;
  private readonly literalDst: string | undefined;
  private san: string[] | undefined;
  private dns?: Promise<void>;
  private ownerLookup?: Promise<SocketOwner | undefined>;
  private processLookup?: Promise<void>;
  private userLookup?: Promise<void>;
  private addresses?: string[];
  private dnsFailure?: ConnectError;
  private clockFailed = false;

  constructor(
    private readonly request: RequestFacts,
    private readonly services: ContextServices,
  ) {
    this.clientIp = canonicalIp(request.client.ip, 'keep') ?? undefined;
    // An IP literal is its own dst.ip: no DNS, nothing to rebind.
    const literal = canonicalIp(request.target.host, 'keep');
    if (literal !== null) {
      this.literalDst = literal;
      this.addresses = [literal];
    }
  }

  /**
   * Attributes known without I/O, read from the request when asked (every request
   * has a context: building a table of them up front would cost each one).
   */
  private fact(name: string): AttrValue | undefined {
    const { target, protocol, cmd, client, http, cert } = this.request;
    switch (name) {
      case 'host':
        return target.host;
      case 'port':
        return target.port;
      case 'proxy.protocol':
        return protocol;
      case 'proxy.cmd':
        return cmd;
      // Only a plain forwarded request has these (docs/acl.md, "Attributes": missing otherwise).
      case 'method':
        return cmd === 'forward' ? http?.method : undefined;
      case 'scheme':
        return cmd === 'forward' ? http?.scheme : undefined;
      case 'path':
        return cmd === 'forward' ? http?.path : undefined;
      case 'query':
        return cmd === 'forward' ? http?.query : undefined;
      case 'client.ip':
        return this.clientIp;
      case 'client.port':
        return client.port;
      case 'client.auth':
        return client.auth;
      case 'client.cert.subject.cn':
        return cert?.subjectCn;
      case 'client.cert.san':
        if (cert?.san === undefined) return undefined;
        this.san ??= [...cert.san];
        return this.san;
      case 'client.cert.fingerprint':
        return cert?.fingerprint;
      case 'dst.ip':
        return this.literalDst;
      default:
        return undefined;
    }
  }

  /**
   * Resolves, concurrently, the I/O-backed attributes among `names`; the others cost
   * nothing. Idempotent and safe to call again with more names. Never throws or
   * rejects; undefined when there is nothing to wait for.
   */
  prepare(names: ReadonlySet<string>, signal?: AbortSignal): Promise<void> | undefined {
    const work: Promise<unknown>[] = [];
    if (names.has('dst.ip') && this.literalDst === undefined) {
      this.dns ??= this.resolve(signal);
      work.push(this.dns);
    }
    const wantsOwner = OWNER_ATTRS.some((n) => names.has(n));
    if (wantsOwner && isLoopback(this.request.client.ip)) {
      if (names.has('client.user')) {
        this.userLookup ??= this.lookupUser();
        work.push(this.userLookup);
      }
      if (PROCESS_ATTRS.some((n) => names.has(n))) {
        this.processLookup ??= this.lookupProcess();
        work.push(this.processLookup);
      }
      work.push(this.owner());
    }
    if (TIME_ATTRS.some((n) => names.has(n))) this.clock();
    // geo.*: an in-memory lookup, but only for rules that name them.
    if (names.has('geo.country')) this.geoLookup('geo.country', this.clientIp);
    if (names.has('dst.geo.country')) {
      if (this.literalDst !== undefined) this.geoLookup('dst.geo.country', this.literalDst);
      else {
        this.dns ??= this.resolve(signal);
        work.push(
          this.dns.then(() => this.geoLookup('dst.geo.country', this.computed?.get('dst.ip'))),
        );
      }
    }
    // Nothing to wait for (the common case): no promise, no turn of the event loop.
    if (work.length === 0) return undefined;
    return Promise.all(work.map((p) => p.catch(() => undefined))).then(() => undefined);
  }

  /** Country of `ip` from the GeoIP database; missing when there is none or it does not know. */
  private geoLookup(name: string, ip: AttrValue | undefined): void {
    if (this.computed?.has(name) || typeof ip !== 'string') return;
    const geo = this.services.geo ?? installedGeoDatabase();
    const code = geo?.country(ip);
    if (code !== undefined) this.remember(name, code);
  }

  get(name: string): AttrValue | undefined {
    const fact = this.fact(name);
    if (fact !== undefined) return fact;
    if (name === 'time.hour' || name === 'time.weekday') this.clock();
    return this.computed?.get(name);
  }

  /** Addresses resolved for dst.ip (to be passed to the connector), if any. */
  get resolvedAddresses(): string[] | undefined {
    return this.addresses ? [...this.addresses] : undefined;
  }

  /** Why dst.ip is missing, when DNS failed during prepare() (for the wire answer and the audit). */
  get dnsError(): ConnectError | undefined {
    return this.dnsFailure;
  }

  private remember(name: string, value: AttrValue): void {
    this.computed ??= new Map();
    this.computed.set(name, value);
  }

  /**
   * Only what was computed by I/O or the clock (dst.ip of a name, client.uid, time.*…),
   * as plain data: what an open relay keeps for its re-evaluation on reload, where the
   * rest is read again from the request's facts. Most requests compute nothing: then a
   * shared, frozen empty record (no allocation per relay).
   */
  computedValues(): Readonly<Record<string, AttrValue>> {
    if (this.computed === undefined || this.computed.size === 0) return NOTHING_COMPUTED;
    const out: Record<string, AttrValue> = {};
    for (const [k, v] of this.computed) out[k] = Array.isArray(v) ? [...v] : v;
    return out;
  }

  /**
   * A context replaying recorded values (computedValues(), or a whole record handed
   * over by an earlier version): re-evaluation of a live relay on reload. With
   * `clock`, time.* are taken from it (the rules apply at the time of the reload),
   * otherwise from the values.
   */
  static fromSnapshot(
    values: Record<string, AttrValue>,
    clock?: { now(): Date; timeZone?: string },
  ): AclContext {
    const frozen = new Map<string, AttrValue>(Object.entries(values));
    let time: { hour: number; weekday: string } | null | undefined;
    return {
      get(name) {
        if (clock && (name === 'time.hour' || name === 'time.weekday')) {
          time ??= localTime(clock.now(), clock.timeZone);
          if (time === null) return undefined;
          return name === 'time.hour' ? time.hour : time.weekday;
        }
        return frozen.get(name);
      },
    };
  }

  /**
   * A view of this context in which dst.ip is `ip`: lets the pipeline check each
   * resolved address against the ACL (the ACL itself only sees the first one) and
   * pass the connector only those that are allowed.
   */
  withDstIp(ip: string): AclContext {
    const canonical = canonicalIp(ip, 'keep') ?? ip;
    return { get: (name) => (name === 'dst.ip' ? canonical : this.get(name)) };
  }

  // ---------------------------------------------------------------------------

  private async resolve(signal?: AbortSignal): Promise<void> {
    try {
      const all = await this.services.resolver.lookup(this.request.target.host, signal);
      if (all.length === 0) return;
      this.addresses = all;
      this.remember('dst.ip', all[0]);
    } catch (err) {
      this.dnsFailure =
        err instanceof ConnectError
          ? err
          : new ConnectError('dns', `cannot resolve ${this.request.target.host}`);
    }
  }

  private owner(): Promise<SocketOwner | undefined> {
    this.ownerLookup ??= (async () => {
      const { client } = this.request;
      const found = await this.services.socketTable.owner({
        ip: client.ip,
        port: client.port,
        localIp: client.localIp,
        localPort: client.localPort,
      });
      if (found) this.remember('client.uid', found.uid);
      return found;
    })().catch(() => undefined);
    return this.ownerLookup;
  }

  private async lookupUser(): Promise<void> {
    const owner = await this.owner();
    if (!owner) return;
    const name = await this.services.socketTable.userName(owner.uid);
    if (name !== undefined) this.remember('client.user', name);
  }

  private async lookupProcess(): Promise<void> {
    const owner = await this.owner();
    if (!owner) return;
    const p: ProcessInfo | undefined = await this.services.socketTable.process(
      owner.inode,
      owner.uid,
    );
    if (p?.exe !== undefined) this.remember('client.process.exe', p.exe);
    if (p?.name !== undefined) this.remember('client.process.name', p.name);
  }

  /** The clock is read once per request, so that time.hour and time.weekday agree. */
  private clock(): void {
    if (this.computed?.has('time.hour') || this.clockFailed) return;
    const t = localTime(this.services.now(), this.services.timeZone);
    if (t === null) {
      this.clockFailed = true;
      return;
    }
    this.remember('time.hour', t.hour);
    this.remember('time.weekday', t.weekday);
  }
}

const WEEKDAYS: Record<string, string> = {
  Mon: 'mon',
  Tue: 'tue',
  Wed: 'wed',
  Thu: 'thu',
  Fri: 'fri',
  Sat: 'sat',
  Sun: 'sun',
};
const BY_DAY_NUMBER = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const formats = new Map<string, Intl.DateTimeFormat | null>();

/** Hour (0-23) and weekday in `timeZone` (or local time); null for an unknown zone or an invalid date. */
export function localTime(date: Date, timeZone?: string): { hour: number; weekday: string } | null {
  if (Number.isNaN(date.getTime())) return null;
  if (timeZone === undefined) {
    return { hour: date.getHours(), weekday: BY_DAY_NUMBER[date.getDay()] };
  }
  let fmt = formats.get(timeZone);
  if (fmt === undefined) {
    try {
      fmt = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        hour: 'numeric',
        weekday: 'short',
      });
    } catch {
      fmt = null; // RangeError: unknown time zone
    }
    formats.set(timeZone, fmt);
  }
  if (fmt === null) return null;
  let hour: number | undefined;
  let weekday: string | undefined;
  for (const part of fmt.formatToParts(date)) {
    if (part.type === 'hour') hour = Number(part.value) % 24;
    else if (part.type === 'weekday') weekday = WEEKDAYS[part.value];
  }
  return hour === undefined || weekday === undefined ? null : { hour, weekday };
}

/** True when `timeZone` is an IANA zone this runtime knows (for the config loader). */
export function isValidTimeZone(timeZone: string): boolean {
  return localTime(new Date(0), timeZone) !== null;
}
