// Hostname normalisation, applied on both the rule side and the request side
// (docs/reference/wire.md, "Host normalisation"): lower case, no trailing dot, IDNA to punycode.
import { domainToASCII } from 'node:url';

const ALREADY_NORMAL = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** True when `host` is a hostname normalizeHost would return unchanged (the common case). */
export function isNormalHost(host: string): boolean {
  return ALREADY_NORMAL.test(host);
}

/**
 * Returns the normalised hostname, or null when it cannot be one (IDNA failure,
 * empty). IP literals pass through (IPv6 lower-cased, brackets removed).
 */
export function normalizeHost(host: string): string | null {
  if (isNormalHost(host)) return host;
  let h = host;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.includes(':')) return h.toLowerCase(); // IPv6 literal
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h === '') return null;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII range test
  if (/^[\x00-\x7f]*$/.test(h)) return h.toLowerCase();
  const ascii = domainToASCII(h);
  return ascii === '' ? null : ascii;
}
