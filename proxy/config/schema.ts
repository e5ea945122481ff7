// The configuration schema (docs/configuration.md): every key, its type, its default. Strict:
// an unknown key is an error, because in a security product a typo must never be
// silently ignored. Each leaf validator words its own message in TOML terms; rules
// that tie several keys together are in rules.ts.
import { isIP } from 'node:net';
import { z } from 'zod';
import { isHostname, parseHostPort } from '../../common/host-port.js';
import { type PacEntry, parsePacEntry } from '../../common/pac.js';
import { parseDuration } from './durations.js';
import type { AuditSink, BackendType, HostPort, LogLevel } from './types.js';

/** A value, or an error message (with `at`, the index of the offending array element). */
type Result<T> = { value: T } | { error: string; at?: number };

/** How a TOML value is called in messages: `a string ("x")`, `an integer (5)`, … */
export function describeValue(v: unknown): string {
  if (typeof v === 'string')
    return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
  if (typeof v === 'number') return Number.isInteger(v) ? `an integer (${v})` : `a float (${v})`;
  if (typeof v === 'bigint') return `an integer (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date/time';
  if (v !== null && typeof v === 'object') return 'a table';
  return 'nothing';
}

/** A leaf whose validator returns its own message; no zod wording reaches the user. */
function leaf<T>(check: (v: unknown) => Result<T>) {
  return z.unknown().transform((v, ctx): T => {
    const r = check(v);
    if ('error' in r) {
      const path = r.at === undefined ? [] : [r.at];
      ctx.issues.push({ code: 'custom', message: r.error, input: v, path });
      return z.NEVER;
    }
    return r.value;
  });
}

const bool = () =>
  leaf<boolean>((v) =>
    typeof v === 'boolean'
      ? { value: v }
      : { error: `expected true or false, got ${describeValue(v)}` },
  );

const text = (what = 'a string') =>
  leaf<string>((v) => {
    if (typeof v !== 'string') return { error: `expected ${what}, got ${describeValue(v)}` };
    if (v.trim() === '') return { error: 'must not be empty' };
    return { value: v };
  });

const stringList = (what: string) =>
  leaf<string[]>((v) => {
    if (!Array.isArray(v))
      return { error: `expected an array of ${what}, got ${describeValue(v)}` };
    const bad = v.findIndex((x) => typeof x !== 'string' || x === '');
    if (bad >= 0)
      return { error: `expected a non-empty string, got ${describeValue(v[bad])}`, at: bad };
    return { value: v as string[] };
  });

const duration = (allowZero = false) =>
  leaf<number>((v) => {
    const r = parseDuration(v, allowZero);
    return typeof r === 'number' ? { value: r } : r;
  });

const integer = (min: number, max: number) =>
  leaf<number>((v) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      return { error: `expected an integer, got ${describeValue(v)}` };
    }
    if (v < min || v > max) return { error: `must be between ${min} and ${max}, got ${v}` };
    return { value: v };
  });

/** A file path, resolved later against the configuration file's folder (or $HOME for `~/`). */
const path = () =>
  leaf<string>((v) => {
    if (typeof v !== 'string')
      return { error: `expected a file path (a string), got ${describeValue(v)}` };
    if (v === '') return { error: 'must not be empty' };
    if (v.includes('\0')) return { error: 'a path cannot contain a NUL character' };
    if (/^~[^/]/.test(v))
      return { error: `"${v}": only "~/" (the current user's home) is supported` };
    return { value: v };
  });

const hostPort = () =>
  leaf<HostPort>((v) => {
    if (typeof v !== 'string') return { error: `expected "HOST:PORT", got ${describeValue(v)}` };
    const r = parseHostPort(v);
    return 'error' in r ? r : { value: r };
  });

const ipAddress = () =>
  leaf<string>((v) => {
    if (typeof v !== 'string') return { error: `expected an IP address, got ${describeValue(v)}` };
    if (isIP(v) === 0) return { error: `"${v}" is not an IP address (IPv6 without brackets)` };
    return { value: v };
  });

function oneOf<T extends string>(values: readonly T[]) {
  const list = values.map((x) => `"${x}"`).join(', ');
  return leaf<T>((v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v)
      ? { value: v as T }
      : { error: `expected one of ${list}, got ${describeValue(v)}` },
  );
}

const auditSink = () =>
  leaf<AuditSink>((v) => {
    const expected = 'expected "journald", "stdout" or "file:PATH"';
    if (typeof v !== 'string') return { error: `${expected}, got ${describeValue(v)}` };
    if (v === 'journald' || v === 'stdout') return { value: { kind: v } };
    if (v.startsWith('file:')) {
      const p = v.slice(5);
      if (p === '')
        return { error: '"file:" needs a path, e.g. "file:/var/log/portail/audit.jsonl"' };
      if (p.includes('\0')) return { error: 'a path cannot contain a NUL character' };
      if (/^~[^/]/.test(p))
        return { error: `"${p}": only "~/" (the current user's home) is supported` };
      return { value: { kind: 'file', path: p } };
    }
    return { error: `${expected}, got ${describeValue(v)}` };
  });

const serverName = () =>
  leaf<string>((v) => {
    if (typeof v !== 'string') return { error: `expected a host name, got ${describeValue(v)}` };
    if (!isHostname(v) && isIP(v) === 0) return { error: `"${v}" is not a valid host name` };
    return { value: v };
  });

