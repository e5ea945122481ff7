// HOST:PORT, the one grammar and the one spelling used by the configuration, the daemon,
// the control socket and the command lines (docs/configuration.md, "Error messages"): a
// DNS name, an IPv4 literal, or an IPv6 literal in brackets ("[::1]:1080"), then a port
// 1-65535. Pure: proxy/ and rpc/ both import it (docs/DECISIONS.md, "The net room and
// the single address helpers").
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A DNS name (letters, digits, `-`, `_`; dot-separated labels; optional trailing dot). */
export function isHostname(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  return n.split('.').every((l) => LABEL.test(l));
}

/** A port 1-65535 written in decimal digits, or undefined. */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

export interface ParseOptions {
  /** Whether `HOST` alone (and a bare IPv6 literal) is accepted: `port` is then undefined. */
  portOptional?: boolean;
  /**
   * 'dns' (the default): the host must be a DNS name or an IP literal. 'any': any
   * non-empty host, for a caller that passes it on to be judged where it is used (the
   * daemon normalises a destination for `portailctl explain`, IDNA included).
   */
  host?: 'dns' | 'any';
}

/**
 * Parses HOST:PORT (HOST[:PORT] with `portOptional`); the error says what is wrong in
 * words a user can act on.
 */
export function parseHostPort(text: string): HostPort | { error: string };
export function parseHostPort(
  text: string,
  opts: ParseOptions,
): { host: string; port?: number } | { error: string };
export function parseHostPort(
  text: string,
  opts: ParseOptions = {},
): { host: string; port?: number } | { error: string } {
  const required = opts.portOptional
    ? `"${text}": expected HOST or HOST:PORT`
    : `"${text}": expected HOST:PORT (a port is required)`;
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { error: `"${text}": missing "]" after the IPv6 address` };
    host = text.slice(1, close);
    if (isIP(host) !== 6) return { error: `"${text}": "${host}" is not an IPv6 address` };
    const rest = text.slice(close + 1);
    if (rest === '' && opts.portOptional) return { host };
    if (!rest.startsWith(':')) return { error: required };
    portText = rest.slice(1);
  } else {
    if (opts.portOptional && isIP(text) === 6) return { host: text };
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    if (colon < 0 && !opts.portOptional) return { error: required };
    if (colon >= 0) portText = text.slice(colon + 1);
    if (host.includes(':')) {
      return { error: `"${text}": write an IPv6 address in brackets, e.g. "[::1]:1080"` };
    }
    if (opts.host === 'any' ? host === '' : isIP(host) !== 4 && !isHostname(host)) {
      return { error: `"${text}": "${host}" is not a valid host name or IP address` };
    }
  }
  if (portText === undefined) return { host };
  const port = parsePort(portText);
  if (port === undefined) return { error: `"${text}": the port must be a number from 1 to 65535` };
  return { host, port };
}

/** `host:port`, an IPv6 literal in brackets: the inverse of parseHostPort. */
export function formatHostPort(hp: { readonly host: string; readonly port: number }): string {
  // A host name never holds a colon: any host that does is an IPv6 literal.
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
