// HTTP/2 with prior knowledge on plaintext (RFC 9113): node's http2 server fed with the
// detected socket. Each CONNECT stream (`:method CONNECT`, `:authority host:port`) is
// one tunnel: `:status 200` and the stream itself is the client side of the relay.
// Other methods are answered 400: plain requests over HTTP/2 are not proxied (yet).
//
// A session's frames are parsed in one go per read, so a stream can be created and its
// session destroyed (GOAWAY, a protocol error) before its handler runs, or reset before
// it is answered: every object gets its 'error' listener first, and nothing is written
// to a stream or session without checking it is still there. Deadlines for every state
// are in docs/security.md ("HTTP/2").

import type * as http2 from 'node:http2';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Refusal } from '../types.js';
import { LINGER_MS } from './close.js';
import type { FrontEndContext, HandshakeLimits } from './frontend.js';
import { refusalAnswer } from './http-refusal.js';
import { parseAuthority } from './target.js';
import { runTunnel } from './tunnel.js';

export interface Http2FrontEnd {
  serve(socket: Socket, ctx: FrontEndContext): void;
  close(): void;
  /** handshake-timeout changed by a reload. */
  setTimeout(ms: number): void;
  /** Sessions open now (for tests and leak checks). */
  readonly sessions: number;
}

/**
 * How long a closing session may take to deliver what it has queued (GOAWAY sent, or the
 * client's FIN received) before its socket is destroyed; also how long a refused stream
 * may stay open after its answer.
 */
export const CLOSE_GRACE_MS = LINGER_MS;

// Error codes of RFC 9113 §7 (node:http2's constants, which are only loaded with the
// server: below).
const NGHTTP2_NO_ERROR = 0x0;
const NGHTTP2_REFUSED_STREAM = 0x7;
const NGHTTP2_CANCEL = 0x8;

const require = createRequire(import.meta.url);

interface SessionState {
  ctx: FrontEndContext;
  socket: Socket;
  /** Streams not closed yet. */
  open: number;
  /** The idle deadline, then the close grace (one at a time). */
  timer?: NodeJS.Timeout;
  /** The close grace is running: nothing re-arms a longer deadline. */
  closing: boolean;
}

