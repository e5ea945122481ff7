// Protocol detection from the first bytes of a connection (docs/reference/wire.md, "One
// port, four protocols"): SOCKS5 starts with its version byte, TLS with a handshake record,
// HTTP/2 with prior knowledge with the fixed 24-byte preface; everything else is treated as
// HTTP/1.1 (whose parser answers 400 to garbage).

export type DetectedProtocol = 'socks5' | 'tls' | 'http2' | 'http1';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** The most bytes detection ever needs. */
export const DETECT_MAX_BYTES = HTTP2_PREFACE.length;

/** The protocol, or undefined while more bytes are needed to decide. */
export function detectProtocol(head: Uint8Array): DetectedProtocol | undefined {
  if (head.length === 0) return undefined;
  if (head[0] === 0x05) return 'socks5';
  if (head[0] === 0x16) {
    if (head.length < 2) return undefined;
    return head[1] === 0x03 ? 'tls' : 'http1';
  }
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== HTTP2_PREFACE[i]) return 'http1';
  return n === HTTP2_PREFACE.length ? 'http2' : undefined;
}
