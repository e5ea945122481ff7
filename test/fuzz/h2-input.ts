// Structure-aware HTTP/2 inputs for the fuzzers (docs/testing.md, "Fuzzing"): the
// preface, then a sequence of valid and invalid frames — HEADERS with CONNECT, GET or
// odd pseudo-headers, CONTINUATION, DATA, RST_STREAM, GOAWAY, SETTINGS with invalid
// values, WINDOW_UPDATE 0, PRIORITY, PING, PUSH_PROMISE, unknown types, even, zero and
// reused stream ids, lying lengths — cut into chunks, and how the client leaves.
import fc from 'fast-check';
import {
  CONTINUATION,
  DATA,
  END_HEADERS,
  END_STREAM,
  frame,
  GOAWAY,
  HEADERS,
  headerBlock,
  PING,
  PREFACE,
  PRIORITY,
  PUSH_PROMISE,
  RST_STREAM,
  SETTINGS,
  WINDOW_UPDATE,
} from '../integration/listen/h2-frames.js';

/** Ports the fuzz pipelines give a meaning: 7 is accepted (echo), 1 denied, others refused. */
export const ACCEPTED_PORT = 7;
export const DENIED_PORT = 1;

/** How the client leaves once its bytes are sent. */
export type Ending = 'reset' | 'fin' | 'linger';

export interface H2Input {
  chunks: Buffer[];
  ending: Ending;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const streamId = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(1, 3, 5) },
  { weight: 1, arbitrary: fc.constantFrom(0, 2, 4, 0x7fffffff, 0x80000001, 0xffffffff) },
  { weight: 1, arbitrary: u32 },
);
const flags = fc.oneof(
  { weight: 3, arbitrary: fc.constant(-1) }, // the usual flags for the type
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const errorCode = fc.oneof(fc.integer({ min: 0, max: 0xd }), u32);

const authority = fc.oneof(
  fc.constantFrom(
    `127.0.0.1:${ACCEPTED_PORT}`,
    `127.0.0.1:${DENIED_PORT}`,
    '127.0.0.1:9',
    '[::1]:443',
    'example.com:99999',
    'example.com',
    'a..b:443',
    '',
    ':443',
    `${'a'.repeat(300)}:443`,
  ),
  fc.string({ maxLength: 40 }),
);
const field: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(fc.constant(':method'), fc.constantFrom('CONNECT', 'GET', 'POST', 'connect', '')),
  fc.tuple(fc.constant(':authority'), authority),
  fc.tuple(fc.constant(':path'), fc.constantFrom('/', '', '*', '/a?b')),
  fc.tuple(fc.constant(':scheme'), fc.constantFrom('http', 'https', '')),
  fc.tuple(fc.constant(':protocol'), fc.constantFrom('websocket', 'connect-udp')),
  fc.tuple(fc.constantFrom(':status', ':foo'), fc.constantFrom('200', 'x')),
  fc.tuple(
    fc.constantFrom('accept', 'connection', 'te', 'host', 'Upper-Case', 'x-a', 'keep-alive'),
    fc.constantFrom('text/html', 'close', 'trailers', 'x', '', 'a\0b'),
  ),
  fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 20 })),
);
const connectFields = authority.map((a): [string, string][] => [
  [':method', 'CONNECT'],
  [':authority', a],
]);
/** A header block: literal fields, or a few raw HPACK bytes (indexed, table size updates, garbage). */
const block = fc.oneof(
  { weight: 4, arbitrary: connectFields.map(headerBlock) },
  { weight: 3, arbitrary: fc.array(field, { maxLength: 8 }).map(headerBlock) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(connectFields, fc.uint8Array({ minLength: 1, maxLength: 12 }))
      .map(([f, raw]) => Buffer.concat([headerBlock(f), raw])),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a)) },
);

type FrameSpec = fc.Arbitrary<Buffer>;

const lengthLie = fc.option(fc.integer({ min: 0, max: 0xffffff }), { freq: 12 });

function make(
  type: number,
  usualFlags: number,
  payload: fc.Arbitrary<Uint8Array>,
  stream: fc.Arbitrary<number> = streamId,
): FrameSpec {
  return fc
    .tuple(flags, stream, payload, lengthLie)
    .map(([f, s, p, lie]) => frame(type, f < 0 ? usualFlags : f, s, p, lie ?? p.length));
}

