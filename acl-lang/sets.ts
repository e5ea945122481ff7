// Set representations for `in`, chosen by the attribute's type so that a
// million-entry list costs a hash lookup (docs/acl.md, "List files").
import ipaddr from 'ipaddr.js';
import { isNormalHost, normalizeHost } from './normalize.js';

/**
 * Hostname patterns: `name` exact, `.example.com` = example.com and every subdomain,
 * `*.example.com` = subdomains only.
 */
export class HostSet {
  /**
   * `store = false`: entries are validated, not kept (the set stays empty) — for a
   * syntax check, which never looks anything up: a million-entry list then costs no
   * hash table (docs/performance.md, "Footprint").
   */
  constructor(private readonly store = true) {}

  readonly exact = new Set<string>();
  readonly withApex = new Set<string>();
  readonly subOnly = new Set<string>();

  get size(): number {
    return this.exact.size + this.withApex.size + this.subOnly.size;
  }

  /** Adds one pattern; returns false when it is not a valid hostname pattern. */
  add(pattern: string): boolean {
    let p = pattern.trim();
    let bucket = this.exact;
    if (p.startsWith('*.')) {
      bucket = this.subOnly;
      p = p.slice(2);
    } else if (p.startsWith('.')) {
      bucket = this.withApex;
      p = p.slice(1);
    }
    // Lists are mostly normal names already: one test, the one normalizeHost would make.
    if (isNormalHost(p)) {
      if (this.store) bucket.add(p);
      return true;
    }
    if (p === '' || /[\s/*]/.test(p)) return false;
    const h = normalizeHost(p);
    if (h === null) return false;
    if (this.store) bucket.add(h);
    return true;
  }

  /** `host` must already be normalised. */
  has(host: string): boolean {
    if (this.exact.has(host) || this.withApex.has(host)) return true;
    if (this.withApex.size === 0 && this.subOnly.size === 0) return false;
    for (let i = host.indexOf('.'); i >= 0; i = host.indexOf('.', i + 1)) {
      const suffix = host.slice(i + 1);
      if (this.withApex.has(suffix) || this.subOnly.has(suffix)) return true;
    }
    return false;
  }
}

function maskedKey(bytes: number[], prefix: number): string {
  let key = '';
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    const b = bits === 0 ? 0 : bytes[i] & (0xff << (8 - bits)) & 0xff;
    key += b < 16 ? `0${b.toString(16)}` : b.toString(16);
  }
  return key;
}

/** Parses an IP, mapping IPv4-mapped IPv6 (::ffff:a.b.c.d) to IPv4. */
export function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    const a = ipaddr.parse(t);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (a as ipaddr.IPv6).toIPv4Address();
    }
    return a;
  } catch {
    return null;
  }
}

export interface CidrParts {
  v4: ReadonlyMap<number, Set<string>>;
  v6: ReadonlyMap<number, Set<string>>;
  size: number;
}

/**
 * CIDR set: one hash set per distinct prefix length, so a lookup costs one masked
 * hash lookup per prefix length present (at most 33 for IPv4, 129 for IPv6).
 */
export class CidrSet {
  private readonly v4 = new Map<number, Set<string>>();
  private readonly v6 = new Map<number, Set<string>>();
  size = 0;

  /** The prefix tables, as plain data (to rebuild the set in another thread). */
  toParts(): CidrParts {
    return { v4: this.v4, v6: this.v6, size: this.size };
  }

  static fromParts(parts: CidrParts): CidrSet {
    const set = new CidrSet();
    for (const [k, v] of parts.v4) set.v4.set(k, v);
    for (const [k, v] of parts.v6) set.v6.set(k, v);
    set.size = parts.size;
    return set;
  }

  add(entry: string): boolean {
    const t = entry.trim();
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    let prefix: number;
    if (t.includes('/')) {
      try {
        [addr, prefix] = ipaddr.parseCIDR(t);
      } catch {
        return false;
      }
      if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
        addr = (addr as ipaddr.IPv6).toIPv4Address();
        prefix -= 96;
      }
    } else {
      const a = parseIp(t);
      if (!a) return false;
      addr = a;
      prefix = a.kind() === 'ipv4' ? 32 : 128;
    }
    const table = addr.kind() === 'ipv4' ? this.v4 : this.v6;
    let set = table.get(prefix);
    if (!set) {
      set = new Set();
      table.set(prefix, set);
    }
    set.add(maskedKey(addr.toByteArray(), prefix));
    this.size++;
    return true;
  }

  hasText(ip: string): boolean {
    const a = parseIp(ip);
    return a ? this.has(a) : false;
  }

  has(addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    const table = addr.kind() === 'ipv4' ? this.v4 : this.v6;
    const bytes = addr.toByteArray();
    for (const [prefix, set] of table) {
      if (set.has(maskedKey(bytes, prefix))) return true;
    }
    return false;
  }
}

/** Equality of two IP texts, IPv4-mapped IPv6 folded to IPv4. */
export function sameIp(a: string, b: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  const x = parseIp(a);
  if (!x || x.kind() !== b.kind()) return false;
  return x.toNormalizedString() === b.toNormalizedString();
}