export function createHttp2FrontEnd(
  limits: HandshakeLimits,
  handshakeTimeoutMs: number,
): Http2FrontEnd {
  let idleMs = handshakeTimeoutMs;
  const sessions = new Map<http2.ServerHttp2Session, SessionState>();
  let adopting: { socket: Socket; ctx: FrontEndContext } | undefined;
  // node:http2 and the server are created on the first HTTP/2 connection: a daemon
  // that never sees one does not load them (docs/performance.md, "Footprint").
  let server: http2.Http2Server | undefined;
  const createServer = (): http2.Http2Server => {
    const { createServer } = require('node:http2') as typeof http2;
    const created = createServer({
      maxHeaderListPairs: limits.maxHeaderCount,
      maxSessionMemory: 10,
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderBytes,
        enablePush: false,
        // Node's default 64 KiB windows make a CONNECT stream's uploads ~8x slower than an
        // HTTP/1.1 tunnel; 8 MiB per stream (32 MiB per connection, below) keeps pace.
        initialWindowSize: 8 * 1024 * 1024,
      },
    });
    // Without a listener these are dropped; with one, a bug in it would be the server's.
    created.on('sessionError', ignore);
    created.on('session', onSession);
    created.on('stream', onStream);
    return created;
  };

  const destroy = (session: http2.ServerHttp2Session, st: SessionState) => {
    clearTimeout(st.timer);
    // A gracefully closed session only ends its socket (FIN) and waits for the peer's:
    // the socket itself is destroyed so that a silent peer cannot hold it.
    session.destroy();
    st.socket.destroy();
  };

  /** GOAWAY now; the socket is destroyed after the grace whatever the streams do. */
  const closeWithGrace = (session: http2.ServerHttp2Session, st: SessionState) => {
    if (st.closing) return;
    st.closing = true;
    clearTimeout(st.timer);
    st.timer = setTimeout(() => destroy(session, st), CLOSE_GRACE_MS);
    st.timer.unref();
    session.close();
  };

  /** After a stream closed: a session with none left is closed after the idle deadline. */
  const settle = (session: http2.ServerHttp2Session, st: SessionState) => {
    if (session.destroyed || st.closing) return;
    if (session.closed) {
      // Closing at the client's request (GOAWAY): done once its last stream is.
      if (st.open === 0) closeWithGrace(session, st);
      return;
    }
    if (st.open > 0) return;
    clearTimeout(st.timer);
    // As an idle HTTP/1.1 keep-alive connection is.
    st.timer = setTimeout(() => closeWithGrace(session, st), idleMs);
    st.timer.unref();
  };

  // The server creates the session synchronously inside emit('connection').
  const onSession = (session: http2.ServerHttp2Session) => {
    session.on('error', ignore);
    const adopted = adopting;
    if (adopted === undefined) {
      session.destroy();
      return;
    }
    const st: SessionState = { ctx: adopted.ctx, socket: adopted.socket, open: 0, closing: false };
    sessions.set(session, st);
    // Emitted a tick later: the session may be gone by then (frames already buffered).
    session.once('connect', () => {
      if (session.destroyed || session.closed) return;
      try {
        session.setLocalWindowSize(32 * 1024 * 1024);
      } catch {
        // the session went away in between
      }
    });
    // The client's GOAWAY: node closes the session (NO_ERROR) or destroys it.
    session.on('goaway', () => settle(session, st));
    // A FIN from the client (allowHalfOpen): no frame can follow, not even a
    // WINDOW_UPDATE: what is queued gets the grace, then the socket goes.
    adopted.socket.once('end', () => {
      if (!session.destroyed) closeWithGrace(session, st);
    });
    session.once('close', () => {
      clearTimeout(st.timer);
      sessions.delete(session);
    });
  };

  const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    // First: the session may already be destroyed, and the stream's 'error' with it.
    stream.on('error', ignore);
    const session = stream.session as http2.ServerHttp2Session | undefined;
    const st = session === undefined ? undefined : sessions.get(session);
    if (session === undefined || st === undefined || session.destroyed) {
      closeStream(stream, NGHTTP2_REFUSED_STREAM);
      return;
    }
    const { ctx } = st;
    ctx.handshakeDone();
    // A stream keeps its session open while the pipeline decides and while it is a
    // tunnel (bounded by the relay's idle-timeout); a refused one no longer does, as
    // its own close may never come (a stuck peer): the session's deadlines, which end
    // in destroying the socket, apply from the refusal on.
    st.open++;
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      st.open--;
      settle(session, st);
    };
    if (!st.closing) clearTimeout(st.timer);
    let linger: NodeJS.Timeout | undefined;
    stream.once('close', () => {
      clearTimeout(linger);
      release();
    });

    const refuse = (refusal: Refusal) => {
      if (!answerable(stream)) {
        stream.destroy();
        return;
      }
      const answer = refusalAnswer(refusal, { isConnect: true, accept: headers.accept });
      const fields: http2.OutgoingHttpHeaders = { ':status': answer.status };
      for (const [name, value] of Object.entries(answer.headers))
        fields[name.toLowerCase()] = value;
      try {
        stream.respond(fields);
        // The client's side of the stream stays open until it ends or resets it: once
        // the answer is out, reset it (NO_ERROR, RFC 9113 §8.1), and at the latest
        // after the grace (a client whose window stays shut), so that none holds it.
        stream.end(answer.body, () => closeStream(stream, NGHTTP2_NO_ERROR));
      } catch {
        stream.destroy();
        return;
      }
      linger = setTimeout(() => {
        closeStream(stream, NGHTTP2_CANCEL);
        if (!stream.destroyed) stream.destroy();
      }, CLOSE_GRACE_MS);
      linger.unref();
      release();
    };
    // Refused before the pipeline saw it: audited as malformed (rate-limited).
    const bad = (message: string) => {
      ctx.reportMalformed('http2', message);
      refuse({ reason: 'bad-request', message });
    };
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== undefined) {
      bad('only CONNECT is proxied over HTTP/2 (use HTTP/1.1 for plain http:// requests)');
      return;
    }
    const target = parseAuthority(headers[':authority'] ?? '', 443);
    if (target === null) {
      bad('CONNECT needs an :authority of host:port');
      return;
    }
    runTunnel(
      ctx,
      { target, protocol: 'http', cmd: 'connect', client: ctx.client, cert: ctx.cert },
      {
        accept() {
          // The pipeline closes its exit when this throws (client gone before the reply).
          if (!answerable(stream)) throw new Error('HTTP/2 stream closed before the reply');
          stream.respond({ ':status': 200 });
          return stream;
        },
        reject: refuse,
      },
    );
  };

  return {
    serve(socket, ctx) {
      adopting = { socket, ctx };
      server ??= createServer();
      try {
        server.emit('connection', socket);
      } finally {
        adopting = undefined;
      }
    },
    close() {
      for (const [session, st] of sessions) destroy(session, st);
      sessions.clear();
    },
    setTimeout(ms) {
      idleMs = ms;
    },
    get sessions() {
      return sessions.size;
    },
  };
}

/**
 * Can headers still be sent on this stream? A reset or a destroyed session says no; a
 * session closing at the client's GOAWAY still answers the streams it had opened.
 */
function answerable(stream: http2.ServerHttp2Stream): boolean {
  const session = stream.session;
  return (
    !stream.destroyed &&
    !stream.closed &&
    !stream.headersSent &&
    session !== undefined &&
    !session.destroyed
  );
}

function closeStream(stream: http2.ServerHttp2Stream, code: number): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.session === undefined || stream.session.destroyed) {
    stream.destroy();
    return;
  }
  try {
    stream.close(code);
  } catch {
    stream.destroy();
  }
}

function ignore() {}
