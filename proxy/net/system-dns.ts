// The system's resolver configuration, read the way glibc reads it ("hosts: files
// dns"): /etc/hosts first, then the nameservers, search list and ndots of
// /etc/resolv.conf. Both files are read again when they change (checked at most every
// few seconds), like glibc does. docs/DECISIONS.md says why portail asks the servers
// itself (c-ares) instead of calling getaddrinfo.
import { readFileSync, statSync } from 'node:fs';
import { canonicalIp } from './ip.js';

export interface SystemDns {
  /** In the form c-ares takes (IPv6 in brackets); never empty. */
  servers: string[];
  search: string[];
  ndots: number;
  /** Lower-case name (no trailing dot) → addresses, in file order. */
  hosts: ReadonlyMap<string, readonly string[]>;
}

export interface SystemDnsPaths {
  resolvConf?: string;
  hosts?: string;
}

/** glibc's MAXNS: later nameserver lines are ignored. */
const MAX_NAMESERVERS = 3;
/** glibc's cap on `options ndots`. */
const MAX_NDOTS = 15;
/** How often the files' modification times are looked at. */
const RECHECK_MS = 5000;

/** The current configuration; re-read when a file's mtime or size changed. */
export function systemDnsReader(paths: SystemDnsPaths = {}): () => SystemDns {
  const resolvConf = paths.resolvConf ?? '/etc/resolv.conf';
  const hostsFile = paths.hosts ?? '/etc/hosts';
  let stamp = '';
  let checkedAt = -Infinity;
  let current: SystemDns | undefined;
  return () => {
    const now = performance.now();
    if (current !== undefined && now - checkedAt < RECHECK_MS) return current;
    checkedAt = now;
    const next = `${fileStamp(resolvConf)}|${fileStamp(hostsFile)}`;
    if (current === undefined || next !== stamp) {
      stamp = next;
      current = {
        ...parseResolvConf(readText(resolvConf)),
        hosts: parseHosts(readText(hostsFile)),
      };
    }
    return current;
  };
}

function fileStamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'none';
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** resolv(5): nameserver, search / domain (the last one wins), options ndots:N. */
export function parseResolvConf(text: string): Omit<SystemDns, 'hosts'> {
  const servers: string[] = [];
  let search: string[] = [];
  let ndots = 1;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...args] = line.split(/\s+/);
    if (key === 'nameserver' && args[0] !== undefined && servers.length < MAX_NAMESERVERS) {
      // A zone id (fe80::1%eth0) is not something c-ares takes: such a line is skipped.
      const ip = canonicalIp(args[0], 'refuse');
      if (ip !== null) servers.push(ip.includes(':') ? `[${ip}]` : ip);
    } else if (key === 'search' || key === 'domain') {
      search = args.map((d) => d.replace(/\.$/, '').toLowerCase()).filter((d) => d !== '');
      if (key === 'domain') search = search.slice(0, 1);
    } else if (key === 'options') {
      for (const opt of args) {
        const m = /^ndots:(\d+)$/.exec(opt);
        if (m) ndots = Math.min(MAX_NDOTS, Number(m[1]));
      }
    }
  }
  // No nameserver line: the local one, as glibc assumes.
  if (servers.length === 0) servers.push('127.0.0.1');
  return { servers, search, ndots };
}

/** hosts(5): ADDRESS NAME [ALIAS…] per line, `#` comments. */
export function parseHosts(text: string): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const [addr, ...names] = raw.replace(/#.*$/, '').trim().split(/\s+/);
    // A link-local entry needs its zone id to be dialled.
    const ip = addr ? canonicalIp(addr, 'keep') : null;
    if (ip === null) continue;
    for (const n of names) {
      const name = n.replace(/\.$/, '').toLowerCase();
      if (name === '') continue;
      const list = hosts.get(name);
      if (list === undefined) hosts.set(name, [ip]);
      else if (!list.includes(ip)) list.push(ip);
    }
  }
  return hosts;
}

/**
 * The names to ask for `name`, in order (resolv.conf search list and ndots, as glibc):
 * with fewer dots than ndots, the search domains first; a trailing dot means no search.
 */
export function searchNames(name: string, sys: Pick<SystemDns, 'search' | 'ndots'>): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const searched = sys.search.map((d) => `${name}.${d}`).filter((n) => n.length <= 253);
  const dots = name.split('.').length - 1;
  return dots >= sys.ndots ? [name, ...searched] : [...searched, name];
}
