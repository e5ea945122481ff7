// The one relay every front-end uses (docs/reference/architecture.md, "The one path every
// connection takes"): two Duplexes, byte counters, half-close, backpressure, idle timeout,
// and one close callback. It sits on the byte path, so a chunk costs one addition and one
// write: no allocation, no audit, no timer refresh (idleness is sampled from the counters
// by a coarse timer instead).
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
//   (registry.ts), which call `detach()`, drop the entry without a close, and return
//   `{ relay: DetachedRelay, meta }` (meta = what the pipeline registered with it).
// - The next process adopts the descriptors — the upstream one preferably as
//   `relaySocket({ fd, readable: true, writable: true })` (fast-read.ts), so that its
//   downloads take the reused-buffer path again — and calls
//   `relay(client, upstream, { ..., initial: { bytesUp, bytesDown, startedAt }, traceId })`
//   after writing each side's `unread` bytes to the other side; add those lengths to the
//   initial counters (they had not been counted yet). The close record's `duration_ms`
//   then covers the whole connection, from `startedAt`.
import type { Duplex } from 'node:stream';
import { adoptReads, type ReadSink, readSinkOf } from '../net/fast-read.js';

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

// Memory per idle relay matters (thousands stay open): a relay is one object and two
// small Side objects. Its listeners are module-level functions shared by every relay
// (an emitter calls them with `this` = the socket, which points to its Side), the idle
// check is one interval per idle-timeout value for all relays, and `done` is only
// created when asked for.
const kSide = Symbol('portail.relay.side');

type Stream = Duplex & { [kSide]?: Side };

class Side {
  readEnded = false;
  writeFinished = false;
  closed = false;
  /** Set when this side is read into its own reused buffer (fast-read.ts). */
  sink: ReadSink | undefined;
  /** A write from that buffer to the other side is pending: reading waits for it. */
  stalled = false;
  /** The write callback in sink mode (one per side, not per chunk). */
  afterWrite: (() => void) | undefined;
  constructor(
    readonly relay: RelayImpl,
    readonly stream: Stream,
    readonly errorReason: CloseReason,
  ) {}
  get other(): Side {
    return this === this.relay.c ? this.relay.u : this.relay.c;
  }

  /** Reads this side into its reused buffer from now on. */
  useSink(sink: ReadSink) {
    this.sink = sink;
    const out = this.other.stream;
    this.afterWrite = () => {
      // Called for every write, in order: resume once the last pending one is done.
      if (this.stalled && out.writableLength === 0) {
        this.stalled = false;
        if (this.relay.reason === null && !this.relay.detached) this.stream.resume();
      }
    };
  }

  /** Sink mode: one chunk from this side's reused buffer, to the other side. */
  deliver(chunk: Buffer): boolean {
    const r = this.relay;
    if (this === r.c) r.bytesUp += chunk.length;
    else r.bytesDown += chunk.length;
    const out = this.other.stream;
    out.write(chunk, this.afterWrite);
    if (out.writableLength === 0) return true;
    this.stalled = true;
    return false;
  }
}

const sideOf = (s: Stream) => s[kSide] as Side;

function onClientData(this: Stream, chunk: Buffer) {
  const r = sideOf(this).relay;
  r.bytesUp += chunk.length;
  if (!r.u.stream.write(chunk)) this.pause();
}
function onUpstreamData(this: Stream, chunk: Buffer) {
  const r = sideOf(this).relay;
  r.bytesDown += chunk.length;
  if (!r.c.stream.write(chunk)) this.pause();
}
/** The upstream can take more: read the client again. */
function onUpstreamDrain(this: Stream) {
  const c = sideOf(this).relay.c;
  if (c.afterWrite) c.afterWrite();
  else c.stream.resume();
}
/** The client can take more: read the upstream again. */
function onClientDrain(this: Stream) {
  const u = sideOf(this).relay.u;
  if (u.afterWrite) u.afterWrite();
  else u.stream.resume();
}
function onEnd(this: Stream) {
  const side = sideOf(this);
  side.readEnded = true;
  // Half-close: pass the FIN on once everything before it was written.
  const o = side.other.stream;
  if (!o.writableEnded && !o.destroyed) o.end();
  side.relay.maybeComplete();
}
function onFinish(this: Stream) {
  const side = sideOf(this);
  side.writeFinished = true;
  side.relay.maybeComplete();
}
function onError(this: Stream, err: Error) {
  const side = sideOf(this);
  side.relay.firstError ??= err;
  side.relay.abort(side.errorReason);
}
function onClose(this: Stream) {
  const side = sideOf(this);
  side.closed = true;
  // Closed before both directions completed, without an error event: an abort
  // (HTTP/2 stream reset, destroy() by its owner).
  if (!(side.readEnded && side.writeFinished)) side.relay.abort(side.errorReason);
  else side.relay.maybeComplete();
  side.relay.maybeFinish();
}

