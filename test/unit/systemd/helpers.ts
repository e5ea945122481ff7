// Test doubles made of real sockets: a bound unix datagram socket standing for systemd's
// NOTIFY_SOCKET or journald's socket, and a decoder of journald's native protocol.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly } from '../../../systemd/activation.js';
import { addon, type ReceivedDatagram } from '../../../systemd/addon.js';

export interface FakeSocket {
  path: string;
  fd: number;
  /** Next datagram (waiting at most timeoutMs), or null. */
  recv(timeoutMs?: number): ReceivedDatagram | null;
  /** Every datagram queued now, as text; received fds are closed unless kept. */
  drainText(keepFds?: number[][]): string[];
  close(): void;
}

export function fakeSocket(name = 'notify'): FakeSocket {
  const dir = mkdtempSync(join(tmpdir(), 'portail-sd-'));
  const path = join(dir, name);
  const fd = addon().bindDatagram(path);
  return {
    path,
    fd,
    recv: (timeoutMs = 1000) => addon().recvDatagram(fd, timeoutMs),
    drainText(keepFds) {
      const out: string[] = [];
      for (let d = addon().recvDatagram(fd, 0); d; d = addon().recvDatagram(fd, 0)) {
        out.push(d.data.toString());
        if (keepFds) keepFds.push(d.fds);
        else for (const f of d.fds) closeQuietly(f);
      }
      return out;
    },
    close() {
      closeQuietly(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A second descriptor for the same open file, owned by no Node handle (sent to
 * ourselves with SCM_RIGHTS: Node has no dup()). */
export function dupFd(fd: number): number {
  const s = fakeSocket('dup');
  try {
    addon().sendDatagram(s.path, 'dup', [fd]);
    const fds = s.recv(1000)?.fds ?? [];
    if (fds.length !== 1) throw new Error('dup failed');
    return fds[0];
  } finally {
    s.close();
  }
}

/** Decodes one journald native-protocol datagram into [name, value] pairs (in order). */
export function decodeJournal(buf: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < buf.length) {
    const nl = buf.indexOf(0x0a, i);
    if (nl < 0) throw new Error(`unterminated field at ${i}`);
    const line = buf.subarray(i, nl).toString();
    const eq = line.indexOf('=');
    if (eq >= 0) {
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
      i = nl + 1;
    } else {
      const len = Number(buf.readBigUInt64LE(nl + 1));
      const start = nl + 9;
      out.push([line, buf.subarray(start, start + len).toString()]);
      if (buf[start + len] !== 0x0a)
        throw new Error(`binary field ${line} not terminated by a newline`);
      i = start + len + 1;
    }
  }
  return out;
}

/** The FD_CLOEXEC flag of one of our descriptors, read from /proc. */
export async function isCloexec(fd: number): Promise<boolean> {
  const { readFileSync } = await import('node:fs');
  const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  return (Number.parseInt(flags ?? '0', 8) & 0o2000000) !== 0;
}

/** The descriptor of a bound dgram socket (its public `_handle` getter is deprecated). */
export function udpFd(socket: import('node:dgram').Socket): number {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const fd =
    state && (socket as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('dgram socket has no fd');
  return fd;
}
