// An in-memory connection for the fuzzers: two Duplex ends, what one writes the other
// reads, an end() is a FIN and a destroy() a reset. The server end looks enough like an
// accepted net.Socket for the listener (addresses, setNoDelay…); node's servers wrap
// any Duplex. Much faster than loopback TCP, and the front-end code is the real one.
import { Duplex } from 'node:stream';

class MemSocket extends Duplex {
  peer: MemSocket | undefined;
  remoteAddress = '127.0.0.1';
  remotePort = 40000;
  localAddress = '127.0.0.1';
  localPort = 8080;
  remoteFamily = 'IPv4';

  constructor() {
    super({ allowHalfOpen: true });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const p = this.peer;
    if (p !== undefined && !p.destroyed) p.push(chunk);
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    const p = this.peer;
    if (p !== undefined && !p.destroyed) p.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const p = this.peer;
    this.peer = undefined;
    if (p !== undefined && !p.destroyed) {
      p.peer = undefined;
      const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
      process.nextTick(() => p.destroy(reset));
    }
    cb(err);
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

export interface MemPair {
  /** The proxy's end (hand it to the listener). */
  server: Duplex;
  client: Duplex;
}

export function memPair(): MemPair {
  const server = new MemSocket();
  const client = new MemSocket();
  server.peer = client;
  client.peer = server;
  client.on('error', () => {});
  return { server, client };
}
