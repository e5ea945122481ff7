// Destination parsing shared by the front-ends: hostnames normalised as
// docs/reference/wire.md, "Host normalisation", says (lower case, no trailing dot, IDNA to
// punycode), IP literals in one canonical spelling, and HTTP authorities (`host:port`,
// `[v6]:port`). Every spelling that would reach the same destination becomes the same
// string, so the ACL sees what is dialled.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { canonicalIp } from '../net/ip.js';
import type { Target } from '../types.js';

const ASCII_NAME = /^[A-Za-z0-9_.-]+$/;
const LABEL = /^[a-z0-9_-]{1,63}$/;
// WHATWG "ends in a number": such a name is an IPv4 address in another spelling
// (`2130706433`, `0x7f.1`), which getaddrinfo would accept too.
const NUMERIC_LABEL = /^(0x[0-9a-f]*|[0-9]+)$/;

/**
 * A destination host as a client wrote it → the normalised hostname or canonical IP
 * literal; null when it cannot name a destination (bad characters, empty label,
 * IDNA failure, more than 253 characters).
 */
export function normalizeTargetHost(raw: string): string | null {
  if (raw.length === 0 || raw.length > 255) return null;
  const ip = canonicalIp(raw);
  if (ip !== null) return ip;
  let h = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (h.length === 0) return null;
  if (ASCII_NAME.test(h)) {
    h = h.toLowerCase();
  } else {
    // Non-ASCII: the ASCII part must still be name characters; IDNA maps the rest.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the ASCII range
    const asciiPart = h.replace(/[^\x00-\x7f]/g, '');
    if (asciiPart !== '' && !ASCII_NAME.test(asciiPart)) return null;
    h = domainToASCII(h);
    if (h === '') return null;
    if (h.endsWith('.')) h = h.slice(0, -1);
  }
  const labels = h.split('.');
  if (NUMERIC_LABEL.test(labels[labels.length - 1])) {
    const v4 = domainToASCII(h);
    return isIP(v4) === 4 ? v4 : null;
  }
  if (h.length > 253 || !labels.every((l) => LABEL.test(l))) return null;
  return h;
}

/**
 * Parses an HTTP authority (`host`, `host:port`, `[v6]`, `[v6]:port`) with no userinfo.
 * Returns null for anything else (the front-end answers 400).
 */
export function parseAuthority(text: string, defaultPort: number): Target | null {
  if (text.length === 0 || text.length > 300 || /[\s@/\\?#]/.test(text)) return null;
  let hostText: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    hostText = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
    if (isIP(hostText.slice(1, -1)) !== 6) return null;
  } else {
    const colon = text.indexOf(':');
    if (colon >= 0) {
      hostText = text.slice(0, colon);
      portText = text.slice(colon + 1);
    } else {
      hostText = text;
    }
  }
  let port = defaultPort;
  if (portText !== undefined && portText !== '') {
    if (!/^[0-9]{1,5}$/.test(portText)) return null;
    port = Number(portText);
  }
  if (port < 1 || port > 65535) return null;
  const host = normalizeTargetHost(hostText);
  return host === null ? null : { host, port };
}
