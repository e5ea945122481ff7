// The file descriptor store: listening sockets kept by systemd across restarts and
// crashes, and established connections handed from a stopping process to the next one
// with their metadata (a JSON file in the runtime directory).
//
// Reliance on Node internals (no public API exists): a socket's descriptor is read from
// `socket._handle.fd`, and reading is stopped with `_handle.readStop()`. Both have been
// stable since Node 0.x; socketFd() and detachSockets() check them and fail loudly.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { checkSocket, closeQuietly } from './activation.js';
import { barrier, checkFdName, fdStore, fdStoreRemove, type NotifyOptions } from './notify.js';

/** FDNAME prefix of stored connections: `conn.<name>.<index>`, one fd per name so that
 * the order of a connection's fds never depends on how systemd lists its store. */
export const CONNECTION_PREFIX = 'conn.';
export const METADATA_FILE = 'fdstore-connections.json';
const NAME = /^[A-Za-z0-9_.-]{1,200}$/;

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

export interface StoredConnection {
  /** Unique among the entries; [A-Za-z0-9_.-], at most 200 characters (e.g. a trace id). */
  name: string;
  fds: number[];
  /** Anything the next process needs to resume (JSON-serialisable). */
  meta: { [key: string]: JsonValue };
}

export interface StoreOptions extends NotifyOptions {
  /** Where the metadata file lives: default $RUNTIME_DIRECTORY (its first entry). */
  dir?: string;
  /** Longest wait for systemd to confirm (notify barrier), default 5000 ms. */
  barrierTimeoutMs?: number;
}

/** The descriptor behind a net.Socket or a listening net.Server. */
export function socketFd(s: net.Socket | net.Server): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error(
      'socket has no file descriptor (not connected/listening, or not a TCP/unix socket)',
    );
  }
  return fd;
}

/** Replaces whatever is stored under `name` (proxy, control, gateway) by `fds`. Store
 * every listening socket you bound yourself; storing one that came from a socket unit
 * is harmless (listenFds() drops the duplicate) but useless. */
export function storeListeners(name: string, fds: number[], opts?: NotifyOptions): boolean {
  if (!fdStoreRemove(name, opts)) return false;
  fdStore(name, fds, opts);
  return true;
}

function runtimeDir(opts?: { dir?: string }): string {
  const dir = opts?.dir ?? process.env.RUNTIME_DIRECTORY?.split(':')[0];
  if (!dir)
    throw new Error('no runtime directory: set RuntimeDirectory= in the unit or pass { dir }');
  return dir;
}

interface MetadataFile {
  version: 1;
  pid: number;
  storedAt: string;
  entries: { name: string; fdCount: number; meta: StoredConnection['meta'] }[];
}

/** Hands established connections to the next process of the service: writes their
 * metadata, pushes each fd with FDSTORE=1 (FDNAME=conn.<name>.<i>) and waits for systemd
 * to confirm. Call it once, when stopping, with every connection to hand over (it
 * replaces the previous metadata); then close your copies with socket.destroy() — never
 * end(), which would send FIN — and exit. On `systemctl stop`, systemd closes the store,
 * which closes the connections. Returns false when not under systemd or not confirmed.
 * systemd silently drops fds beyond FileDescriptorStoreMax= (listeners included). */
export function storeConnections(entries: StoredConnection[], opts: StoreOptions = {}): boolean {
  if (!process.env.NOTIFY_SOCKET && !opts.socketPath) return false;
  const names = new Set<string>();
  for (const e of entries) {
    if (!NAME.test(e.name))
      throw new TypeError(`invalid connection name: ${JSON.stringify(e.name)}`);
    if (names.has(e.name)) throw new TypeError(`duplicate connection name: ${e.name}`);
    if (e.fds.length === 0) throw new TypeError(`connection ${e.name} has no fd`);
    names.add(e.name);
  }
  const dir = runtimeDir(opts);
  const file: MetadataFile = {
    version: 1,
    pid: process.pid,
    storedAt: new Date().toISOString(),
    entries: entries.map((e) => ({ name: e.name, fdCount: e.fds.length, meta: e.meta })),
  };
  // Metadata first: if we die half-way, fds without metadata are closed by the next
  // process, and metadata without fds is ignored.
  const tmp = join(dir, `.${METADATA_FILE}.${process.pid}`);
  writeFileSync(tmp, JSON.stringify(file), { mode: 0o600 });
  renameSync(tmp, join(dir, METADATA_FILE));
  for (const e of entries) {
    e.fds.forEach((fd, i) => {
      fdStore(checkFdName(`${CONNECTION_PREFIX}${e.name}.${i}`), [fd], opts);
    });
  }
  return barrier(opts.barrierTimeoutMs ?? 5000, opts);
}

export interface RecoveredConnection {
  name: string;
  fds: number[];
  meta: StoredConnection['meta'];
}

/** On start: takes the stored connections out of `listened` (the map from listenFds(),
 * which is modified to keep only the other names), matches them with the metadata by
 * FDNAME and returns them. Everything that does not match (no metadata, missing fds, not
 * a connected stream socket) is closed. Every conn.* entry is then removed from the store
 * (FDSTOREREMOVE=1), because we own these connections now: a copy left in the store
 * would keep them open after we close them. The metadata file is deleted. */
