// Peer credentials of a unix-socket client (SO_PEERCRED): who is calling the control
// socket. The kernel records them at connect(); they cannot be forged by the client.
import type net from 'node:net';
import { addon, type PeerCred } from './addon.js';
import { socketFd } from './fdstore.js';

export type { PeerCred };

/** pid, uid and gid of the process at the other end of a connected AF_UNIX socket.
 * Throws (code ENODATA, ENOTSOCK, EBADF…) when there are none, e.g. for TCP. */
export function peerCred(socket: net.Socket | number): PeerCred {
  return addon().getPeerCred(typeof socket === 'number' ? socket : socketFd(socket));
}
