// HOST[:PORT] as the command lines take it: a name, an IPv4 address, or an IPv6
// address (in brackets when a port follows: "[::1]:22"; a bare "::1" is a host).
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** HOST or HOST:PORT; `port` is undefined when absent. Returns an error message when invalid. */
export function parseHostMaybePort(
  text: string,
): { host: string; port?: number } | { error: string } {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    const host = close > 0 ? text.slice(1, close) : '';
    if (isIP(host) !== 6) return { error: `"${text}": expected [IPv6]:PORT` };
    const rest = text.slice(close + 1);
    if (rest === '') return { host };
    const port = rest.startsWith(':') ? parsePort(rest.slice(1)) : undefined;
    return port === undefined ? { error: `"${text}": invalid port` } : { host, port };
  }
  if (isIP(text) === 6) return { host: text };
  const colon = text.lastIndexOf(':');
  if (colon < 0) return text ? { host: text } : { error: 'empty host' };
  const host = text.slice(0, colon);
  const port = parsePort(text.slice(colon + 1));
  if (!host || host.includes(':')) return { error: `"${text}": write an IPv6 address in brackets` };
  return port === undefined ? { error: `"${text}": invalid port` } : { host, port };
}

/** HOST:PORT with the port required. */
export function parseHostPort(text: string): HostPort | { error: string } {
  const r = parseHostMaybePort(text);
  if ('error' in r) return r;
  if (r.port === undefined) return { error: `"${text}": expected HOST:PORT (a port is required)` };
  return { host: r.host, port: r.port };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
