// HTTP/2 CONNECT (RFC 9113 8.5) to identity-aware HTTP backends. When the backend picks
// `h2` by ALPN, every tunnel to it is one stream of ONE pooled mutual-TLS connection:
// no TCP + TLS handshake per request, one client certificate signature (which costs a
// round trip to a PKCS#11 token) per connection rather than per request. When it picks
// `http/1.1` (or no ALPN), the caller speaks HTTP/1.1 CONNECT on that TLS socket.
//
// Flow control: Node's defaults (64 KiB per stream and per connection) would cap a
// download at 64 KiB per round trip. We advertise 8 MiB per stream and 32 MiB for the
// connection; Node only returns window as the relay consumes data, so a client that
// stops reading still stops the upstream (at most 8 MiB buffered per stream).
import type * as http2 from 'node:http2';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { formatHostPort } from '../../common/host-port.js';
import { abortError, raceAbort } from '../net/abort.js';
import { ConnectError, type Target } from '../types.js';
import { type TlsIdentity, tlsWrap } from './tls-identity.js';
import { errorForStatus, safeAuthority } from './upstream-http.js';

/** What we offer by ALPN to an identity-aware HTTP backend, preferred first. */
export const ALPN_OFFER = ['h2', 'http/1.1'];
/** What a backend with `http2 = false` is offered. */
export const HTTP1_ONLY = ['http/1.1'];
export const STREAM_WINDOW = 8 * 1024 * 1024;
export const SESSION_WINDOW = 32 * 1024 * 1024;
/**
 * A session without streams is closed after this long (the gateway closes sooner), or
 * after `idle-timeout` when that is shorter.
 */
export const IDLE_CLOSE_MS = 30_000;
/** After a CONNECT timed out, the session must answer a PING within this long (default). */
export const PING_TIMEOUT_MS = 5000;
/** How much of a refusal's body (the gateway's explanation) goes into the message. */
const MAX_REFUSAL_TEXT = 200;

// Error codes of RFC 9113 §7: node:http2 itself is loaded by the first HTTP/2 session
// (adopt, below), not by every daemon (docs/performance.md, "Footprint").
const NGHTTP2_REFUSED_STREAM = 0x7;
const NGHTTP2_CANCEL = 0x8;
const require = createRequire(import.meta.url);

/**
 * TLS over `stream` offering ALPN h2 and http/1.1, with the same rules as tlsWrap
 * (tls-identity.ts): our client certificate required, the backend's certificate always
 * verified against the identity's trust anchors and `serverName`.
 */
export function tlsWrapAlpn(
  stream: Duplex,
  identity: TlsIdentity,
  opts: { serverName: string; signal: AbortSignal; label: string },
): Promise<tls.TLSSocket> {
  return tlsWrap(stream, identity, { ...opts, alpn: ALPN_OFFER });
}

/** The backend reset our CONNECT stream without answering: about this destination only. */
export class StreamResetError extends ConnectError {}

/** True when the backend answered about the destination (it is healthy). */
export function isStreamAnswer(err: ConnectError): boolean {
  return err instanceof StreamResetError;
}

/** The pooled session died (or was going away) before our stream was answered. */
class SessionGoneError extends ConnectError {}

interface Entry {
  session: http2.ClientHttp2Session;
  /** Streams opened on it and not yet closed. */
  active: number;
  /** Set once the session must take no new stream (GOAWAY, close, failed PING). */
  retired: boolean;
  idle?: NodeJS.Timeout;
  idleCloseMs: number;
  pingTimeoutMs: number;
  /** A probing PING is in flight: no new stream until it is answered. */
  probing: boolean;
}

interface Slot {
  /** Sessions are only shared by requests with the same key and generation. */
  key: string;
  generation: object;
  entries: Set<Entry>;
  /** A dial in progress: later requests wait for it rather than dialling too. */
  pending?: Promise<Entry | null>;
}

export interface H2Request {
  /** The pool slot (the backend's name). */
  name: string;
  /**
   * What a session was made for (address, server name); a different key or generation
   * (the configuration object: a reload may have renewed the identity) retires the
   * slot's sessions: open streams finish, new ones go to a new session.
   */
  key: string;
  generation: object;
  /** The backend's host (TLS server name), for the session's default authority. */
  host: string;
  /** TCP + TLS offering ALPN_OFFER; its errors are passed through unchanged. */
  dial(signal: AbortSignal): Promise<tls.TLSSocket>;
  target: Target;
  /** For messages: `name (host:port)`. */
  proxy: string;
  /** The attempt's deadline (connect-timeout) and the client's abort. */
  signal: AbortSignal;
  /** A new session without streams is closed after this long (default IDLE_CLOSE_MS). */
  idleCloseMs?: number;
  /** A new session must answer a probing PING within this long (default PING_TIMEOUT_MS). */
  pingTimeoutMs?: number;
}

