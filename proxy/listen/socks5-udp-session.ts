// What a SOCKS5 UDP association needs from the pipeline, beyond a yes/no per datagram:
// the settings of the snapshot it opened under (idle-timeout, outgoing-address,
// public-address), the resolver of direct exits, and the association's `close` audit
// record. A pipeline offers it with `associate()`; one without it gets the minimal
// session below (allowDatagram per destination, no idle timeout, no close record).
import { lookup } from 'node:dns/promises';
import type { Pipeline, ProxyRequest, Refusal, Target } from '../types.js';
import { socketIp } from './target.js';

export type DatagramRequest = Omit<ProxyRequest, 'accept' | 'reject'>;

/** One destination's answer; the front-end caches it for the association's life. */
export type DatagramVerdict =
  /** Direct exit. `addresses`: the ones the ACL checked (rules read dst.ip): send only there. */
  | { send: true; addresses?: string[] }
  /** Denied, routed to a backend without a direct fallback, DNS failure for dst.ip… */
  | { send: false };

/** How an association ended (the `close_reason`, same names as the TCP relay's). */
export type AssociationCloseReason =
  | 'completed' // the client closed its control connection (FIN)
  | 'client_error' // the control connection was reset, or the client's side failed
  | 'upstream_error' // an outbound socket failed (e.g. outgoing-address not local)
  | 'idle_timeout' // no datagram relayed either way for idle-timeout
  | 'policy_changed'
  | 'shutdown';

export interface AssociationStats {
  /** Payload bytes sent to destinations (SOCKS headers excluded). */
  bytesUp: number;
  /** Payload bytes delivered to the client (SOCKS headers excluded). */
  bytesDown: number;
  durationMs: number;
  closeReason: AssociationCloseReason;
}

/** The association as the pipeline may act on it (register it like an open relay). */
export interface AssociationHandle {
  /** Ends it: sockets and control connection closed, then `closed()` with this reason. */
  close(reason: AssociationCloseReason): void;
  /** After a reload: every destination is decided again, under the new rules. */
  forgetDecisions(): void;
}

export interface DatagramSession {
  /** No datagram relayed either way for this long ends the association; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Source address of outbound datagrams (config `outgoing-address`). */
  readonly outgoingAddress?: string;
  /** Address advertised in the ASSOCIATE reply (config `public-address`). */
  readonly publicAddress?: string;
  /** Context, ACL and decision record for one destination (called once per destination). */
  decide(target: Target): Promise<DatagramVerdict>;
  /** Addresses of a name, with the direct exits' resolver (`[dns] resolvers`). */
  resolve(host: string): Promise<string[]>;
  /** An allowed destination that cannot be sent to (e.g. no address of the family of
   * outgoing-address): reported once per destination, its datagrams dropped. */
  undeliverable(target: Target, why: string): void;
  /** Called exactly once when the association ends: its `close` record. */
  closed(stats: AssociationStats): void;
}

/** A pipeline that knows UDP associations (proposed addition to `Pipeline`, proxy/types.ts). */
export interface AssociatingPipeline extends Pipeline {
  associate?(
    req: DatagramRequest,
    handle: AssociationHandle,
  ): DatagramSession | Refusal | Promise<DatagramSession | Refusal>;
}

export function isRefusal(x: DatagramSession | Refusal): x is Refusal {
  return !('decide' in x);
}

/** The session for one association: the pipeline's own, else the allowDatagram fallback. */
export async function openSession(
  pipeline: AssociatingPipeline,
  req: DatagramRequest,
  handle: AssociationHandle,
): Promise<DatagramSession | Refusal> {
  if (typeof pipeline.associate === 'function') return pipeline.associate(req, handle);
  // TODO(pipeline): remove once Pipeline.associate exists; until then no idle timeout,
  // outgoing-address, public-address, [dns] resolvers or close record for UDP.
  return {
    idleTimeoutMs: 0,
    decide: async (target) =>
      (await pipeline.allowDatagram({ ...req, target })) ? { send: true } : { send: false },
    resolve: async (host) => (await lookup(host, { all: true })).map((a) => socketIp(a.address)),
    undeliverable() {},
    closed() {},
  };
}
