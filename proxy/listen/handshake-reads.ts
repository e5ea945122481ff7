// How a handshake (protocol detection, then the SOCKS5 greeting and request) reads its
// client: chunk by chunk, each in the read's own callback, handed from detection to
// the front-end without stopping. An accepted socket the listener adopted
// (net/fast-read.ts) delivers its chunks straight from its read callback: no stream
// 'data' events, and no stop and restart of the kernel reads between detection, the
// greeting and the relay (each pause()/resume() of such a socket is a readStop/
// readStart of its handle, that is epoll_ctl calls, on every set-up). Any other socket
// (TLS, one with bytes already queued) is read with 'data' events, to the same effect.

import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { readSinkOf } from '../net/fast-read.js';

export interface HandshakeReader {
  /** Where the next chunk goes; detection hands on to the front-end by replacing it. */
  consume: (chunk: Buffer) => void;
  /**
   * No more chunks: later bytes wait in the socket's stream, which is left paused
   * (its kernel reads go on, bounded by the stream's high-water mark), with `unread`
   * put back first. A later owner reads them with 'data', read() or a relay.
   */
  stop(unread?: Buffer): void;
}

/**
 * Starts reading `socket` for a handshake. A client that closes before `stop()` is
 * destroyed (it cannot complete a handshake any more).
 */
export function readHandshake(socket: Socket, consume: (chunk: Buffer) => void): HandshakeReader {
  const sink = readSinkOf(socket);
  let stopped = false;
  const reader: HandshakeReader = {
    consume,
    stop(unread) {
      if (stopped) return;
      stopped = true;
      socket.removeListener('end', onEnd);
      if (delivering) {
        sink?.release();
        // The stream's own pause, not net.Socket's: that one would also stop the
        // handle's reads, which the next owner would then start again.
        Readable.prototype.pause.call(socket);
      } else {
        socket.removeListener('data', onData);
        socket.pause();
      }
      if (unread !== undefined && unread.length > 0) socket.unshift(unread);
    },
  };
  function onData(chunk: Buffer) {
    reader.consume(chunk);
  }
  function onEnd() {
    reader.stop();
    socket.destroy();
  }
  const delivering =
    sink?.attach(
      {
        deliver(chunk) {
          if (!stopped) reader.consume(chunk);
          // stopped: stop() put the sink back in stream mode, so this is not reached.
          return true;
        },
      },
      true,
    ) === true;
  socket.on('end', onEnd);
  if (delivering) {
    // Flowing with no 'data' listener: nothing is pushed to the stream in delivery
    // mode, and the end of the stream is still emitted ('end' above).
    socket.resume();
  } else {
    socket.on('data', onData);
  }
  return reader;
}
