// HTTP CONNECT through an upstream proxy (squid, tinyproxy, a portail gateway), written
// here rather than borrowed: the response is parsed strictly and its size is bounded,
// because a proxy in the middle must never be tricked into relaying a half-parsed
// answer as if it were the origin's bytes.
import type { Duplex } from 'node:stream';
import { formatHostPort } from '../../common/host-port.js';
import { abortError } from '../net/abort.js';
import { ConnectError, type Target } from '../types.js';

/** Largest CONNECT response head we accept (status line + headers). */
export const MAX_RESPONSE_HEAD = 16 * 1024;

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const HEADER_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The authority for a CONNECT request, or null when it holds characters a normalised
 * host never carries: refused rather than risk header injection.
 */
export function safeAuthority(t: Target): string | null {
  const a = formatHostPort(t);
  return /^[A-Za-z0-9._~:[\]-]+$/.test(a) ? a : null;
}

/** The status code and reason of a complete response head, or a description of what is wrong. */
export function parseConnectResponse(
  head: string,
): { status: number; reason: string } | { error: string } {
  const lines = head.split('\r\n');
  const m = STATUS_LINE.exec(lines[0] ?? '');
  if (!m) return { error: `malformed status line ${JSON.stringify(lines[0]?.slice(0, 80))}` };
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (!HEADER_LINE.test(line))
      return { error: `malformed header line ${JSON.stringify(line.slice(0, 80))}` };
  }
  return { status: Number(m[1]), reason: m[2] ?? '' };
}

/**
 * How an upstream's refusal maps to our own answer to the client (docs/backends.md, "What
 * the client is told").
 */
export function errorForStatus(status: number, reason: string, proxy: string): ConnectError {
  const what = `upstream proxy ${proxy} answered ${status}${reason ? ` ${reason}` : ''}`;
  if (status === 504) return new ConnectError('timeout', what);
  if (status === 502 || status === 503) return new ConnectError('unreachable', what);
  if (status === 403 || status === 407 || status === 405) return new ConnectError('refused', what);
  return new ConnectError('internal', what);
}

/**
 * Sends CONNECT for `target` on `stream` (already connected to the proxy, possibly
 * inside TLS) and resolves with the same stream once the proxy answered 2xx; bytes
 * that followed the response head are pushed back so the relay sees them first.
 */
export function httpConnect(
  stream: Duplex,
  target: Target,
  opts: { proxy: string; signal: AbortSignal },
): Promise<Duplex> {
  const { proxy, signal } = opts;
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (err: ConnectError | null) => {
      if (done) return;
      done = true;
      stream.off('readable', onReadable);
      stream.off('error', onError);
      stream.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err) {
        stream.destroy();
        reject(err);
      } else {
        resolve(stream);
      }
    };
    // `readable` + read(), not `data`: once our listener is gone the stream is back in
    // its initial mode, so the relay's own listener starts the flow (after the bytes
    // we push back) and nothing is read while nobody listens.
    const onReadable = () => {
      for (;;) {
        if (done) return;
        const chunk: Buffer | null = stream.read();
        if (chunk === null) return;
        onData(chunk);
      }
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD)
          finish(new ConnectError('internal', `upstream proxy ${proxy}: response head too large`));
        return;
      }
      if (end > MAX_RESPONSE_HEAD) {
        finish(new ConnectError('internal', `upstream proxy ${proxy}: response head too large`));
        return;
      }
      const parsed = parseConnectResponse(buf.subarray(0, end).toString('latin1'));
      if ('error' in parsed) {
        finish(new ConnectError('internal', `upstream proxy ${proxy}: ${parsed.error}`));
        return;
      }
      if (parsed.status < 200 || parsed.status > 299) {
        finish(errorForStatus(parsed.status, parsed.reason, proxy));
        return;
      }
      const rest = buf.subarray(end + 4);
      if (rest.length) stream.unshift(rest);
      finish(null);
    };
    const onError = (e: Error) =>
      finish(new ConnectError('internal', `upstream proxy ${proxy}: ${e.message}`));
    const onClose = () =>
      finish(
        new ConnectError('internal', `upstream proxy ${proxy} closed before answering CONNECT`),
      );
    const onAbort = () => finish(abortError(signal, `CONNECT through ${proxy}`));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('readable', onReadable);
    stream.on('error', onError);
    stream.on('close', onClose);
    const a = safeAuthority(target);
    if (a === null) {
      finish(
        new ConnectError(
          'internal',
          `invalid destination ${JSON.stringify(formatHostPort(target))}`,
        ),
      );
      return;
    }
    stream.write(`CONNECT ${a} HTTP/1.1\r\nHost: ${a}\r\n\r\n`);
  });
}
