// Address ordering for Happy Eyeballs (RFC 8305 section 4): keep the resolver's
// preferred family first, then alternate families so that a broken family costs
// one attempt delay, not a whole list of timeouts.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Canonical text form of an IP address: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes
 * the IPv4 address (the same destination; the ACL must not be evaded by the mapped
 * spelling), IPv6 is compressed and lower case, brackets and zone ids are kept out.
 * Returns null for anything that is not an IP literal.
 */
export function canonicalIp(text: string): string | null {
  let t = text;
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const family = isIP(t);
  // Node's IPv4 syntax is the canonical dotted quad already (no leading zeros).
  if (family === 4) return t;
  if (family === 0) return null;
  try {
    return ipaddr.process(t).toString();
  } catch {
    return null;
  }
}

/** Orders addresses for connection attempts: first family first, then interleaved; duplicates dropped. */
export function happyEyeballsOrder(addresses: readonly string[]): string[] {
  const unique = [...new Set(addresses)];
  if (unique.length < 2) return unique;
  const firstFamily = isIP(unique[0]);
  const first = unique.filter((a) => isIP(a) === firstFamily);
  const other = unique.filter((a) => isIP(a) !== firstFamily);
  const out: string[] = [];
  for (let i = 0; i < Math.max(first.length, other.length); i++) {
    if (i < first.length) out.push(first[i]);
    if (i < other.length) out.push(other[i]);
  }
  return out;
}
