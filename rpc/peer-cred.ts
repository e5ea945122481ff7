// Where the server learns who is calling: SO_PEERCRED through the systemd addon
// (Node has no API for it). The kernel records the credentials at connect(); a client
// cannot forge them.
import type net from 'node:net';
import { peerCred } from '../systemd/index.js';
import type { PeerCred } from './authorize.js';

/** Returns the caller's credentials, or throws when they cannot be known. */
export type PeerCredSource = (socket: net.Socket) => PeerCred | Promise<PeerCred>;

/** SO_PEERCRED via systemd/native. Throws (e.g. addon not built) — callers treat the peer as unknown. */
export const socketPeerCred: PeerCredSource = (socket) => peerCred(socket);
