// Loads the native addon (systemd/native/, built by `npm install`) lazily, so that code
// paths that never talk to systemd (development preset, unit tests of other modules)
// work even where the addon could not be built. The first use that needs it throws a
// clear error instead.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface SocketInfo {
  family: 'unix' | 'inet' | 'inet6' | 'netlink' | 'other';
  type: 'stream' | 'dgram' | 'seqpacket' | 'other';
  listening: boolean;
}

export interface ReceivedDatagram {
  data: Buffer;
  fds: number[];
  pid?: number;
  uid?: number;
  gid?: number;
  truncated: boolean;
}

/** Owner of one TCP socket, from NETLINK_SOCK_DIAG (sockDiagOwner). */
export interface SockDiagOwner {
  uid: number;
  inode: number;
}

/** The addon's functions; see systemd/native/README.md. Errors carry code/errno/syscall. */
export interface Addon {
  sendDatagram(
    path: string,
    data: Buffer | Uint8Array | string,
    fds?: number[],
    timeoutMs?: number,
  ): void;
  sdNotify(path: string, message: string, fds?: number[], timeoutMs?: number): void;
  sendMemfd(path: string, data: Buffer | Uint8Array | string, timeoutMs?: number): void;
  notifyBarrier(path: string, timeoutMs?: number): boolean;
  getPeerCred(fd: number): PeerCred;
  getSocketInfo(fd: number): SocketInfo;
  setCloexec(fd: number, on: boolean): void;
  bindDatagram(path: string): number;
  recvDatagram(fd: number, timeoutMs?: number): ReceivedDatagram | null;
  /**
   * The socket whose local end is peerIp:peerPort and remote end localIp:localPort, by
   * exact 4-tuple (inet_diag). null = no such live socket; throws when the kernel could
   * not be asked. `reuse` (default true) keeps one netlink socket open across calls.
   */
  sockDiagOwner(
    peerIp: string,
    peerPort: number,
    localIp: string,
    localPort: number,
    timeoutMs?: number,
    reuse?: boolean,
  ): SockDiagOwner | null;
}

const FILE = 'portail_systemd.node';
// This file runs from systemd/ (sources) or dist/systemd/ (compiled); the addon is built
// in the checkout's (or installed package's) systemd/native/build/.
const CANDIDATES = [
  new URL(`./native/build/Release/${FILE}`, import.meta.url),
  new URL(`../../systemd/native/build/Release/${FILE}`, import.meta.url),
];

let loaded: Addon | undefined;

export function addon(): Addon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  for (const url of CANDIDATES) {
    const path = fileURLToPath(url);
    if (existsSync(path)) {
      loaded = require(path) as Addon;
      return loaded;
    }
  }
  throw new Error(
    `portail's systemd addon is not built (looked for ${CANDIDATES.map((u) => fileURLToPath(u)).join(', ')}); ` +
      'run `npm install` or `npm run install` (needs python3, make and a C compiler)',
  );
}
