// The one relay every front-end uses (ARCHITECTURE.md): two Duplexes, byte counters,
// half-close, backpressure, idle timeout, and one close callback. It sits on the byte
// path, so a chunk costs one addition and one write: no allocation, no audit, no timer
// refresh (idleness is sampled from the counters by a coarse timer instead).
import type { Duplex } from 'node:stream';

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
}

export interface Relay {
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly closed: boolean;
  /** Closes both sides now (no-op once closed). */
  close(reason: CloseReason): void;
  /** Resolves once both sides are closed and onClose ran. */
  readonly done: Promise<RelayStats>;
}

/** Idleness is checked this many times per idle-timeout: detection within +1/8 of it. */
const IDLE_SAMPLES = 8;

interface Side {
  stream: Duplex;
  readEnded: boolean;
  writeFinished: boolean;
  closed: boolean;
}

export function relay(client: Duplex, upstream: Duplex, opts: RelayOptions): Relay {
  const started = performance.now();
  let bytesUp = 0;
  let bytesDown = 0;
  let reason: CloseReason | null = null;
  let firstError: Error | undefined;
  let finished = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let resolveDone!: (s: RelayStats) => void;
  const done = new Promise<RelayStats>((r) => {
    resolveDone = r;
  });

  const c: Side = { stream: client, readEnded: false, writeFinished: false, closed: false };
  const u: Side = { stream: upstream, readEnded: false, writeFinished: false, closed: false };

  // A FIN from one side must only end that direction: net.Socket created without
  // allowHalfOpen ends its writable side by itself. The flag is read when the FIN
  // arrives, so setting it here is enough whoever created the socket.
  for (const s of [client, upstream]) {
    if ('allowHalfOpen' in s) (s as { allowHalfOpen: boolean }).allowHalfOpen = true;
  }

  // Byte path. `pipe` semantics written out so that the counters cost nothing extra.
  const onClientData = (chunk: Buffer) => {
    bytesUp += chunk.length;
    if (!upstream.write(chunk)) client.pause();
  };
  const onUpstreamData = (chunk: Buffer) => {
    bytesDown += chunk.length;
    if (!client.write(chunk)) upstream.pause();
  };
  client.on('data', onClientData);
  upstream.on('data', onUpstreamData);
  upstream.on('drain', () => client.resume());
  client.on('drain', () => upstream.resume());

  function wire(side: Side, other: Side, errorReason: CloseReason) {
    const s = side.stream;
    s.on('end', () => {
      side.readEnded = true;
      // Half-close: pass the FIN on once everything before it was written.
      if (!other.stream.writableEnded && !other.stream.destroyed) other.stream.end();
      maybeComplete();
    });
    s.on('finish', () => {
      side.writeFinished = true;
      maybeComplete();
    });
    s.on('error', (err: Error) => {
      firstError ??= err;
      abort(errorReason);
    });
    s.on('close', () => {
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
    if (reason !== null) return;
    reason = why;
    stopIdle();
    for (const s of [client, upstream]) if (!s.destroyed) reset(s);
  }

  function maybeFinish() {
    if (finished || !c.closed || !u.closed) return;
    finished = true;
    const stats: RelayStats = {
      bytesUp,
      bytesDown,
      durationMs: Math.round(performance.now() - started),
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
  };
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
