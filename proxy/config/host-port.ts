// HOST:PORT as configuration and RPC write it: a DNS name, an IPv4 literal, or an IPv6
// literal in brackets ("[::1]:1080"), then a port 1-65535.
import { isIP } from 'node:net';
import type { HostPort } from './types.js';

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A DNS name (letters, digits, `-`, `_`; dot-separated labels; optional trailing dot). */
export function isHostname(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  return n.split('.').every((l) => LABEL.test(l));
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Parses HOST:PORT; the error says what is wrong in words a user can act on. */
export function parseHostPort(text: string): HostPort | { error: string } {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { error: `"${text}": missing "]" after the IPv6 address` };
    host = text.slice(1, close);
    if (isIP(host) !== 6) return { error: `"${text}": "${host}" is not an IPv6 address` };
    if (text[close + 1] !== ':')
      return { error: `"${text}": expected HOST:PORT (a port is required)` };
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { error: `"${text}": expected HOST:PORT (a port is required)` };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      return { error: `"${text}": write an IPv6 address in brackets, e.g. "[::1]:1080"` };
    }
    if (isIP(host) !== 4 && !isHostname(host)) {
      return { error: `"${text}": "${host}" is not a valid host name or IP address` };
    }
  }
  const port = parsePort(portText);
  if (port === undefined) return { error: `"${text}": the port must be a number from 1 to 65535` };
  return { host, port };
}

/** The inverse of parseHostPort. */
export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** A DNS resolver: an IP address, optionally with a port ("1.1.1.1", "::1", "[::1]:53", "1.1.1.1:53"). */
export function isResolverAddress(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const hp = parseHostPort(text);
  return !('error' in hp) && isIP(hp.host) !== 0;
}
