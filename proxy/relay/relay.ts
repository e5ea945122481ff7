// The one relay every front-end uses (ARCHITECTURE.md): two Duplexes, byte counters,
// half-close, backpressure, idle timeout, and one close callback. It sits on the byte
// path, so a chunk costs one addition and one write: no allocation, no audit, no timer
// refresh (idleness is sampled from the counters by a coarse timer instead).
//
// Hand-over to the next process (systemd restart):
// - `relay.detach()` stops reading on both sides, removes every listener and timer the
//   relay added (one no-op 'error' listener stays on each socket so that a late reset
//   cannot crash the old process), never ends, resets or destroys a socket, never calls
//   `onClose` (no close record: the connection goes on elsewhere), and returns the two
//   sockets with the counters, the start time (epoch ms) and `traceId`. Writes already
//   queued keep flushing; bytes read but not yet relayed stay in the socket's readable
//   buffer, for `detachSockets()` (systemd/fdstore.ts) to take out as `unread`. After
//   detach, `close()` is a no-op and `done` never resolves.
// - Unregister at the same time with `registry.detach(relay)` or `registry.detachAll()`
//   (registry.ts), which call `detach()` and drop the entry without a close.
// - The next process adopts the descriptors and calls
//   `relay(client, upstream, { ..., initial: { bytesUp, bytesDown, startedAt }, traceId })`
//   after writing each side's `unread` bytes to the other side; add those lengths to the
//   initial counters (they had not been counted yet). The close record's `duration_ms`
//   then covers the whole connection, from `startedAt`.
import type { Duplex } from 'node:stream';
import { readSinkOf } from './fast-read.js';

/**
 * Why a relay ended (the audit record's `close_reason`):
 * - `completed`: both sides ended their direction normally (FIN both ways);
 * - `client_error` / `upstream_error`: that side failed or was reset/destroyed early;
 * - `idle_timeout`: no byte either way for `idle-timeout`;
 * - `policy_changed`: a reload's rules no longer allow it;
 * - `shutdown`: the daemon stopped and the grace period ran out.
 */
export type CloseReason =
  | 'completed'
  | 'client_error'
  | 'upstream_error'
  | 'idle_timeout'
  | 'policy_changed'
  | 'shutdown';

export interface RelayStats {
  /** Client → upstream. */
  bytesUp: number;
  /** Upstream → client. */
  bytesDown: number;
  durationMs: number;
  closeReason: CloseReason;
  /** The first error seen, for diagnostics (never written to the client). */
  error?: Error;
}

export interface RelayOptions {
  /** No byte either way for this long closes the relay; 0 = never. */
  idleTimeoutMs: number;
  onClose(stats: RelayStats): void;
  /** Counters and start (epoch ms) of a relay adopted from a previous process. */
  initial?: { bytesUp: number; bytesDown: number; startedAt: number };
  /** Carried through a hand-over (returned by `detach()`). */
  traceId?: string;
}

/** What `detach()` hands over: both sockets, untouched, and where the counters were. */
export interface DetachedRelay {
  client: Duplex;
  upstream: Duplex;
  bytesUp: number;
  bytesDown: number;
  /** Epoch milliseconds. */
  startedAt: number;
  traceId?: string;
}

export interface Relay {
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly closed: boolean;
  /** Closes both sides now (no-op once closed). */
  close(reason: CloseReason): void;
  /** Resolves once both sides are closed and onClose ran (never after detach()). */
  readonly done: Promise<RelayStats>;
  /**
   * Stops relaying without closing anything, for a hand-over (see the top of this file).
   * Throws once the relay has closed or was already detached.
   */
  detach(): DetachedRelay;
}

/** Idleness is checked this many times per idle-timeout: detection within +1/8 of it. */
const IDLE_SAMPLES = 8;

// biome-ignore lint/suspicious/noExplicitAny: a listener of any event
type Listener = (...args: any[]) => void;

interface Side {
  stream: Duplex;
  readEnded: boolean;
  writeFinished: boolean;
  closed: boolean;
}

