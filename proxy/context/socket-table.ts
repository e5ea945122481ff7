// Who is on the other end of a loopback connection: the kernel's socket table gives the
// owner uid and inode of the peer's socket; the process holding that inode is found by
// scanning /proc/[pid]/fd (process-scan.ts), which is the expensive part and is only
// done when a rule asks for client.process.*.
//
// The owner comes from a NETLINK_SOCK_DIAG query by exact 4-tuple (the native addon's
// sockDiagOwner: ~2 µs, however many sockets there are) and, where netlink is not
// available (a sandbox without it, an addon that could not be built, an error), from
// reading /proc/net/tcp{,6} (~1 ms and more with many sockets).
//
// Every lookup is asynchronous, bounded (bytes read, time spent) and never throws:
// anything not found or not readable is `undefined`, which the ACL treats as missing.
import { execFile } from 'node:child_process';
import { promises as fs, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { addon } from '../../systemd/addon.js';
import { ProcessScanner } from './process-scan.js';

/** One TCP connection as the listener saw it. */
export interface PeerAddress {
  /** The peer (our client). */
  ip: string;
  port: number;
  /** Our end of the accepted socket. */
  localIp: string;
  localPort: number;
}

export interface SocketOwner {
  uid: number;
  inode: number;
}

export interface ProcessInfo {
  pid: number;
  /** readlink /proc/PID/exe; unreadable (another user's process, no privilege) = undefined. */
  exe?: string;
  /** /proc/PID/comm (at most 15 characters, set by the process itself: informative, not proof). */
  name?: string;
}

export interface SocketTable {
  /** Owner uid and inode of the peer's socket; loopback peers only. */
  owner(peer: PeerAddress): Promise<SocketOwner | undefined>;
  /** The process holding the socket `inode`; `uid` (the socket's owner) orders the scan. */
  process(inode: number, uid?: number): Promise<ProcessInfo | undefined>;
  /** User name of `uid`: /etc/passwd, then NSS (`getent passwd`), cached. */
  userName(uid: number): Promise<string | undefined>;
}

export interface SocketTableOptions {
  /** Root of procfs (tests). Default `/proc`. */
  procRoot?: string;
  /** Default `/etc/passwd`. */
  passwdFile?: string;
  /** Give up on one process scan after this long. Default 500 ms. */
  processScanBudgetMs?: number;
  /** Give up reading one socket table after this many bytes. Default 64 MiB. */
  maxTableBytes?: number;
  /**
   * Ask the kernel through NETLINK_SOCK_DIAG before reading /proc/net/tcp{,6}: `true`
   * (default) = the native addon, `false` = /proc only, a function = that lookup (tests).
   */
  sockDiag?: boolean | SockDiagLookup;
}

/**
 * One owner lookup by exact 4-tuple: the owner, `null` = the kernel has no such live
 * socket; throws when the kernel could not be asked.
 */
export type SockDiagLookup = (peer: PeerAddress) => SocketOwner | null;

/** Answer within this long, or fall back to /proc for that lookup. */
const SOCK_DIAG_TIMEOUT_MS = 50;

/** The native addon's sockDiagOwner (one netlink socket kept open, reused by every call). */
export const addonSockDiag: SockDiagLookup = (peer) =>
  addon().sockDiagOwner(peer.ip, peer.port, peer.localIp, peer.localPort, SOCK_DIAG_TIMEOUT_MS);

/** Failures that will not go away by asking again: stop using netlink for good. */
const PERMANENT = new Set(['EPROTONOSUPPORT', 'EAFNOSUPPORT', 'EOPNOTSUPP', 'EACCES', 'EPERM']);

/** 127.0.0.0/8, ::1, and their IPv4-mapped spelling. */
export function isLoopback(ip: string): boolean {
  if (net.isIP(ip) === 0) return false;
  try {
    return ipaddr.process(ip).range() === 'loopback';
  } catch {
    return false;
  }
}

/** The system's socket table, with its process-scan counters (tests, benchmarks). */
export interface SystemSocketTable extends SocketTable {
  readonly scanStats: ProcessScanner['stats'];
}

export function createSocketTable(options: SocketTableOptions = {}): SystemSocketTable {
  const proc = options.procRoot ?? '/proc';
  const budgetMs = options.processScanBudgetMs ?? 500;
  const maxBytes = options.maxTableBytes ?? 64 * 1024 * 1024;
  const readers = {
    tcp: new TableReader(join(proc, 'net', 'tcp'), maxBytes),
    tcp6: new TableReader(join(proc, 'net', 'tcp6'), maxBytes),
  };
  const users = createUserNames(options.passwdFile ?? '/etc/passwd');
  const sockDiag = options.sockDiag ?? true;
  const diag = sockDiag === false ? undefined : sockDiag === true ? addonSockDiag : sockDiag;
  // 'untested': a netlink miss is confirmed in /proc until netlink has found one socket
  // (the kernel answers ENOENT alike for "no such socket" and "no inet_diag module");
  // 'trusted': netlink's answers are final; 'off': /proc only.
  let diagState: 'untested' | 'trusted' | 'off' = diag ? 'untested' : 'off';

  /**
   * Netlink's answer: the owner, `null` = no such socket, `'ask-proc'` = /proc has to
   * answer (netlink unavailable or failing), `'confirm'` = a miss /proc has to confirm.
   */
  function askKernel(peer: PeerAddress): SocketOwner | null | 'ask-proc' | 'confirm' {
    if (!diag || diagState === 'off') return 'ask-proc';
    try {
      const found = diag(peer);
      if (found) diagState = 'trusted';
      return found === null && diagState === 'untested' ? 'confirm' : found;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // No addon (not built), no netlink family here: not worth asking again. Anything
      // else (a timeout, no memory) is retried on the next lookup.
      if (typeof code !== 'string' || PERMANENT.has(code)) diagState = 'off';
      return 'ask-proc';
    }
  }

  async function readProc(peer: PeerAddress): Promise<SocketOwner | undefined> {
    for (const { file, key } of tableKeys(peer)) {
      const line = await readers[file].find(key);
      if (line === undefined) continue;
      const f = line.trim().split(/\s+/);
      const uid = Number(f[7]);
      const inode = Number(f[9]);
      // inode 0: no socket object any more (TIME_WAIT, orphan): nobody to attribute.
      if (!Number.isInteger(uid) || !Number.isInteger(inode) || inode === 0) return undefined;
      return { uid, inode };
    }
    return undefined;
  }

  const scanner = new ProcessScanner(proc, budgetMs);

  return {
    scanStats: scanner.stats,
    async owner(peer) {
      try {
        if (!isLoopback(peer.ip)) return undefined;
        const answer = askKernel(peer);
        if (answer !== 'ask-proc' && answer !== 'confirm') return answer ?? undefined;
        const fromProc = await readProc(peer);
        // Netlink missed a socket that /proc shows: its misses cannot be trusted here.
        if (fromProc && answer === 'confirm' && diagState === 'untested') diagState = 'off';
        return fromProc;
      } catch {
        return undefined;
      }
    },

    async process(inode, uid) {
      try {
        const pid = await scanner.holder(inode, uid);
        if (pid === undefined) return undefined;
        // Two small procfs reads: synchronous, cheaper than a thread-pool round trip.
        const info: ProcessInfo = { pid };
        try {
          info.exe = readlinkSync(join(proc, String(pid), 'exe'));
        } catch {
          // another user's process, no privilege: unknown
        }
        try {
          info.name = readFileSync(join(proc, String(pid), 'comm'), 'utf8').replace(/\n$/, '');
        } catch {
          // exited meanwhile
        }
        return info;
      } catch {
        return undefined;
      }
    },

    userName: (uid) => users(uid).catch(() => undefined),
  };
}

// ---------------------------------------------------------------------------------
// /proc/net/tcp{,6}: "sl local_address rem_address st ... uid timeout inode", addresses
// as the kernel's 32-bit words printed in host byte order, ports in hex.

interface TableKey {
  file: 'tcp' | 'tcp6';
  key: string;
}

/** The lines to look for: the peer's socket has local = peer, remote = us. */
function tableKeys(peer: PeerAddress): TableKey[] {
  const remote = ipaddr.process(peer.ip);
  const local = ipaddr.process(peer.localIp);
  const keys: TableKey[] = [];
  const entry = (a: ipaddr.IPv4 | ipaddr.IPv6, port: number) =>
    `${hexAddress(a.toByteArray())}:${hexPort(port)}`;
  if (remote.kind() === 'ipv4' && local.kind() === 'ipv4') {
    const r = remote as ipaddr.IPv4;
    const l = local as ipaddr.IPv4;
    keys.push({ file: 'tcp', key: ` ${entry(r, peer.port)} ${entry(l, peer.localPort)} ` });
    // A dual-stack (AF_INET6) client socket talking to an IPv4 address: mapped form in tcp6.
    keys.push({
      file: 'tcp6',
      key: ` ${entry(r.toIPv4MappedAddress(), peer.port)} ${entry(l.toIPv4MappedAddress(), peer.localPort)} `,
    });
  } else if (remote.kind() === 'ipv6' && local.kind() === 'ipv6') {
    keys.push({
      file: 'tcp6',
      key: ` ${entry(remote, peer.port)} ${entry(local, peer.localPort)} `,
    });
  }
  return keys;
}

const littleEndian = os.endianness() === 'LE';

function hexAddress(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (littleEndian) word.reverse();
    for (const b of word) out += b.toString(16).padStart(2, '0').toUpperCase();
  }
  return out;
}

