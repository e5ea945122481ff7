// Raw HTTP/2 frames (RFC 9113 §4, §6) for tests that must write what node's own client
// never would: frames in one write, invalid settings, even stream ids. Header blocks use
// HPACK literals without indexing or Huffman (RFC 7541 §6.2.2), enough for any field.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;
export const PADDED = 0x8;
export const PRIORITY_FLAG = 0x20;

/** A frame; `length` overrides the length field (to lie about it). */
export function frame(
  type: number,
  flags: number,
  stream: number,
  payload: Uint8Array = Buffer.alloc(0),
  length = payload.length,
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(length & 0xffffff, 0, 3);
  head[3] = type & 0xff;
  head[4] = flags & 0xff;
  head.writeUInt32BE(stream >>> 0, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(text: string): Buffer {
  const b = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

/** A header block of literal fields, in order (pseudo-headers first if the caller wants). */
export function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(
    fields.map(([name, value]) =>
      Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]),
    ),
  );
}

export function headers(stream: number, fields: [string, string][], flags = END_HEADERS): Buffer {
  return frame(HEADERS, flags, stream, headerBlock(fields));
}

export function connectHeaders(stream: number, authority: string): Buffer {
  return headers(stream, [
    [':method', 'CONNECT'],
    [':authority', authority],
  ]);
}

export function settings(pairs: [number, number][] = [], flags = 0): Buffer {
  const p = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, value], i) => {
    p.writeUInt16BE(id & 0xffff, 6 * i);
    p.writeUInt32BE(value >>> 0, 6 * i + 2);
  });
  return frame(SETTINGS, flags, 0, p);
}

export function goaway(lastStream: number, code: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastStream >>> 0, 0);
  p.writeUInt32BE(code >>> 0, 4);
  return frame(GOAWAY, 0, 0, p);
}

export function rstStream(stream: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code >>> 0);
  return frame(RST_STREAM, 0, stream, p);
}

export function windowUpdate(stream: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment >>> 0);
  return frame(WINDOW_UPDATE, 0, stream, p);
}

export function ping(flags = 0, data = Buffer.alloc(8)): Buffer {
  return frame(PING, flags, 0, data);
}

export function priority(stream: number, dependsOn: number, weight: number): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(dependsOn >>> 0);
  p[4] = weight & 0xff;
  return frame(PRIORITY, 0, stream, p);
}

export function dataFrame(stream: number, body: Uint8Array, flags = 0): Buffer {
  return frame(DATA, flags, stream, body);
}

/** The client's opening: preface and an empty SETTINGS. */
export function opening(): Buffer {
  return Buffer.concat([PREFACE, settings()]);
}
