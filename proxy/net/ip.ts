// The canonical text of an IP address, the one spelling every room compares: the ACL
// (dst.ip, client.ip), the resolver's answers, the connectors and the front-ends all
// go through canonicalIp, so that `::ffff:10.0.0.1`, `[::1]` or `2001:DB8::0:1` cannot
// name a destination the ACL saw under another spelling.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * What to do with an IPv6 zone id (`fe80::1%eth0`). It only means something on this
 * host: it names one of our interfaces.
 * - 'refuse' (the default): where a client's text names an address (a destination, a
 *   SOCKS5 address, a certificate's IP): a client cannot pick our interfaces
 *   (proxy/listen/README.md "Destinations"). A zone id makes the text not an IP.
 * - 'keep': addresses from this host or its operator (a socket's address, /etc/hosts,
 *   a backend's target-address, outgoing-address, an address the resolver returned):
 *   a link-local address needs its zone to be dialled; the zone id is kept as written.
 */
export type ZoneId = 'refuse' | 'keep';

/**
 * Canonical text of an IP literal (brackets allowed): IPv4 dotted quad, IPv6 compressed
 * lower case, IPv4-mapped IPv6 as plain IPv4. Null when the text is not an IP literal
 * (or carries a zone id that `zone` refuses).
 */
export function canonicalIp(text: string, zone: ZoneId = 'refuse'): string | null {
  let t = text;
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const family = isIP(t);
  // Node's IPv4 syntax is the canonical dotted quad already (no leading zeros): the
  // common case costs no parse.
  if (family === 4) return t;
  if (family === 0 || (zone === 'refuse' && t.includes('%'))) return null;
  try {
    return ipaddr.process(t).toString();
  } catch {
    return null;
  }
}

/** The canonical form of an address the kernel gave us (peer, local, bound): unmapped. */
export function socketIp(address: string): string {
  return canonicalIp(address, 'keep') ?? address;
}