function hexPort(port: number): string {
  return port.toString(16).padStart(4, '0').toUpperCase();
}

/**
 * Finds lines of one table file by key. Reading /proc/net/tcp costs the kernel a walk
 * over its whole connection hash (about 1.5 ms here, however few sockets there are),
 * so concurrent lookups share one pass: requests arriving while a pass runs are
 * batched into the next one. A pass stops as soon as every key of its batch is found.
 */
class TableReader {
  private next: Map<string, ((line: string | undefined) => void)[]> | undefined;
  private running = false;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
  ) {}

  find(key: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.next ??= new Map();
      const waiting = this.next.get(key);
      if (waiting) waiting.push(resolve);
      else this.next.set(key, [resolve]);
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.next) {
      const batch = this.next;
      this.next = undefined;
      const found = await this.pass([...batch.keys()]).catch(() => new Map<string, string>());
      for (const [key, resolvers] of batch) for (const r of resolvers) r(found.get(key));
    }
    this.running = false;
  }

  private async pass(keys: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const handle = await fs.open(this.path, 'r');
    try {
      const buf = Buffer.allocUnsafe(64 * 1024);
      let carry = '';
      let total = 0;
      let pending = keys;
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return found;
        total += bytesRead;
        const text = carry + buf.toString('latin1', 0, bytesRead);
        // Only whole lines are searched; the partial last one waits for the next chunk.
        const whole = text.lastIndexOf('\n') + 1;
        const lines = text.slice(0, whole);
        carry = text.slice(whole);
        for (const key of pending) {
          const at = lines.indexOf(key);
          if (at < 0) continue;
          found.set(key, lines.slice(lines.lastIndexOf('\n', at) + 1, lines.indexOf('\n', at)));
        }
        pending = pending.filter((k) => !found.has(k));
        if (pending.length === 0 || total > this.maxBytes) return found;
      }
    } finally {
      await handle.close().catch(() => {});
    }
  }
}