export function relay(client: Duplex, upstream: Duplex, opts: RelayOptions): Relay {
  const startedAt = opts.initial?.startedAt ?? Date.now();
  let bytesUp = opts.initial?.bytesUp ?? 0;
  let bytesDown = opts.initial?.bytesDown ?? 0;
  let reason: CloseReason | null = null;
  let firstError: Error | undefined;
  let finished = false;
  let detached = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let resolveDone!: (s: RelayStats) => void;
  const done = new Promise<RelayStats>((r) => {
    resolveDone = r;
  });

  const c: Side = { stream: client, readEnded: false, writeFinished: false, closed: false };
  const u: Side = { stream: upstream, readEnded: false, writeFinished: false, closed: false };

  // Every listener the relay adds, so that detach() can take them all back.
  const added: Array<[Duplex, string, Listener]> = [];
  const on = (s: Duplex, event: string, fn: Listener) => {
    s.on(event, fn);
    added.push([s, event, fn]);
  };

  // A FIN from one side must only end that direction: net.Socket created without
  // allowHalfOpen ends its writable side by itself. The flag is read when the FIN
  // arrives, so setting it here is enough whoever created the socket.
  for (const s of [client, upstream]) {
    if ('allowHalfOpen' in s) (s as { allowHalfOpen: boolean }).allowHalfOpen = true;
  }

  // Byte path. `pipe` semantics written out so that the counters cost nothing extra.
  on(client, 'data', (chunk: Buffer) => {
    bytesUp += chunk.length;
    if (!upstream.write(chunk)) client.pause();
  });
  on(upstream, 'drain', () => client.resume());

  // Downstream (the bulk of most transfers): from the upstream's own reused buffer when
  // the connector made it with relaySocket(), else 'data' events. With one buffer,
  // reading waits while a write from it is pending (stop-and-wait; on loopback and
  // LANs the kernel takes a whole chunk at once, so it rarely waits).
  const sink = readSinkOf(upstream);
  let stalled = false;
  const afterDown = () => {
    // Called for every write, in order: resume once the last pending one is done.
    if (stalled && client.writableLength === 0) {
      stalled = false;
      if (reason === null && !detached) upstream.resume();
    }
  };
  const deliver = (chunk: Buffer): boolean => {
    bytesDown += chunk.length;
    client.write(chunk, afterDown);
    if (client.writableLength === 0) return true;
    stalled = true;
    return false;
  };
  if (sink) {
    // Bytes the socket read before the relay took over (a server that speaks first).
    for (
      let b = upstream.read() as Buffer | null;
      b !== null;
      b = upstream.read() as Buffer | null
    ) {
      bytesDown += b.length;
      client.write(b);
    }
    sink.attach(deliver);
    on(client, 'drain', afterDown);
  } else {
    on(upstream, 'data', (chunk: Buffer) => {
      bytesDown += chunk.length;
      if (!client.write(chunk)) upstream.pause();
    });
    on(client, 'drain', () => upstream.resume());
  }
  // A paused stream (a front-end's, or one a previous owner detached) stays paused
  // when a 'data' listener is added.
  client.resume();
  upstream.resume();

  function wire(side: Side, other: Side, errorReason: CloseReason) {
    const s = side.stream;
    on(s, 'end', () => {
      side.readEnded = true;
      // Half-close: pass the FIN on once everything before it was written.
      if (!other.stream.writableEnded && !other.stream.destroyed) other.stream.end();
      maybeComplete();
    });
    on(s, 'finish', () => {
      side.writeFinished = true;
      maybeComplete();
    });
    on(s, 'error', (err: Error) => {
      firstError ??= err;
      abort(errorReason);
    });
    on(s, 'close', () => {
      side.closed = true;
      // Closed before both directions completed, without an error event: an abort
      // (HTTP/2 stream reset, destroy() by its owner).
      if (!(side.readEnded && side.writeFinished)) abort(errorReason);
      else maybeComplete();
      maybeFinish();
    });
  }
  wire(c, u, 'client_error');
  wire(u, c, 'upstream_error');

  function maybeComplete() {
    if (reason !== null) return;
    if (c.readEnded && c.writeFinished && u.readEnded && u.writeFinished) {
      reason = 'completed';
      stopIdle();
      // Streams with autoDestroy close themselves now; the others are closed here.
      if (!client.destroyed) client.destroy();
      if (!upstream.destroyed) upstream.destroy();
    }
  }

  /**
   * First cause wins. Both peers get a reset rather than a FIN: a FIN would tell a
   * peer the data ended normally, and a truncated download could pass for complete.
   */
  function abort(why: CloseReason) {
    if (reason !== null || detached) return;
    reason = why;
    stopIdle();
    for (const s of [client, upstream]) if (!s.destroyed) reset(s);
  }

  function maybeFinish() {
    if (finished || !c.closed || !u.closed) return;
    finished = true;
    sink?.dispose();
    const stats: RelayStats = {
      bytesUp,
      bytesDown,
      durationMs: Math.max(0, Date.now() - startedAt),
      closeReason: reason ?? 'completed',
    };
    if (firstError) stats.error = firstError;
    try {
      opts.onClose(stats);
    } finally {
      resolveDone(stats);
    }
  }

  // Idle timeout: sample the counters; no per-chunk timer work.
  if (opts.idleTimeoutMs > 0) {
    const step = Math.max(10, Math.floor(opts.idleTimeoutMs / IDLE_SAMPLES));
    let lastTotal = -1;
    let idleSince = performance.now();
    const check = () => {
      const total = bytesUp + bytesDown;
      const now = performance.now();
      if (total !== lastTotal) {
        lastTotal = total;
        idleSince = now;
      } else if (now - idleSince >= opts.idleTimeoutMs) {
        abort('idle_timeout');
        return;
      }
      idleTimer = setTimeout(check, step);
      idleTimer.unref();
    };
    idleTimer = setTimeout(check, step);
    idleTimer.unref();
  }
  function stopIdle() {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
  }

  // A side that was already gone when the relay started (client left during connect).
  for (const [side, why] of [
    [c, 'client_error'],
    [u, 'upstream_error'],
  ] as const) {
    if (side.stream.destroyed) {
      side.closed = true;
      abort(why);
    }
  }
  maybeFinish();

  return {
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get closed() {
      return finished;
    },
    close(why: CloseReason) {
      abort(why);
    },
    done,
    detach() {
      if (detached) throw new Error('relay already detached');
      if (reason !== null || finished) throw new Error(`relay already closing (${reason})`);
      detached = true;
      stopIdle();
      for (const s of [client, upstream]) stopReading(s);
      sink?.release();
      for (const [s, event, fn] of added) s.removeListener(event, fn);
      added.length = 0;
      for (const s of [client, upstream]) s.on('error', ignore);
      const d: DetachedRelay = { client, upstream, bytesUp, bytesDown, startedAt };
      if (opts.traceId !== undefined) d.traceId = opts.traceId;
      return d;
    },
  };
}

function ignore() {}

/**
 * Stops reading from the kernel now, not only the stream's flow (a paused net.Socket
 * keeps reading into its buffer up to the high-water mark otherwise). The stream is
 * left able to restart: a later resume() or read() starts the handle again.
 */
function stopReading(s: Duplex) {
  s.pause();
  const h = (s as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (h && typeof h.readStop === 'function' && h.reading) {
    h.readStop();
    h.reading = false;
    // A read was outstanding (no push yet); without this, read(0) would not restart it.
    const state = (s as unknown as { _readableState?: { reading: boolean } })._readableState;
    if (state) state.reading = false;
  }
}

/** Abortive close (RST) for TCP sockets, so the peer sees the failure; plain destroy otherwise. */
function reset(s: Duplex) {
  const sock = s as Duplex & { resetAndDestroy?: () => void };
  if (typeof sock.resetAndDestroy === 'function') {
    try {
      sock.resetAndDestroy();
      return;
    } catch {
      // Not a TCP handle (TLS, pipe): fall through.
    }
  }
  s.destroy();
}
