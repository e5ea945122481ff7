// The proxy listener: takes accepted sockets from any net.Server (bound by the daemon
// or passed by systemd), detects the protocol from the first bytes without consuming
// them, and hands the socket to its front-end. It owns the two limits every protocol
// shares: the handshake deadline (first byte to complete request) and max-connections.
// Nothing here blocks: an idle client costs a deadline entry and a listener, never a wait.
import type { Socket } from 'node:net';
import type { PacEntry } from '../../common/pac.js';
import { addDeadline } from '../deadlines.js';
import { adoptReads } from '../net/fast-read.js';
import { socketIp } from '../net/ip.js';
import type { CertFacts, ClientFacts, Pipeline } from '../types.js';
import { answerAndClose, LINGER_MS } from './close.js';
import { DETECT_MAX_BYTES, type DetectedProtocol, detectProtocol } from './detect.js';
import { DEFAULT_LIMITS, type FrontEndContext, type HandshakeLimits } from './frontend.js';
import { type HandshakeReader, readHandshake } from './handshake-reads.js';
import { createHttp1FrontEnd } from './http1.js';
import { createHttp2FrontEnd } from './http2.js';
import { readProxyHeader } from './proxy-protocol.js';
import { serveSocks5 } from './socks5.js';
import type { ServeDecrypted } from './tls.js';

export interface ProxyListenerOptions {
  pipeline: Pipeline;
  /** `handshake-timeout`: first byte through to the complete request. */
  handshakeTimeoutMs: number;
  /** `max-connections`: open client connections beyond which new ones are refused. */
  maxConnections: number;
  /** Unexpected failures (pipeline errors, bugs), for the daemon's log. Client misbehaviour is not reported. */
  onError?: (err: Error, where: string) => void;
  /**
   * A connection refused because max-connections was reached (docs/configuration.md,
   * `max-connections`: refused, logged).
   */
  onRefused?: (client: { ip: string; port: number }) => void;
  /**
   * The TLS listener (gateway role, `[listener]` certificates, tls.ts): terminates TLS
   * and calls `serve` with the decrypted socket, which is then served by ALPN or
   * detected again (docs/reference/wire.md, "One port, four protocols"), under the same
   * handshake deadline and connection count. Without it TLS connections are closed.
   */
  onTls?: (socket: Socket, client: ClientFacts, serve: ServeDecrypted) => void;
  /** `[listener] proxy-protocol`: a PROXY v1/v2 header must come first (read at each connection). */
  proxyProtocol?: () => boolean;
  /** `[listener] require-tls`: plaintext SOCKS5/HTTP is closed on this listener. */
  requireTls?: () => boolean;
  /** A connection closed before any request for a reason worth auditing (bad PROXY header, plaintext refused). */
  onConnectionRefused?: (client: ClientFacts, reason: string) => void;
  /** A request refused because it was malformed (answered 400 / SOCKS 0x01 or closed), for the audit. */
  onMalformed?: (client: ClientFacts, protocol: string, reason: string) => void;
  limits?: Partial<HandshakeLimits>;
  /** `[pac] direct`, for GET /proxy.pac (read at each request). */
  pacDirect?: () => readonly PacEntry[];
}

export interface HandleOptions {
  /** `tls` when the socket is a TLS connection whose client certificate was verified. */
  auth?: ClientFacts['auth'];
  cert?: CertFacts;
}

export interface ProxyListener {
  handleSocket(socket: Socket, opts?: HandleOptions): void;
  /** Client connections open now (handshaking, relaying, keep-alive). */
  readonly active: number;
  /** Connections handed to handleSocket so far. */
  readonly accepted: number;
  /** Connections refused because max-connections was reached. */
  readonly refused: number;
  /** Connections closed because their handshake did not complete in time. */
  readonly handshakeTimeouts: number;
  /**
   * Per protocol detected on the accepted connection (a TLS connection counts as `tls`
   * whatever it carries): connections so far, and open now. Metrics read these.
   */
  readonly byProtocol: Readonly<Record<DetectedProtocol, ProtocolCounts>>;
  /** Destroys every open client connection (end of a graceful stop). */
  closeAll(): void;
  /**
   * A reload's new limits: new handshakes get the new deadline; max-connections
   * applies to the next connection (connections above a lowered limit stay open).
   */
  setLimits(limits: { handshakeTimeoutMs: number; maxConnections: number }): void;
}

export interface ProtocolCounts {
  accepted: number;
  active: number;
}