// ---------------------------------------------------------------------------------
// uid → user name. /etc/passwd is re-read when it changes (checked at most every 5 s);
// users only known to NSS (LDAP, sssd, systemd DynamicUser) come from `getent`.

const PASSWD_CHECK_MS = 5_000;
const NSS_TTL_MS = 60_000;

function createUserNames(passwdFile: string): (uid: number) => Promise<string | undefined> {
  let byUid = new Map<number, string>();
  let mtimeMs = -1;
  let checkedAt = 0;
  let loading: Promise<void> | undefined;
  const nss = new Map<number, { name: string | undefined; at: number }>();

  async function refresh(): Promise<void> {
    const now = Date.now();
    if (now - checkedAt < PASSWD_CHECK_MS) return;
    checkedAt = now;
    try {
      const st = await fs.stat(passwdFile);
      if (st.mtimeMs === mtimeMs) return;
      const text = await fs.readFile(passwdFile, 'utf8');
      const next = new Map<number, string>();
      for (const line of text.split('\n')) {
        const f = line.split(':');
        if (f.length < 3 || f[0] === '' || f[0].startsWith('#')) continue;
        const uid = Number(f[2]);
        if (Number.isInteger(uid) && !next.has(uid)) next.set(uid, f[0]);
      }
      byUid = next;
      mtimeMs = st.mtimeMs;
    } catch {
      byUid = new Map();
      mtimeMs = -1;
    }
  }

  return async (uid) => {
    loading ??= refresh().finally(() => {
      loading = undefined;
    });
    await loading;
    const local = byUid.get(uid);
    if (local !== undefined) return local;
    const cached = nss.get(uid);
    if (cached && Date.now() - cached.at < NSS_TTL_MS) return cached.name;
    const name = await getent(uid);
    if (nss.size > 1000) nss.clear();
    nss.set(uid, { name, at: Date.now() });
    return name;
  };
}

function getent(uid: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['passwd', String(uid)], { timeout: 1000 }, (err, stdout) => {
      const name = err ? undefined : String(stdout).split(':')[0];
      resolve(name ? name : undefined);
    });
  });
}
