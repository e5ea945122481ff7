// Protocol-neutral types shared by front-ends, the pipeline, context providers and
// connectors (ARCHITECTURE.md: "the one path every connection takes").
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

/** `proxy.protocol` / `proxy.cmd` as upstream names them (SPEC 5.5). */
export type ProxyProtocol = 'socks5' | 'http';
export type ProxyCommand = 'tcp_connect' | 'udp_associate' | 'connect' | 'forward';

/** Extra request attributes for plain HTTP forwarding. */
export interface HttpFacts {
  method: string;
  scheme: string;
  path: string;
  query: string;
}

/** Why a request was refused, mapped by each front-end to its wire answer (SPEC 4). */
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
  /** One UDP datagram's destination (SOCKS5 UDP ASSOCIATE): may it be sent? Cached per destination by the caller. */
  allowDatagram(req: Omit<ProxyRequest, 'accept' | 'reject'>): Promise<boolean>;
}
