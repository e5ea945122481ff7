// Protocol-neutral types shared by front-ends, the pipeline, context providers and
// connectors (docs/reference/architecture.md, "The one path every connection takes").
import type { Duplex } from 'node:stream';

/** Destination as the client asked for it. `host` is normalised (acl-lang normalizeHost) or an IP literal. */
export interface Target {
  host: string;
  port: number;
}

/** What the listener knows about the client before any lookup. */
export interface ClientFacts {
  /** Peer address (after PROXY protocol when enabled). */
  ip: string;
  port: number;
  /** Local address/port of the accepted socket (used for the socket-table lookup). */
  localIp: string;
  localPort: number;
  /** `none` or `tls` (client certificate verified). */
  auth: 'none' | 'tls';
}

/** `proxy.protocol` / `proxy.cmd` as upstream names them (docs/acl.md, "Attributes"). */
export type ProxyProtocol = 'socks5' | 'http';
export type ProxyCommand = 'tcp_connect' | 'udp_associate' | 'connect' | 'forward';

/** Extra request attributes for plain HTTP forwarding. */
export interface HttpFacts {
  method: string;
  scheme: string;
  path: string;
  query: string;
}

/**
 * Why a request was refused, mapped by each front-end to its wire answer
 * (docs/reference/wire.md, "Refusal reasons").
 */
export type RejectReason =
  | 'denied' // ACL deny: SOCKS 0x02, HTTP 403
  | 'dns' // name resolution failed: 0x04, 502
  | 'unreachable' // host/network unreachable: 0x04, 502
  | 'refused' // connection refused: 0x05, 502
  | 'timeout' // connect timeout: 0x06, 504
  | 'unsupported-command' // 0x07
  | 'unsupported-address' // 0x08
  | 'bad-request' // HTTP 400
  | 'overloaded' // max-connections reached: 0x01, 503
  | 'internal'; // anything else: 0x01, 502

/** A failed outbound connection, classified for the wire answer. */
export class ConnectError extends Error {
  constructor(
    readonly reason: Exclude<
      RejectReason,
      'denied' | 'unsupported-command' | 'unsupported-address' | 'bad-request' | 'overloaded'
    >,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

/** Something that connects to a target and yields a byte stream. */
export type Connector = (target: Target, signal: AbortSignal) => Promise<Duplex>;

/** Verified client certificate facts (gateway role). */
export interface CertFacts {
  subjectCn?: string;
  san?: string[];
  fingerprint?: string;
}

/** What a refused request tells the user (already redacted by the explain ACL). */
export interface Refusal {
  reason: RejectReason;
  /** Short text for the client: the deciding policy or "no policy matched", or the error. */
  message: string;
  /** For an ACL redirect (plain HTTP only): where to send the client. */
  redirect?: string;
}

/**
 * The one protocol-neutral request a front-end hands to the pipeline. Nothing after
 * this point knows which protocol the client spoke.
 */
export interface ProxyRequest {
  target: Target;
  protocol: ProxyProtocol;
  cmd: ProxyCommand;
  client: ClientFacts;
  http?: HttpFacts;
  cert?: CertFacts;
  /**
   * Upstream connected: write the protocol's success reply (bound address of the
   * outbound socket) and return the client-side stream to relay. Any bytes the
   * front-end read past the handshake must already be unshifted into it.
   */
  accept(bound: { address: string; port: number }): Duplex;
  /** Refused (ACL, DNS, connect failure…): write the protocol's wire answer and close. */
  reject(refusal: Refusal): void;
}

/** Result of opening an upstream for a plain HTTP forward request (keep-alive front-end). */
export type ForwardOutcome =
  | { ok: false; refusal: Refusal }
  | {
      ok: true;
      upstream: Duplex;
      /** Report the end of this exchange, for the audit `close` record. */
      finish(stats: { bytesUp: number; bytesDown: number; closeReason: string }): void;
    };

/** The pipeline as front-ends see it. */
export interface Pipeline {
  /** CONNECT-like requests (SOCKS5 CONNECT, HTTP CONNECT, HTTP/2 CONNECT): decide, connect, relay, audit. */
  tunnel(req: ProxyRequest): Promise<void>;
  /** Plain HTTP absolute-form request: decide and connect; the front-end does the HTTP exchange. */
  forward(req: Omit<ProxyRequest, 'accept' | 'reject'>): Promise<ForwardOutcome>;
  /**
   * SOCKS5 UDP ASSOCIATE: opens an association (its own decision record, registered
   * like an open relay) and returns the session through which each destination is
   * decided, or the refusal to answer with.
   */
  associate(
    req: DatagramRequest,
    handle: AssociationHandle,
  ): DatagramSession | Refusal | Promise<DatagramSession | Refusal>;
}

export type DatagramRequest = Omit<ProxyRequest, 'accept' | 'reject'>;

/** One destination's answer; the UDP front-end caches it for the association's life. */
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

/** The association as the pipeline may act on it (registered like an open relay). */
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
