// What the listener gives each front-end: the pipeline, the client's facts and the
// handshake deadline it must stop once the request is complete.
import type { CertFacts, ClientFacts, Pipeline } from '../types.js';

/** Bounds on what a client may send before its request is complete. */
export interface HandshakeLimits {
  /** HTTP/1.1 request head (request line + headers), bytes. */
  maxHeaderBytes: number;
  /** HTTP/1.1 and HTTP/2 request header fields. */
  maxHeaderCount: number;
  /** HTTP/1.1 upstream response head, bytes (plain forwarding). */
  maxResponseHeaderBytes: number;
  /** HTTP/2 concurrent streams per connection. */
  maxConcurrentStreams: number;
  /** SOCKS5 UDP: destinations remembered per association (decision cache). */
  maxUdpDestinations: number;
}

export const DEFAULT_LIMITS: HandshakeLimits = {
  maxHeaderBytes: 32 * 1024,
  maxHeaderCount: 100,
  maxResponseHeaderBytes: 64 * 1024,
  maxConcurrentStreams: 100,
  maxUdpDestinations: 1024,
};

export interface FrontEndContext {
  readonly pipeline: Pipeline;
  readonly client: ClientFacts;
  readonly cert?: CertFacts;
  readonly limits: HandshakeLimits;
  /** The request is complete: the handshake deadline no longer applies. */
  handshakeDone(): void;
  /** Waiting for another request (HTTP keep-alive): the deadline applies again. */
  handshakeStart(): void;
  /** An unexpected failure (a bug or a pipeline error), never a client's misbehaviour. */
  reportError(err: unknown, where: string): void;
  /** A request refused as malformed before the pipeline saw it (audited, rate-limited). */
  reportMalformed(protocol: string, reason: string): void;
}
