// Answering and closing a client we refuse. Closing a socket that still has unread
// input makes the kernel send a reset, and a reset can destroy our answer in the
// client's receive buffer before the client reads it; so the answer is followed by a
// FIN, further input is read and discarded, and the socket is destroyed once the
// client closes too, or after a short linger.
import type { Socket } from 'node:net';

/** How long a refused client may keep the socket open after our answer. */
export const LINGER_MS = 2000;

export function answerAndClose(socket: Socket, answer?: Uint8Array | string, lingerMs = LINGER_MS) {
  if (socket.destroyed) return;
  // A paused-mode reader would keep the stream from flowing: discard in flowing mode.
  socket.removeAllListeners('readable');
  socket.on('data', discard);
  socket.resume();
  if (socket.writable) {
    if (answer !== undefined) socket.end(answer);
    else socket.end();
  }
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

function discard() {}
