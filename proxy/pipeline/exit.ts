// Opening the way out for an allowed request. Today only the direct exit exists; the
// connector chain (SOCKS5/HTTP/SSH backends, ± mTLS, fallback-to-direct) plugs in here
// and nowhere else: it receives the decision's ordered candidates.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Snapshot } from '../state/snapshot.js';
import { ConnectError, type Target } from '../types.js';

export interface ExitRequest {
  target: Target;
  /** Ordered backend candidates from the decision; empty = direct. */
  backends: readonly string[];
  /** Addresses the ACL checked (dst.ip): connect to those only. */
  addresses?: string[];
  signal: AbortSignal;
}

export interface OpenedExit {
  stream: Duplex;
  /** For the protocol's success reply. */
  bound: { address: string; port: number };
  /** The peer actually connected to (re-evaluation on reload sees it as dst.ip). */
  remoteIp: string | undefined;
}

export async function openExit(snap: Snapshot, req: ExitRequest): Promise<OpenedExit> {
  if (req.backends.some((b) => b !== 'direct')) {
    throw new ConnectError('internal', 'backend chaining not available yet');
  }
  const sock: Socket = await snap.services.direct.connect(req.target, {
    signal: req.signal,
    addresses: req.addresses,
  });
  return {
    stream: sock,
    bound: { address: sock.localAddress ?? '0.0.0.0', port: sock.localPort ?? 0 },
    remoteIp: sock.remoteAddress,
  };
}
