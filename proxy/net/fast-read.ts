// Reading a relay's sockets into one reused buffer each (net.Socket `onread`) instead
// of a fresh Buffer per read: no allocation, no GC, the same cache-hot memory every
// time, and with 256 KiB fewer system calls (docs/performance.md has the figures).
//
// `onread` is given when a socket is created: connectors that want the fast path
// create their sockets with relaySocket(). An accepted client socket is adopted
// afterwards (adoptReads(): the listener does it at accept, the relay for any socket
// that was not). The SOCKS5 handshake takes the chunks of such a socket as copies
// (listen/handshake-reads.ts); otherwise, until a relay takes it over, it behaves like
// any other (it pushes a copy of each chunk into the stream: 'data' events, pipe(),
// read() all work), so a socket that ends up elsewhere (plain HTTP forwarding, an
// upstream proxy's handshake) still works.
//
// Memory: every socket starts on one shared buffer, which is only ever read
// synchronously (copied out at once); a socket gets its own buffer on its first bulk
// read in relay mode, gives it back when idle, so an idle relay holds no buffer.
//
// Reliance on Node internals (no public API switches a live socket's buffer): the
// handle's `useUserBuffer()` (Node >= 12; without it, chunks are relayed as copies) and,
// for adoption only, net.Socket's private onread fields (without them, 'data' events).
import net from 'node:net';

/**
 * Per-socket read buffer once relaying. Measured on loopback (1 download, CPU of the
 * daemon per GiB): 64 KiB 0.47–0.74 s, 128 KiB 0.54–0.61 s, 256 KiB 0.39–0.43 s: a
 * read returns as much as the buffer holds, so fewer, larger system calls.
 */
export const RELAY_BUFFER_BYTES = 256 * 1024;

/** A read this large means a bulk transfer: time for a buffer of its own. */
export const BULK_CHUNK_BYTES = 32 * 1024;

/** A relay that read nothing for this long gives its buffer back (checked this often). */
export const BUFFER_IDLE_MS = 10_000;
/**
 * Each switch of a handle's buffer leaves a small native record until the socket
 * closes: a relay gives its buffer back this many times at most.
 */
const MAX_RELEASES = 8;

/** Shared by every socket until it has data to relay; never referenced after a callback returns. */
const shared = Buffer.allocUnsafe(RELAY_BUFFER_BYTES);

type Handle = { useUserBuffer?: (b: Buffer) => void; reading?: boolean } | null | undefined;
const handleOf = (s: net.Socket) => (s as unknown as { _handle: Handle })._handle;

/** Where a chunk goes in relay mode; returns false to stop reading (write pending). */
export interface Deliver {
  deliver(chunk: Buffer): boolean;
}

let idleMs = BUFFER_IDLE_MS;
/** Tests only: a shorter idle period. */
export function setBufferIdleMsForTests(ms: number): void {
  idleMs = ms;
  if (sweeper) {
    clearInterval(sweeper);
    sweeper = setInterval(sweep, idleMs).unref();
  }
}

/** Sinks holding their own buffer, for the idle sweep. */
const holding = new Set<ReadSink>();
let sweeper: NodeJS.Timeout | undefined;