const COMMON: Array<[string, (this: Stream, err: Error) => void]> = [
  ['end', onEnd],
  ['finish', onFinish],
  ['error', onError],
  ['close', onClose],
];

/** One interval per idle-timeout value, sampling every relay that uses it. */
const idleGroups = new Map<number, { relays: Set<RelayImpl> }>();

function watchIdle(r: RelayImpl, timeoutMs: number) {
  let g = idleGroups.get(timeoutMs);
  if (!g) {
    const relays = new Set<RelayImpl>();
    const step = Math.max(10, Math.floor(timeoutMs / IDLE_SAMPLES));
    const timer = setInterval(() => {
      // An empty group goes at its next tick, not when its last relay closes: a proxy
      // serving one connection after another would otherwise make a Set and a timer per
      // connection. (deadlines.ts removes its empty groups the same way.)
      if (relays.size === 0) {
        clearInterval(timer);
        idleGroups.delete(timeoutMs);
        return;
      }
      const now = performance.now();
      for (const x of relays) {
        const total = x.bytesUp + x.bytesDown;
        if (total !== x.lastTotal) {
          x.lastTotal = total;
          x.idleSince = now;
        } else if (now - x.idleSince >= timeoutMs) {
          // One relay's failure must not end the process nor spare the others.
          try {
            x.abort('idle_timeout');
          } catch (err) {
            process.emitWarning(`relay idle abort failed: ${(err as Error)?.stack ?? err}`);
          }
        }
      }
    }, step);
    timer.unref();
    g = { relays };
    idleGroups.set(timeoutMs, g);
  }
  r.lastTotal = r.bytesUp + r.bytesDown;
  r.idleSince = performance.now();
  g.relays.add(r);
}

function unwatchIdle(r: RelayImpl, timeoutMs: number) {
  idleGroups.get(timeoutMs)?.relays.delete(r);
}

class RelayImpl implements Relay {
  bytesUp: number;
  bytesDown: number;
  readonly startedAt: number;
  readonly c: Side;
  readonly u: Side;
  reason: CloseReason | null = null;
  firstError: Error | undefined;
  finished = false;
  detached = false;
  lastTotal = 0;
  idleSince = 0;
  private stats: RelayStats | undefined;
  private donePromise: Promise<RelayStats> | undefined;
  private resolveDone: ((s: RelayStats) => void) | undefined;

  constructor(
    client: Duplex,
    upstream: Duplex,
    private readonly opts: RelayOptions,
  ) {
    this.startedAt = opts.initial?.startedAt ?? Date.now();
    this.bytesUp = opts.initial?.bytesUp ?? 0;
    this.bytesDown = opts.initial?.bytesDown ?? 0;
    this.c = new Side(this, client, 'client_error');
    this.u = new Side(this, upstream, 'upstream_error');
    // Upstreams made by relaySocket() have a sink; an accepted client socket is
    // given one here when possible (fast-read.ts, adoptReads).
    const us = readSinkOf(upstream);
    if (us) this.u.useSink(us);
    const cs = readSinkOf(client) ?? adoptReads(client);
    if (cs) this.c.useSink(cs);
  }