/** A DNS resolver: an IP address, optionally with a port ("1.1.1.1", "::1", "[::1]:53", "1.1.1.1:53"). */
function isResolverAddress(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const hp = parseHostPort(text);
  return !('error' in hp) && isIP(hp.host) !== 0;
}

const resolvers = () =>
  leaf<string[]>((v) => {
    if (!Array.isArray(v))
      return { error: `expected an array of IP addresses, got ${describeValue(v)}` };
    for (const [i, x] of v.entries()) {
      if (typeof x !== 'string' || !isResolverAddress(x)) {
        return {
          error: `expected an IP address, optionally with a port ("192.0.2.53", "192.0.2.53:53", "[2001:db8::53]:53"), got ${describeValue(x)}`,
          at: i,
        };
      }
    }
    return { value: v as string[] };
  });

export const BACKEND_TYPES: readonly BackendType[] = ['socks5', 'http', 'ssh'];
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export const backendSchema = z.strictObject({
  type: oneOf(BACKEND_TYPES).optional(),
  'target-address': hostPort().optional(),
  dynamic: bool().default(false),
  'identity-aware': bool().default(false),
  'tls-server-name': serverName().optional(),
  http2: bool().optional(),
  user: text('a user name').optional(),
  'identity-file': path().optional(),
  agent: bool().default(false),
  'known-hosts': path().optional(),
});

export const dnsSchema = z.strictObject({
  resolvers: resolvers().default([]),
  timeout: duration().default(5000),
});

export const listenerSchema = z.strictObject({
  'cacert-file': path().optional(),
  'tls-privkey': path().optional(),
  'tls-chain': path().optional(),
  'proxy-protocol': bool().default(false),
  'require-tls': bool().default(false),
});

export const escaperSchema = z.strictObject({
  'cacert-file': path().optional(),
  'tls-privkey': path().optional(),
  'tls-certificate': path().optional(),
  'pkcs11-uri': text('a PKCS#11 URI').optional(),
  'pkcs11-module': path().optional(),
});

export const rpcSchema = z.strictObject({
  'admin-groups': stringList('group names').default([]),
  'trusted-groups': stringList('group names').default([]),
});

export const logSchema = z.strictObject({
  audit: auditSink().optional(),
  level: oneOf(LOG_LEVELS).default('info'),
});

export const metricsSchema = z.strictObject({
  listen: hostPort().optional(),
});

const pacList = () =>
  leaf<PacEntry[]>((v) => {
    if (!Array.isArray(v))
      return { error: `expected an array of host patterns and networks, got ${describeValue(v)}` };
    const out: PacEntry[] = [];
    for (const [i, x] of v.entries()) {
      if (typeof x !== 'string' || x === '')
        return { error: `expected a non-empty string, got ${describeValue(x)}`, at: i };
      const e = parsePacEntry(x);
      if ('error' in e) return { error: e.error, at: i };
      out.push(e);
    }
    return { value: out };
  });

export const pacSchema = z.strictObject({
  direct: pacList().default([]),
});

export const geoipSchema = z.strictObject({
  database: path().optional(),
});

export const configSchema = z.strictObject({
  'filter-acl-rules-path': path().optional(),
  'explain-acl-rules-path': path().optional(),
  'handshake-timeout': duration().default(15_000),
  'connect-timeout': duration().default(5_000),
  'idle-timeout': duration(true).default(3_600_000),
  'tcp-nodelay': bool().default(false),
  'max-connections': integer(1, 1_000_000).default(4096),
  'default-backend': text('a backend name').optional(),
  'fallback-to-direct': bool().default(true),
  'watch-acl': bool().default(true),
  'outgoing-address': ipAddress().optional(),
  // Upstream's key: the address advertised in SOCKS5 UDP ASSOCIATE replies.
  'public-address': ipAddress().optional(),
  dns: dnsSchema.prefault({}),
  listener: listenerSchema.prefault({}),
  escaper: escaperSchema.prefault({}),
  rpc: rpcSchema.prefault({}),
  log: logSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  pac: pacSchema.prefault({}),
  geoip: geoipSchema.prefault({}),
  backends: z.record(z.string(), backendSchema).default({}),
});

export type ParsedConfig = z.output<typeof configSchema>;
export type ParsedBackend = z.output<typeof backendSchema>;

const SECTIONS: Record<string, z.ZodObject> = {
  dns: dnsSchema,
  listener: listenerSchema,
  escaper: escaperSchema,
  rpc: rpcSchema,
  log: logSchema,
  metrics: metricsSchema,
  pac: pacSchema,
  geoip: geoipSchema,
};

/** The keys allowed in the table at `parent` (for "did you mean"), or none if unknown. */
export function knownKeys(parent: readonly PropertyKey[]): readonly string[] {
  if (parent.length === 0) return Object.keys(configSchema.shape);
  if (parent.length === 1 && typeof parent[0] === 'string' && Object.hasOwn(SECTIONS, parent[0])) {
    return Object.keys(SECTIONS[parent[0]].shape);
  }
  if (parent.length === 2 && parent[0] === 'backends') return Object.keys(backendSchema.shape);
  return [];
}