export function recoverConnections(
  listened: Map<string, number[]>,
  opts: StoreOptions & { onStale?: (name: string, why: string) => void } = {},
): RecoveredConnection[] {
  const stored = new Map<string, number>();
  for (const [name, fds] of listened) {
    if (!name.startsWith(CONNECTION_PREFIX)) continue;
    listened.delete(name);
    // One fd per name; more would mean a name stored twice: keep the first.
    stored.set(name, fds[0]);
    for (const extra of fds.slice(1)) closeQuietly(extra);
  }
  let dir: string | undefined;
  try {
    dir = runtimeDir(opts);
  } catch {
    dir = undefined;
  }
  let file: MetadataFile | undefined;
  if (dir) {
    const path = join(dir, METADATA_FILE);
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as MetadataFile;
      if (parsed?.version === 1 && Array.isArray(parsed.entries)) file = parsed;
    } catch {
      file = undefined;
    }
    rmSync(path, { force: true });
  }
  const recovered: RecoveredConnection[] = [];
  const used = new Set<string>();
  for (const entry of file?.entries ?? []) {
    if (typeof entry?.name !== 'string' || !NAME.test(entry.name) || !(entry.fdCount > 0)) continue;
    const keys = Array.from(
      { length: entry.fdCount },
      (_, i) => `${CONNECTION_PREFIX}${entry.name}.${i}`,
    );
    const fds = keys.map((k) => stored.get(k));
    if (fds.some((fd) => fd === undefined)) continue;
    const usable = (fds as number[]).every((fd) => {
      try {
        checkSocket(fd, 'stream-connection');
        return true;
      } catch {
        return false;
      }
    });
    for (const k of keys) used.add(k);
    if (!usable) {
      for (const fd of fds as number[]) closeQuietly(fd);
      opts.onStale?.(entry.name, 'not a connected stream socket');
      continue;
    }
    recovered.push({ name: entry.name, fds: fds as number[], meta: entry.meta });
  }
  for (const [name, fd] of stored) {
    if (!used.has(name)) {
      closeQuietly(fd);
      opts.onStale?.(name, 'no metadata');
    }
    fdStoreRemove(name, opts);
  }
  return recovered;
}

export interface DetachedSocket {
  fd: number;
  /** Bytes already read from this socket but not yet consumed: the next owner must
   * deliver them (e.g. write them to the relay's other side) before anything else. */
  unread: Buffer;
}

/** Prepares sockets for a hand-over: stops reading on all of them first (so that no
 * byte is read by the old process that the new one would miss), removes every listener
 * (pipes, data/end/close/error handlers: the previous owner must not react to what
 * follows), takes out what was read but not consumed, and waits until every pending
 * write reached the kernel. Pass both sides of a relay in one call. Rejects after
 * timeoutMs if a peer does not read (then close that relay instead of handing it over).
 * Afterwards only destroy() the sockets, once stored: never end() (FIN) nor
 * resetAndDestroy() (SO_LINGER 0 would stay set on the socket the next process owns). */
export async function detachSockets(
  sockets: net.Socket[],
  timeoutMs = 5000,
): Promise<DetachedSocket[]> {
  type Internal = net.Socket & {
    _handle?: {
      fd?: number;
      reading?: boolean;
      readStop?: () => number;
      writeQueueSize?: number;
    } | null;
    _read: (n: number) => void;
  };
  const all = sockets as Internal[];
  const fds = all.map((s) => socketFd(s));
  for (const s of all) {
    const h = s._handle;
    if (!h || typeof h.readStop !== 'function')
      throw new Error('socket handle cannot stop reading');
    h.readStop();
    h.reading = false;
    // Reading the buffered bytes below would restart the handle: make that a no-op.
    s._read = () => {};
    s.unpipe();
    // Inert from now on: the previous owner must not react to the destroy() that follows
    // (a relay would reset the peer, or write a close record for a connection that goes
    // on in the next process).
    for (const event of [
      'data',
      'readable',
      'end',
      'finish',
      'close',
      'drain',
      'error',
      'timeout',
    ]) {
      s.removeAllListeners(event);
    }
    s.on('error', () => {});
    s.setTimeout(0);
    s.pause();
  }
  const unread = all.map((s) => {
    const chunks: Buffer[] = [];
    for (
      let c = s.read() as Buffer | string | null;
      c !== null;
      c = s.read() as Buffer | string | null
    ) {
      chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
    }
    return Buffer.concat(chunks);
  });
  const deadline = Date.now() + timeoutMs;
  const flushed = () =>
    all.every((s) => s.writableLength === 0 && (s._handle?.writeQueueSize ?? 0) === 0);
  while (!flushed()) {
    if (Date.now() > deadline) throw new Error('pending writes were not flushed in time');
    await new Promise((r) => setTimeout(r, 5));
  }
  return fds.map((fd, i) => ({ fd, unread: unread[i] }));
}

/** Adopts an inherited connected stream socket (TCP or unix) as a net.Socket. */
export function adoptSocket(fd: number, opts: { allowHalfOpen?: boolean } = {}): net.Socket {
  checkSocket(fd, 'stream-connection');
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: opts.allowHalfOpen });
}