  start() {
    const client = this.c.stream;
    const upstream = this.u.stream;
    client[kSide] = this.c;
    upstream[kSide] = this.u;
    // A FIN from one side must only end that direction: net.Socket created without
    // allowHalfOpen ends its writable side by itself. The flag is read when the FIN
    // arrives, so setting it here is enough whoever created the socket.
    for (const s of [client, upstream]) {
      if ('allowHalfOpen' in s) (s as { allowHalfOpen: boolean }).allowHalfOpen = true;
    }
    // Byte path: `pipe` semantics written out so that the counters cost nothing extra.
    // A side with a sink is read into its own reused buffer (stop-and-wait: reading
    // waits while a write from it is pending; on loopback and LANs the kernel takes a
    // whole chunk at once, so it rarely waits); the others with 'data' events.
    upstream.on('drain', onUpstreamDrain);
    client.on('drain', onClientDrain);
    for (const side of [this.c, this.u]) {
      const s = side.stream;
      if (side.sink) {
        // Bytes read before the relay took over (a server that speaks first, a
        // client that sent early).
        const out = side.other.stream;
        for (let b = s.read() as Buffer | null; b !== null; b = s.read()) {
          if (side === this.c) this.bytesUp += b.length;
          else this.bytesDown += b.length;
          out.write(b);
        }
        side.sink.attach(side);
      } else {
        s.on('data', side === this.c ? onClientData : onUpstreamData);
      }
    }
    for (const [event, fn] of COMMON) {
      client.on(event, fn);
      upstream.on(event, fn);
    }
    // A paused stream (a front-end's, or one a previous owner detached) stays paused
    // when a 'data' listener is added.
    client.resume();
    upstream.resume();
    if (this.opts.idleTimeoutMs > 0) watchIdle(this, this.opts.idleTimeoutMs);

    // A FIN read before the relay, with nothing left to read (a client that half-closed
    // right after its request, while the exit was connecting): Node emitted 'end' then,
    // to no listener. Passed on now, or the other side would wait for it forever.
    for (const side of [this.c, this.u]) {
      if (side.stream.readableEnded && !side.readEnded) onEnd.call(side.stream);
    }

    // A side that was already gone when the relay started (client left during connect).
    for (const side of [this.c, this.u]) {
      if (side.stream.destroyed) {
        side.closed = true;
        this.abort(side.errorReason);
      }
    }
    this.maybeFinish();
  }

  maybeComplete() {
    if (this.reason !== null) return;
    const { c, u } = this;
    if (c.readEnded && c.writeFinished && u.readEnded && u.writeFinished) {
      this.reason = 'completed';
      this.stopIdle();
      // Streams with autoDestroy close themselves now; the others are closed here.
      if (!c.stream.destroyed) c.stream.destroy();
      if (!u.stream.destroyed) u.stream.destroy();
    }
  }

  /**
   * First cause wins. Both peers get a reset rather than a FIN: a FIN would tell a
   * peer the data ended normally, and a truncated download could pass for complete.
   */
  abort(why: CloseReason) {
    if (this.reason !== null || this.detached) return;
    this.reason = why;
    this.stopIdle();
    for (const s of [this.c.stream, this.u.stream]) if (!s.destroyed) reset(s);
  }

  maybeFinish() {
    if (this.finished || !this.c.closed || !this.u.closed) return;
    this.finished = true;
    this.c.sink?.dispose();
    this.u.sink?.dispose();
    const stats: RelayStats = {
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Math.max(0, Date.now() - this.startedAt),
      closeReason: this.reason ?? 'completed',
    };
    if (this.firstError) stats.error = this.firstError;
    this.stats = stats;
    try {
      this.opts.onClose(stats);
    } finally {
      this.resolveDone?.(stats);
    }
  }

  private stopIdle() {
    if (this.opts.idleTimeoutMs > 0) unwatchIdle(this, this.opts.idleTimeoutMs);
  }

  get closed() {
    return this.finished;
  }

  get done(): Promise<RelayStats> {
    if (!this.donePromise) {
      this.donePromise = this.stats
        ? Promise.resolve(this.stats)
        : new Promise((r) => {
            this.resolveDone = r;
          });
    }
    return this.donePromise;
  }

  close(why: CloseReason) {
    this.abort(why);
  }

  detach(): DetachedRelay {
    if (this.detached) throw new Error('relay already detached');
    if (this.reason !== null || this.finished)
      throw new Error(`relay already closing (${this.reason})`);
    this.detached = true;
    this.stopIdle();
    const client = this.c.stream;
    const upstream = this.u.stream;
    for (const s of [client, upstream]) stopReading(s);
    this.c.sink?.release();
    this.u.sink?.release();
    client.removeListener('data', onClientData);
    upstream.removeListener('data', onUpstreamData);
    upstream.removeListener('drain', onUpstreamDrain);
    client.removeListener('drain', onClientDrain);
    for (const [event, fn] of COMMON) {
      client.removeListener(event, fn);
      upstream.removeListener(event, fn);
    }
    // Nothing of the relay stays reachable from the sockets (not deleted: a delete
    // would slow every later property access on them).
    client[kSide] = undefined;
    upstream[kSide] = undefined;
    for (const s of [client, upstream]) s.on('error', ignore);
    const d: DetachedRelay = {
      client,
      upstream,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      startedAt: this.startedAt,
    };
    if (this.opts.traceId !== undefined) d.traceId = this.opts.traceId;
    return d;
  }
}

export function relay(client: Duplex, upstream: Duplex, opts: RelayOptions): Relay {
  const r = new RelayImpl(client, upstream, opts);
  r.start();
  return r;
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
