// HTTP/2 with prior knowledge on plaintext (RFC 9113): node's http2 server fed with the
// detected socket. Each CONNECT stream (`:method CONNECT`, `:authority host:port`) is
// one tunnel: `:status 200` and the stream itself is the client side of the relay.
// Other methods are answered 400: plain requests over HTTP/2 are not proxied (yet).
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Refusal } from '../types.js';
import type { FrontEndContext, HandshakeLimits } from './frontend.js';
import { refusalAnswer } from './http-refusal.js';
import { parseAuthority } from './target.js';
import { runTunnel } from './tunnel.js';

export interface Http2FrontEnd {
  serve(socket: Socket, ctx: FrontEndContext): void;
  close(): void;
  /** handshake-timeout changed by a reload. */
  setTimeout(ms: number): void;
}

interface SessionState {
  ctx: FrontEndContext;
  open: number;
  idle?: NodeJS.Timeout;
}

export function createHttp2FrontEnd(
  limits: HandshakeLimits,
  handshakeTimeoutMs: number,
): Http2FrontEnd {
  let idleMs = handshakeTimeoutMs;
  const sessions = new Map<http2.ServerHttp2Session, SessionState>();
  let adopting: FrontEndContext | undefined;
  const server = http2.createServer({
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

  // The server creates the session synchronously inside emit('connection').
  server.on('session', (session) => {
    const ctx = adopting;
    if (ctx === undefined) {
      session.destroy();
      return;
    }
    const st: SessionState = { ctx, open: 0 };
    sessions.set(session, st);
    session.once('connect', () => session.setLocalWindowSize(32 * 1024 * 1024));
    session.on('error', () => {});
    session.once('close', () => {
      clearTimeout(st.idle);
      sessions.delete(session);
    });
  });

  server.on('stream', (stream, headers) => {
    const st = sessions.get(stream.session as http2.ServerHttp2Session);
    if (st === undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const { ctx } = st;
    ctx.handshakeDone();
    st.open++;
    clearTimeout(st.idle);
    stream.on('error', () => {});
    stream.once('close', () => {
      st.open--;
      // A connection with no stream left is closed after the handshake timeout, as an
      // idle HTTP/1.1 keep-alive connection is.
      if (st.open === 0 && !stream.session?.destroyed) {
        const session = stream.session;
        st.idle = setTimeout(() => session?.close(), idleMs);
        st.idle.unref();
      }
    });

    const refuse = (refusal: Refusal) => {
      if (stream.destroyed || stream.headersSent) {
        stream.destroy();
        return;
      }
      const answer = refusalAnswer(refusal, { isConnect: true, accept: headers.accept });
      const fields: http2.OutgoingHttpHeaders = { ':status': answer.status };
      for (const [name, value] of Object.entries(answer.headers))
        fields[name.toLowerCase()] = value;
      stream.respond(fields);
      stream.end(answer.body);
    };
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== undefined) {
      refuse({
        reason: 'bad-request',
        message: 'only CONNECT is proxied over HTTP/2 (use HTTP/1.1 for plain http:// requests)',
      });
      return;
    }
    const target = parseAuthority(headers[':authority'] ?? '', 443);
    if (target === null) {
      refuse({ reason: 'bad-request', message: 'CONNECT needs an :authority of host:port' });
      return;
    }
    runTunnel(
      ctx,
      { target, protocol: 'http', cmd: 'connect', client: ctx.client, cert: ctx.cert },
      {
        accept() {
          stream.respond({ ':status': 200 });
          return stream;
        },
        reject: refuse,
      },
    );
  });

  return {
    serve(socket, ctx) {
      adopting = ctx;
      try {
        server.emit('connection', socket);
      } finally {
        adopting = undefined;
      }
    },
    close() {
      for (const session of sessions.keys()) session.destroy();
      sessions.clear();
    },
    setTimeout(ms) {
      idleMs = ms;
    },
  };
}