/** A tunnel on a pooled session, or the TLS socket of a backend that chose HTTP/1.1. */
export type H2Outcome = { tunnel: Duplex } | { http1: tls.TLSSocket };

export interface H2Pool {
  open(req: H2Request): Promise<H2Outcome>;
  /** Retire the sessions of slots `keep` rejects (reload: gone or changed backends). */
  retire(keep: (name: string, generation: object) => boolean): void;
  /** Sessions per slot that may still take streams (status, tests). */
  sessions(name: string): number;
  close(): void;
}

export function createH2Pool(): H2Pool {
  const slots = new Map<string, Slot>();

  const retireEntry = (e: Entry) => {
    if (!e.retired) {
      e.retired = true;
      // Graceful: GOAWAY, the open tunnels go on until they end.
      if (!e.session.closed && !e.session.destroyed) e.session.close();
    }
  };

  const retireSlot = (name: string, slot: Slot) => {
    for (const e of slot.entries) retireEntry(e);
    slots.delete(name);
  };

  const usable = (e: Entry) =>
    !e.retired &&
    !e.probing &&
    !e.session.closed &&
    !e.session.destroyed &&
    e.active < (e.session.remoteSettings.maxConcurrentStreams ?? 100);

  function adopt(slot: Slot, socket: tls.TLSSocket, host: string, req: H2Request): Entry {
    const { connect } = require('node:http2') as typeof http2;
    const session = connect(`https://${host}`, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
    });
    const e: Entry = {
      session,
      active: 0,
      retired: false,
      idleCloseMs: req.idleCloseMs ?? IDLE_CLOSE_MS,
      pingTimeoutMs: req.pingTimeoutMs ?? PING_TIMEOUT_MS,
      probing: false,
    };
    slot.entries.add(e);
    // Pooled sessions never keep the process alive: the tunnels' client sockets do.
    session.unref();
    session.once('connect', () => {
      try {
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        // Closed in the meantime: the streams learn it themselves.
      }
    });
    // A session error is reported to its streams; the session itself has nobody to tell.
    session.on('error', () => {});
    session.once('goaway', () => {
      e.retired = true;
    });
    session.once('close', () => {
      e.retired = true;
      clearTimeout(e.idle);
      slot.entries.delete(e);
    });
    idleLater(e);
    return e;
  }

  function idleLater(e: Entry) {
    clearTimeout(e.idle);
    if (e.active > 0) return;
    e.idle = setTimeout(() => retireEntry(e), e.idleCloseMs);
    e.idle.unref();
  }

  /** A PING must come back, else the path is dead: its streams are failed at once. */
  function probe(e: Entry) {
    if (e.session.destroyed || e.probing) return;
    // No new stream goes to a session under suspicion until it answers (usable()).
    e.probing = true;
    const dead = () => {
      clearTimeout(timer);
      e.session.destroy();
    };
    const timer = setTimeout(dead, e.pingTimeoutMs);
    timer.unref();
    try {
      e.session.ping((err) => {
        clearTimeout(timer);
        e.probing = false;
        // Answered: the destination was slow, not the path.
        if (err) dead();
      });
    } catch {
      dead();
    }
  }

  function connectStream(e: Entry, req: H2Request, a: string): Promise<Duplex> {
    const { proxy, signal } = req;
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = e.session.request({ ':method': 'CONNECT', ':authority': a }, { endStream: false });
      } catch (err) {
        e.retired = true;
        reject(
          new SessionGoneError('internal', `upstream proxy ${proxy}: ${(err as Error).message}`),
        );
        return;
      }
      e.active++;
      clearTimeout(e.idle);
      stream.once('close', () => {
        e.active--;
        idleLater(e);
      });
      // Errors after the hand-over go to the relay's own listener; this one only keeps
      // an error between our answer and the relay's start from being uncaught.
      stream.on('error', () => {});
      let done = false;
      let answered = false;
      const finish = (err: ConnectError | null) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
        if (err) {
          if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
          reject(err);
        } else resolve(stream);
      };
      const onResponse = (headers: http2.IncomingHttpHeaders) => {
        answered = true;
        const status = Number(headers[':status']);
        if (status >= 200 && status <= 299) {
          finish(null);
          return;
        }
        void refusalText(stream, signal).then((text) =>
          finish(errorForStatus(status, text, proxy)),
        );
      };
      const gone = () => {
        const s = e.session;
        const code = stream.rstCode;
        if (code === NGHTTP2_REFUSED_STREAM || s.closed || s.destroyed)
          return new SessionGoneError(
            'internal',
            `upstream proxy ${proxy}: the HTTP/2 connection ended before CONNECT was answered`,
          );
        return new StreamResetError(
          'unreachable',
          `upstream proxy ${proxy} reset the CONNECT stream (HTTP/2 error code ${code})`,
        );
      };
      const onError = () => answered || finish(gone());
      const onClose = () => answered || finish(gone());
      const onAbort = () => {
        // No answer in time may mean a silently dead path: check the connection.
        if (signal.reason instanceof ConnectError && signal.reason.reason === 'timeout') probe(e);
        finish(abortError(signal, `CONNECT through ${proxy}`));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      stream.on('response', onResponse);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }

  /** Dials a new connection; an h2 one joins the slot, an HTTP/1.1 one is the caller's. */
  async function dial(slot: Slot, req: H2Request): Promise<Entry | tls.TLSSocket> {
    let settle!: (e: Entry | null) => void;
    const pending = new Promise<Entry | null>((r) => {
      settle = r;
    });
    slot.pending = pending;
    try {
      const socket = await req.dial(req.signal);
      if (socket.alpnProtocol !== 'h2') {
        settle(null);
        return socket;
      }
      const e = adopt(slot, socket, formatHostPort({ host: req.host, port: 443 }), req);
      // The peer's SETTINGS (sent with its preface) say how many streams it takes:
      // before them, a burst of requests could all be queued on this one session.
      await settings(e, req);
      settle(e);
      return e;
    } catch (err) {
      settle(null);
      throw err;
    } finally {
      if (slot.pending === pending) slot.pending = undefined;
    }
  }

  function settings(e: Entry, req: H2Request): Promise<void> {
    const { session } = e;
    return new Promise((resolve, reject) => {
      const done = (err?: ConnectError) => {
        session.off('remoteSettings', onSettings);
        session.off('close', onClose);
        req.signal.removeEventListener('abort', onAbort);
        if (err) {
          session.destroy();
          reject(err);
        } else resolve();
      };
      const onSettings = () => done();
      const onClose = () =>
        done(
          new ConnectError(
            'internal',
            `upstream proxy ${req.proxy} closed the HTTP/2 connection before its SETTINGS`,
          ),
        );
      const onAbort = () => done(abortError(req.signal, `HTTP/2 to ${req.proxy}`));
      if (req.signal.aborted) return onAbort();
      if (session.destroyed || session.closed) return onClose();
      session.once('remoteSettings', onSettings);
      session.once('close', onClose);
      req.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  return {
    async open(req) {
      const a = safeAuthority(req.target);
      if (a === null) {
        throw new ConnectError(
          'internal',
          `invalid destination ${JSON.stringify(formatHostPort(req.target))}`,
        );
      }
      let slot = slots.get(req.name);
      if (slot && (slot.key !== req.key || slot.generation !== req.generation)) {
        retireSlot(req.name, slot);
        slot = undefined;
      }
      if (!slot) {
        slot = { key: req.key, generation: req.generation, entries: new Set() };
        slots.set(req.name, slot);
      }
      // A reused session that turns out dead gets one more try on a fresh one.
      for (let attempt = 0; ; attempt++) {
        let e = [...slot.entries].find(usable);
        let fresh = false;
        if (!e && slot.pending) {
          const got = await raceAbort(slot.pending, req.signal, `HTTP/2 to ${req.proxy}`);
          if (got && usable(got)) e = got;
        }
        if (!e) {
          const d = await dial(slot, req);
          if (d instanceof tls.TLSSocket) return { http1: d };
          e = d;
          fresh = true;
        }
        try {
          return { tunnel: await connectStream(e, req, a) };
        } catch (err) {
          if (err instanceof SessionGoneError && !fresh && attempt === 0) continue;
          throw err;
        }
      }
    },
    retire(keep) {
      for (const [name, slot] of [...slots])
        if (!keep(name, slot.generation)) retireSlot(name, slot);
    },
    sessions(name) {
      return [...(slots.get(name)?.entries ?? [])].filter((e) => !e.retired).length;
    },
    close() {
      for (const slot of slots.values()) {
        for (const e of slot.entries) e.session.destroy();
      }
      slots.clear();
    },
  };
}

/** The start of a refusal's body (the gateway says which policy denied), printable only. */
function refusalText(stream: http2.ClientHttp2Stream, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(done, 500);
    function done() {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', done);
      stream.off('close', done);
      signal.removeEventListener('abort', done);
      const line = text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
      resolve(
        line
          .replace(/[^\x20-\x7e]/g, '')
          .slice(0, MAX_REFUSAL_TEXT)
          .trim(),
      );
    }
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (text.length > MAX_REFUSAL_TEXT * 2) done();
    };
    stream.on('data', onData);
    stream.once('end', done);
    stream.once('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