const OVERLOADED_MESSAGE = 'portail: too many connections, try again later\n';

export function createProxyListener(opts: ProxyListenerOptions): ProxyListener {
  const limits: HandshakeLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  let maxConnections = opts.maxConnections;
  const http1 = createHttp1FrontEnd(limits, opts.handshakeTimeoutMs, opts.pacDirect);
  const http2 = createHttp2FrontEnd(limits, opts.handshakeTimeoutMs);
  const open = new Set<Socket>();
  let accepted = 0;
  let refused = 0;
  let handshakeTimeouts = 0;
  const byProtocol: Record<DetectedProtocol, ProtocolCounts> = {
    socks5: { accepted: 0, active: 0 },
    http1: { accepted: 0, active: 0 },
    http2: { accepted: 0, active: 0 },
    tls: { accepted: 0, active: 0 },
  };
  /** Refused sockets still waiting for their answer to be read (bounded). */
  const lingering = new Set<Socket>();

  const reportError = (err: unknown, where: string) => {
    if (!opts.onError) return;
    try {
      opts.onError(err instanceof Error ? err : new Error(String(err)), where);
    } catch {
      // a logger failing must not take a connection down
    }
  };
  const reportMalformed = (client: ClientFacts, protocol: string, reason: string) => {
    try {
      opts.onMalformed?.(client, protocol, reason);
    } catch {
      // logging only
    }
  };
  const shared: Shared = {
    pipeline: opts.pipeline,
    limits,
    timeoutMs: opts.handshakeTimeoutMs,
    reportError,
    reportMalformed,
    onHandshakeTimeout(first) {
      // Only a first handshake counts: later ones are idle keep-alive connections.
      if (first) handshakeTimeouts++;
    },
  };

  function handleSocket(socket: Socket, hopts: HandleOptions = {}): void {
    accepted++;
    // Client resets are routine; the listener stays the last line of defence against
    // an unhandled 'error' whoever else listens.
    socket.on('error', ignore);
    const remoteAddress = socket.remoteAddress;
    if (socket.destroyed || remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    if (open.size >= maxConnections) {
      refused++;
      try {
        opts.onRefused?.({ ip: socketIp(remoteAddress), port: socket.remotePort ?? 0 });
      } catch {
        // logging only
      }
      refuseOverloaded(socket);
      return;
    }
    open.add(socket);
    // Reads into the shared buffer from the first byte on (net/fast-read.ts): a
    // handshake's small reads are copied out instead of each allocating a 64 KiB
    // buffer, and the relay later reads the same way. Everything else sees a plain
    // socket ('data', unshift, and native consumers — TLS, the HTTP parsers — which
    // take the handle over).
    adoptReads(socket);
    const client: ClientFacts = {
      ip: socketIp(remoteAddress),
      port: socket.remotePort ?? 0,
      localIp: socketIp(socket.localAddress ?? ''),
      localPort: socket.localPort ?? 0,
      auth: hopts.auth ?? 'none',
    };
    const ctx = new Connection(shared, socket, client, hopts.cert);
    // One listener for both: thousands of idle relays each keep what is registered here.
    socket.on('close', () => {
      open.delete(socket);
      ctx.clearDeadline();
      if (ctx.protocol !== undefined) byProtocol[ctx.protocol].active--;
    });
    ctx.handshakeStart();

    const detect = () =>
      readHead(socket, (protocol, read) => {
        ctx.protocol = protocol;
        const counts = byProtocol[protocol];
        counts.accepted++;
        counts.active++;
        route(protocol, socket, ctx, false, read);
      });
    if (!opts.proxyProtocol?.()) {
      detect();
      return;
    }
    // Before TLS and detection: the header names the client the balancer accepted.
    readProxyHeader(socket, (header) => {
      if ('error' in header) {
        refuseConnection(client, `PROXY protocol: ${header.error}`);
        socket.destroy();
        return;
      }
      if (header.kind === 'proxy') {
        client.ip = header.ip;
        client.port = header.port;
      }
      detect();
    });
  }

  function refuseConnection(client: ClientFacts, reason: string): void {
    try {
      opts.onConnectionRefused?.(client, reason);
    } catch {
      // logging only
    }
  }

  /** TLS is terminated once (never nested); plaintext is refused when require-tls says so. */
  /**
   * `read`: what detection read (absent when ALPN decided): the SOCKS5 front-end parses
   * it and goes on with the same reader; the others get the bytes back in the stream.
   */
  function route(
    protocol: DetectedProtocol,
    socket: Socket,
    ctx: FrontEndContext,
    decrypted: boolean,
    read?: DetectedHead,
  ): void {
    if (read !== undefined && protocol !== 'socks5') {
      read.reader.stop(read.head);
      undecideFlow(socket);
    }
    try {
      if (protocol === 'tls') {
        if (decrypted || !opts.onTls) {
          socket.destroy();
          return;
        }
        opts.onTls(socket, ctx.client, (tlsSocket, outcome) =>
          serveDecrypted(tlsSocket, socket, ctx, outcome),
        );
        return;
      }
      if (!decrypted && opts.requireTls?.()) {
        refuseConnection(ctx.client, `plaintext ${protocol} refused (require-tls)`);
        socket.destroy();
        return;
      }
      dispatch(protocol, socket, ctx, read);
    } catch (err) {
      reportError(err, `dispatch ${protocol}`);
      socket.destroy();
    }
  }

  /**
   * The decrypted side of a TLS connection: same deadline (still running since the
   * first byte), same slot in the connection count; ALPN decides, else detect again.
   */
  function serveDecrypted(
    tlsSocket: Socket,
    raw: Socket,
    outer: FrontEndContext,
    outcome: { auth: ClientFacts['auth']; cert?: CertFacts; alpn?: string },
  ): void {
    tlsSocket.on('error', ignore);
    tlsSocket.once('close', () => raw.destroy());
    // Same deadline (the outer connection's), the facts TLS established.
    const ctx: FrontEndContext = {
      pipeline: outer.pipeline,
      limits: outer.limits,
      client: { ...outer.client, auth: outcome.auth },
      cert: outcome.cert,
      handshakeDone: () => outer.handshakeDone(),
      handshakeStart: () => outer.handshakeStart(),
      reportError: (err, where) => outer.reportError(err, where),
      reportMalformed: (protocol, reason) => outer.reportMalformed(protocol, reason),
    };
    if (outcome.alpn === 'h2') route('http2', tlsSocket, ctx, true);
    else if (outcome.alpn === 'http/1.1') route('http1', tlsSocket, ctx, true);
    else readHead(tlsSocket, (protocol, read) => route(protocol, tlsSocket, ctx, true, read));
  }

  function dispatch(
    protocol: DetectedProtocol,
    socket: Socket,
    ctx: FrontEndContext,
    read?: DetectedHead,
  ): void {
    switch (protocol) {
      case 'socks5':
        // Only detection finds SOCKS5 (never ALPN), so `read` is always there.
        if (read === undefined) socket.destroy();
        else serveSocks5(socket, ctx, read.reader, read.head);
        return;
      case 'http2':
        http2.serve(socket, ctx);
        return;
      case 'http1':
        http1.serve(socket, ctx);
        return;
      case 'tls':
        socket.destroy(); // route() terminates TLS; never reached
        return;
    }
  }

  /**
   * Over max-connections: answer in the client's protocol when its first bytes arrive
   * soon (cheap), else close. SOCKS5 gets a general-failure reply, HTTP a 503, HTTP/2
   * a GOAWAY; lingering sockets are bounded so that a flood costs nothing more.
   */
  function refuseOverloaded(socket: Socket): void {
    if (lingering.size >= Math.max(64, maxConnections)) {
      socket.destroy();
      return;
    }
    lingering.add(socket);
    const timer = setTimeout(() => socket.destroy(), Math.min(shared.timeoutMs, LINGER_MS));
    timer.unref();
    socket.on('close', () => {
      lingering.delete(socket);
      clearTimeout(timer);
    });
    readHead(socket, (protocol, { head, reader }) => {
      reader.stop();
      answerAndClose(socket, overloadedAnswer(protocol, head));
    });
  }

  return {
    handleSocket,
    get active() {
      return open.size;
    },
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    byProtocol,
    get handshakeTimeouts() {
      return handshakeTimeouts;
    },
    setLimits(next) {
      maxConnections = next.maxConnections;
      shared.timeoutMs = next.handshakeTimeoutMs;
      http1.setTimeout(next.handshakeTimeoutMs);
      http2.setTimeout(next.handshakeTimeoutMs);
    },
    closeAll() {
      http2.close();
      for (const s of open) s.destroy();
      for (const s of lingering) s.destroy();
    },
  };
}

/** What every connection of one listener shares. */
interface Shared {
  readonly pipeline: Pipeline;
  readonly limits: HandshakeLimits;
  /** handshake-timeout, changed by setLimits (a reload). */
  timeoutMs: number;
  reportError(err: unknown, where: string): void;
  reportMalformed(client: ClientFacts, protocol: string, reason: string): void;
  onHandshakeTimeout(first: boolean): void;
}

/**
 * One client connection as its front-end sees it: the facts, and the handshake
 * deadline. A class rather than closures: an idle relay keeps it (through its close
 * listener), so its size is paid by every open connection.
 */
class Connection implements FrontEndContext {
  /** Cancels the handshake deadline (proxy/deadlines.ts: no timer per connection). */
  private cancel: (() => void) | undefined = undefined;
  private served = false;
  /** The protocol detected first (metrics: decremented on close). */
  protocol: DetectedProtocol | undefined = undefined;
  constructor(
    private readonly shared: Shared,
    private readonly socket: Socket,
    readonly client: ClientFacts,
    readonly cert: CertFacts | undefined,
  ) {}
  get pipeline() {
    return this.shared.pipeline;
  }
  get limits() {
    return this.shared.limits;
  }
  handshakeDone(): void {
    this.served = true;
    this.clearDeadline();
  }
  handshakeStart(): void {
    this.cancel?.();
    this.cancel = addDeadline(this.shared.timeoutMs, () => this.expired());
  }
  clearDeadline(): void {
    if (this.cancel === undefined) return;
    this.cancel();
    this.cancel = undefined;
  }
  expired(): void {
    this.cancel = undefined;
    this.shared.onHandshakeTimeout(!this.served);
    this.socket.destroy();
  }
  reportError(err: unknown, where: string): void {
    this.shared.reportError(err, where);
  }
  reportMalformed(protocol: string, reason: string): void {
    this.shared.reportMalformed(this.client, protocol, reason);
  }
}

/**
 * Reads until the protocol is known (at most 24 bytes matter), in the read's own
 * callback (handshake-reads.ts). `then` must hand the reader on: stop it with the head
 * given back (every protocol but SOCKS5), or give it to the SOCKS5 front-end, which
 * parses `head` and goes on reading. A client that closes first is closed.
 */
function readHead(socket: Socket, then: (protocol: DetectedProtocol, read: DetectedHead) => void) {
  let head: Buffer = EMPTY;
  const reader = readHandshake(socket, (chunk) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const protocol = detectProtocol(head.subarray(0, DETECT_MAX_BYTES));
    if (protocol !== undefined) then(protocol, { head, reader });
  });
}

