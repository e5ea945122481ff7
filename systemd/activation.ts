// Socket activation: the descriptors systemd passes in LISTEN_FDS (from socket units and
// from the file descriptor store), grouped by name, and turning one into a net.Server.
import { closeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import { addon, type SocketInfo } from './addon.js';

/** The first passed descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

export interface PassedFd {
  fd: number;
  name: string;
}

/** Parses LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (pure). Returns [] when the variables are
 * absent or meant for another process (LISTEN_PID ≠ pid); throws when they are
 * malformed, since guessing which descriptor is which would be worse than failing. */
export function parseListenEnv(env: NodeJS.ProcessEnv, pid: number): PassedFd[] {
  const pidText = env.LISTEN_PID;
  const countText = env.LISTEN_FDS;
  if (pidText === undefined || countText === undefined) return [];
  if (!/^[0-9]+$/.test(pidText)) throw new Error(`invalid LISTEN_PID: ${JSON.stringify(pidText)}`);
  if (Number(pidText) !== pid) return [];
  if (!/^[0-9]+$/.test(countText) || Number(countText) > 65536) {
    throw new Error(`invalid LISTEN_FDS: ${JSON.stringify(countText)}`);
  }
  const count = Number(countText);
  // Without LISTEN_FDNAMES every fd is "unknown", as sd_listen_fds_with_names() says.
  const names =
    env.LISTEN_FDNAMES === undefined
      ? new Array<string>(count).fill('unknown')
      : env.LISTEN_FDNAMES.split(':');
  if (count === 0) return [];
  if (names.length !== count) {
    throw new Error(`LISTEN_FDNAMES has ${names.length} names for LISTEN_FDS=${count}`);
  }
  return names.map((name, i) => ({ fd: LISTEN_FDS_START + i, name: name || 'unknown' }));
}

export interface ListenFdsOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Delete the LISTEN_* variables after reading them (default true), so that programs
   * we spawn never mistake our descriptors for theirs. */
  unsetEnvironment?: boolean;
}

/** The descriptors passed by systemd, by name (FileDescriptorName= of a socket unit or
 * FDNAME= of the fd store), in the order systemd passed them. Each is made
 * close-on-exec. A socket passed twice (by a socket unit and again from the fd store)
 * is kept once: the duplicate descriptor is closed. Empty map when not activated. */
export function listenFds(opts: ListenFdsOptions = {}): Map<string, number[]> {
  const env = opts.env ?? process.env;
  const passed = parseListenEnv(env, opts.pid ?? process.pid);
  if (opts.unsetEnvironment ?? true) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  const byName = new Map<string, number[]>();
  const seen = new Set<string>();
  for (const { fd, name } of passed) {
    addon().setCloexec(fd, true);
    const st = fstatSync(fd, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) {
      closeQuietly(fd);
      continue;
    }
    seen.add(id);
    const list = byName.get(name);
    if (list) list.push(fd);
    else byName.set(name, [fd]);
  }
  return byName;
}

export type SocketKind = 'stream-listener' | 'tcp-listener' | 'unix-listener' | 'stream-connection';

/** Checks what an inherited descriptor really is before trusting it; throws a message
 * naming the fd and what was found. */
export function checkSocket(fd: number, kind: SocketKind): SocketInfo {
  let info: SocketInfo;
  try {
    info = addon().getSocketInfo(fd);
  } catch (err) {
    throw new Error(`fd ${fd} is not a usable socket: ${(err as Error).message}`);
  }
  const tcp = info.family === 'inet' || info.family === 'inet6';
  const familyOk =
    kind === 'tcp-listener'
      ? tcp
      : kind === 'unix-listener'
        ? info.family === 'unix'
        : tcp || info.family === 'unix';
  const listening = kind !== 'stream-connection';
  if (!familyOk || info.type !== 'stream' || info.listening !== listening) {
    throw new Error(
      `fd ${fd} is a ${info.family} ${info.type} socket${info.listening ? ' (listening)' : ''}, expected a ${kind}`,
    );
  }
  return info;
}

/** Starts `server` (default: a new net.Server) on an inherited listening socket after
 * checking its kind. Resolves once listening; rejects (leaving the fd open) when the fd
 * is not a listening socket of that kind or listen() fails. */
export async function serverFromFd(
  fd: number,
  opts: { server?: net.Server; kind?: Exclude<SocketKind, 'stream-connection'> } = {},
): Promise<net.Server> {
  checkSocket(fd, opts.kind ?? 'stream-listener');
  const server = opts.server ?? net.createServer();
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ fd });
  });
  return server;
}

/** Closes a descriptor we own and no longer want, ignoring EBADF. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