const settingsPayload = fc
  .array(
    fc.tuple(
      fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff })),
      fc.oneof(
        fc.constantFrom(0, 1, 2, 16383, 16384, 0x7fffffff, 0x80000000, 0xffffff, 0x1000000),
        u32,
      ),
    ),
    { maxLength: 4 },
  )
  .chain((pairs) =>
    fc.constantFrom(0, 0, 0, 1, 5).map((extra) => {
      const p = Buffer.alloc(6 * pairs.length + extra);
      pairs.forEach(([id, v], i) => {
        p.writeUInt16BE(id, 6 * i);
        p.writeUInt32BE(v >>> 0, 6 * i + 2);
      });
      return p;
    }),
  );

const u32Payload = (value: fc.Arbitrary<number>) =>
  fc.tuple(value, fc.constantFrom(4, 4, 4, 0, 3, 8)).map(([v, len]) => {
    const p = Buffer.alloc(Math.max(4, len));
    p.writeUInt32BE(v >>> 0);
    return p.subarray(0, len);
  });

const bytes = (max: number) => fc.uint8Array({ maxLength: max });

/** One frame, valid or not. */
export const h2Frame: FrameSpec = fc.oneof(
  { weight: 6, arbitrary: make(HEADERS, END_HEADERS, block) },
  // A header block split over HEADERS and CONTINUATION (sometimes on another stream).
  {
    weight: 2,
    arbitrary: fc
      .tuple(streamId, block, fc.nat(), fc.boolean(), fc.boolean())
      .map(([s, b, at, endHeaders, otherStream]) => {
        const cut = b.length === 0 ? 0 : at % b.length;
        return Buffer.concat([
          frame(HEADERS, 0, s, b.subarray(0, cut)),
          frame(
            CONTINUATION,
            endHeaders ? END_HEADERS : 0,
            otherStream ? s + 2 : s,
            b.subarray(cut),
          ),
        ]);
      }),
  },
  { weight: 1, arbitrary: make(CONTINUATION, END_HEADERS, block) },
  { weight: 4, arbitrary: make(DATA, 0, bytes(64)) },
  { weight: 2, arbitrary: make(DATA, END_STREAM, bytes(16)) },
  { weight: 3, arbitrary: make(RST_STREAM, 0, u32Payload(errorCode)) },
  {
    weight: 2,
    arbitrary: make(
      GOAWAY,
      0,
      fc.tuple(u32, errorCode, bytes(8)).map(([last, code, debug]) => {
        const p = Buffer.alloc(8);
        p.writeUInt32BE(last >>> 0);
        p.writeUInt32BE(code >>> 0, 4);
        return Buffer.concat([p, debug]);
      }),
      fc.oneof(fc.constant(0), streamId),
    ),
  },
  {
    weight: 3,
    arbitrary: make(SETTINGS, 0, settingsPayload, fc.oneof(fc.constant(0), streamId)),
  },
  { weight: 1, arbitrary: make(SETTINGS, 1, bytes(6), fc.constant(0)) }, // ACK, maybe with a payload
  {
    weight: 2,
    arbitrary: make(
      WINDOW_UPDATE,
      0,
      u32Payload(fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0x80000000), u32)),
      fc.oneof(fc.constant(0), streamId),
    ),
  },
  { weight: 1, arbitrary: make(PRIORITY, 0, bytes(6)) },
  { weight: 1, arbitrary: make(PING, 0, bytes(9), fc.oneof(fc.constant(0), streamId)) },
  { weight: 1, arbitrary: make(PUSH_PROMISE, END_HEADERS, bytes(12)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 0x0a, max: 0xff }), flags, streamId, bytes(16))
      .map(([t, f, s, p]) => frame(t, Math.max(0, f), s, p)),
  },
  { weight: 1, arbitrary: bytes(32).map((a) => Buffer.from(a)) },
);

/** Preface, an optional SETTINGS, frames; cut at random points; an ending. */
export const h2Input: fc.Arbitrary<H2Input> = fc
  .record({
    settingsFirst: fc.boolean(),
    frames: fc.array(h2Frame, { minLength: 1, maxLength: 10 }),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
    ending: fc.constantFrom<Ending>('reset', 'reset', 'reset', 'reset', 'reset', 'fin', 'linger'),
  })
  .map(({ settingsFirst, frames, cuts, ending }) => {
    const data = Buffer.concat([
      PREFACE,
      settingsFirst ? frame(SETTINGS, 0, 0) : Buffer.alloc(0),
      ...frames,
    ]);
    return { chunks: cut(data, cuts), ending };
  });

/** `data` split at the given offsets (taken modulo its length): how a peer's bytes arrive in reads. */
export function cut(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (data.length ? c % data.length : 0)))].sort(
    (a, b) => a - b,
  );
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) out.push(data.subarray(last, p));
    last = Math.max(last, p);
  }
  out.push(data.subarray(last));
  return out.filter((c) => c.length > 0);
}