/** The bytes detection read, and the reader that read them (to stop or hand on). */
interface DetectedHead {
  head: Buffer;
  reader: HandshakeReader;
}
const EMPTY = Buffer.alloc(0);

/**
 * Node's servers fed with emit('connection') (HTTP/1.1, HTTP/2, TLS) expect a socket
 * that is not explicitly paused: one whose flow starts when they add a 'data' listener,
 * or whose buffered bytes they read() at once. Adding and removing a 'readable'
 * listener is Readable's public way back to that state.
 */
function undecideFlow(socket: Socket): void {
  socket.on('readable', ignore);
  socket.removeListener('readable', ignore);
}

function overloadedAnswer(protocol: DetectedProtocol, head: Buffer): Buffer | undefined {
  switch (protocol) {
    case 'socks5': {
      // Method negotiation must succeed before a reply code can be sent.
      const count = head[1] ?? 0;
      const offered = head.subarray(2, 2 + count);
      if (head.length < 2 + count || count === 0 || !offered.includes(0x00)) {
        return Buffer.from([0x05, 0xff]);
      }
      return Buffer.from([0x05, 0x00, 0x05, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    }
    case 'http2':
      return http2Goaway();
    case 'http1':
      return Buffer.from(
        'HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(OVERLOADED_MESSAGE)}\r\nRetry-After: 1\r\n` +
          `Connection: close\r\n\r\n${OVERLOADED_MESSAGE}`,
        'latin1',
      );
    default:
      return undefined;
  }
}

/** Server preface (empty SETTINGS) then GOAWAY(last stream 0, REFUSED_STREAM): no stream was processed. */
function http2Goaway(): Buffer {
  const settings = Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
  const goaway = Buffer.alloc(9 + 8);
  goaway.writeUIntBE(8, 0, 3);
  goaway[3] = 0x07; // GOAWAY
  goaway.writeUInt32BE(0, 5); // stream 0
  goaway.writeUInt32BE(0, 9); // last stream id
  goaway.writeUInt32BE(0x07, 13); // REFUSED_STREAM
  return Buffer.concat([settings, goaway]);
}

function ignore() {}