function sweep() {
  for (const sink of holding) sink.sweep();
  if (holding.size === 0) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

export class ReadSink {
  /** This socket's own buffer (relay mode, from its first chunk until idle). */
  private own: Buffer | null = null;
  private deliver: Deliver | null = null;
  /** Every chunk a copy, never a buffer of its own (a handshake keeps what it is given). */
  private copies = false;
  private reads = 0;
  private readsAtSweep = 0;
  private releases = 0;

  constructor(readonly socket: net.Socket) {}

  /** The onread callback. */
  onRead(n: number): boolean {
    const deliver = this.deliver;
    const own = this.own;
    if (deliver === null) {
      // Stream mode: a copy, since the buffer is read into again at once.
      return this.socket.push(Buffer.from((own ?? shared).subarray(0, n)));
    }
    if (own !== null) {
      this.reads++;
      // One view per chunk (write() needs its length); the memory is reused.
      return deliver.deliver(own.subarray(0, n));
    }
    // No buffer of its own yet: the chunk is in the shared buffer, which must be free
    // again when this returns. Small chunks (requests, replies, interactive traffic)
    // are relayed as copies: a 256 KiB buffer per short exchange would cost more
    // (allocation, GC pressure) than it saves.
    const h = handleOf(this.socket);
    if (n < BULK_CHUNK_BYTES || this.copies || typeof h?.useUserBuffer !== 'function') {
      return deliver.deliver(Buffer.from(shared.subarray(0, n)));
    }
    const buf = Buffer.allocUnsafe(RELAY_BUFFER_BYTES);
    shared.copy(buf, 0, 0, n);
    // The handle keeps a raw pointer: `this.own` keeps the memory alive meanwhile
    // (and a write still pending from it holds it itself).
    h.useUserBuffer(buf);
    this.own = buf;
    this.reads++;
    holding.add(this);
    sweeper ??= setInterval(sweep, idleMs).unref();
    return deliver.deliver(buf.subarray(0, n));
  }

  /**
   * Relay mode: chunks go to `deliver.deliver`, which must not keep the chunk beyond its
   * pending write (the caller stops reading until that write completes). Returns false
   * when the socket cannot be switched (it already has bytes queued in the stream).
   * `copies`: each chunk is a copy the receiver may keep (a handshake's reads: small,
   * and parsed across chunks), never a view of a reused buffer.
   */
  attach(deliver: Deliver, copies = false): boolean {
    if (this.socket.readableLength > 0) return false;
    this.deliver = deliver;
    this.copies = copies;
    return true;
  }

  /** Back to stream mode (detach). */
  release(): void {
    this.deliver = null;
    this.copies = false;
    this.giveBack();
  }

  /** The relay ended: drop the buffer now rather than at the next sweep. */
  dispose(): void {
    this.deliver = null;
    this.own = null;
    holding.delete(this);
  }

  /** Called every BUFFER_IDLE_MS while holding a buffer. */
  sweep(): void {
    if (this.socket.destroyed) {
      holding.delete(this);
      this.own = null;
      return;
    }
    // Reading (so no write from the buffer is pending: reading stops while one is) and
    // nothing read for a whole period: give the buffer back.
    if (
      this.reads === this.readsAtSweep &&
      handleOf(this.socket)?.reading === true &&
      this.releases < MAX_RELEASES
    ) {
      this.releases++;
      this.giveBack();
    }
    this.readsAtSweep = this.reads;
  }

  /**
   * The handle reads into the shared buffer again. Writes still pending from our own
   * buffer keep it alive by themselves.
   */
  private giveBack() {
    if (this.own === null) return;
    handleOf(this.socket)?.useUserBuffer?.(shared);
    this.own = null;
    holding.delete(this);
  }
}

const sinks = new WeakMap<object, ReadSink>();

/** The sink of a socket made by relaySocket(), if it is one. */
export function readSinkOf(s: object): ReadSink | undefined {
  return sinks.get(s);
}

/**
 * A net.Socket (not yet connected: call `.connect()`) whose reads a relay can take
 * over without allocating. Anything else can use it as a plain socket.
 */
export function relaySocket(opts: Omit<net.SocketConstructorOpts, 'onread'> = {}): net.Socket {
  let sink: ReadSink | undefined;
  const sock = new net.Socket({
    ...opts,
    onread: {
      buffer: shared,
      callback: (n: number) => (sink as ReadSink).onRead(n),
    },
  } as net.SocketConstructorOpts);
  sink = new ReadSink(sock);
  sinks.set(sock, sink);
  return sock;
}

let adopting = true;
/** Tests only: relay accepted sockets with 'data' events, as when adoption is not possible. */
export function setAdoptReadsForTests(on: boolean): void {
  adopting = on;
}

/** Private symbols of net.Socket that hold the `onread` buffer and callback. */
let onreadSymbols: { buffer: symbol; callback: symbol } | null | undefined;
function findOnreadSymbols(s: net.Socket) {
  if (onreadSymbols === undefined) {
    const syms = Object.getOwnPropertySymbols(s);
    const buffer = syms.find((x) => x.description === 'kBuffer');
    const callback = syms.find((x) => x.description === 'kBufferCb');
    onreadSymbols = buffer && callback ? { buffer, callback } : null;
  }
  return onreadSymbols;
}

/**
 * Gives an existing, connected plain TCP or unix socket (an accepted client: the
 * listener cannot create it with `onread`) the same reused-buffer reads as
 * relaySocket(). Relies on net.Socket's private `onread` fields (found by their
 * symbols' descriptions; Node 20 and 24); returns undefined, changing nothing, when
 * they or the handle's `useUserBuffer` are missing, for TLS sockets and other streams,
 * and when someone else still listens for 'data' or 'readable'. Measured on uploads:
 * 0.45 CPU-s/GiB against 0.84 with 'data' events.
 */
export function adoptReads(s: object): ReadSink | undefined {
  if (!adopting || !(s instanceof net.Socket) || sinks.has(s)) return undefined;
  if ((s as { encrypted?: boolean }).encrypted) return undefined;
  const h = handleOf(s) as (Handle & { constructor?: { name?: string } }) | null | undefined;
  const kind = h?.constructor?.name;
  if (typeof h?.useUserBuffer !== 'function' || (kind !== 'TCP' && kind !== 'Pipe'))
    return undefined;
  if (s.listenerCount('data') > 0 || s.listenerCount('readable') > 0) return undefined;
  if (s.readableEncoding !== null || s.readableObjectMode) return undefined;
  const syms = findOnreadSymbols(s);
  if (!syms) return undefined;
  const fields = s as unknown as Record<symbol, unknown>;
  if (fields[syms.buffer] !== null || fields[syms.callback] !== null) return undefined;
  const sink = new ReadSink(s);
  fields[syms.buffer] = shared;
  fields[syms.callback] = (n: number) => sink.onRead(n);
  h.useUserBuffer(shared);
  sinks.set(s, sink);
  return sink;
}
