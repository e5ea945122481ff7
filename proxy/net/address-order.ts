// Address ordering for Happy Eyeballs (RFC 8305 section 4): keep the resolver's
// preferred family first, then alternate families so that a broken family costs
// one attempt delay, not a whole list of timeouts.
import { isIP } from 'node:net';

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
