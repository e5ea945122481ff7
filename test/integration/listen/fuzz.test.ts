// Property test: random bytes, and mutations of valid SOCKS5 / HTTP/1.1 / HTTP/2
// handshakes, sent to the listener in random chunks. The process never crashes, the
// front-ends report no internal error, every connection ends answered or closed, and
// none leaks. The run is bounded to a few seconds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { cut } from '../../fuzz/h2-input.js';
import { sleep } from './fake-pipeline.js';
import {
  domain,
  type EchoServer,
  ipv4,
  type ProxyUnderTest,
  RawClient,
  socksConnect,
  startEcho,
  startProxy,
} from './helpers.js';

let proxy: ProxyUnderTest;
let echo: EchoServer;
const TIMEOUT = 150;

before(async () => {
  proxy = await startProxy({ handshakeTimeoutMs: TIMEOUT, maxConnections: 10_000 });
  echo = await startEcho();
  // Only the echo server may be reached; everything else is denied (or refused).
  proxy.pipeline.policy = (req) =>
    req.target.port === echo.port ? undefined : { reason: 'denied', message: 'fuzz' };
});
after(async () => {
  await proxy.close();
  await echo.close();
});

function seeds(): Buffer[] {
  const greet = Buffer.from([5, 1, 0]);
  return [
    Buffer.concat([greet, socksConnect(1, ipv4('127.0.0.1'), echo.port), Buffer.from('data')]),
    Buffer.concat([greet, socksConnect(3, domain('echo.portail.test'), echo.port)]),
    Buffer.concat([greet, socksConnect(4, Buffer.alloc(16, 0), 80)]),
    Buffer.concat([greet, Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])]),
    Buffer.concat([greet, Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0, 80])]),
    Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\nhello`),
    Buffer.from(`CONNECT [::1]:443 HTTP/1.1\r\n\r\n`),
    Buffer.from(
      `GET http://127.0.0.1:${echo.port}/a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`,
    ),
    Buffer.from(
      'POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    ),
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ]),
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03]),
  ];
}

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ maxLength: 8 }),
  }),
  fc.record({
    kind: fc.constant('delete' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 4 }),
  }),
);

function mutate(input: Buffer, mutations: Mutation[]): Buffer {
  let b = input;
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.kind === 'flip') {
      b = Buffer.from(b);
      if (b.length > 0) b[at] = m.value;
    } else if (m.kind === 'truncate') {
      b = b.subarray(0, at);
    } else if (m.kind === 'insert') {
      b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    } else {
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
    }
  }
  return b;
}

const input = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.integer({ min: 0, max: 10 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([i, ms]) => mutate(seeds()[i], ms)),
);

/** One client: its bytes, where they are cut into writes, and whether it half-closes. */
const client = fc.record({
  data: input,
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
  halfClose: fc.boolean(),
});

async function run(data: Buffer, cuts: number[], halfClose: boolean): Promise<void> {
  const c = await RawClient.connect(proxy.port);
  try {
    for (const chunk of cut(data, cuts)) {
      c.write(chunk);
      await sleep(1);
    }
    if (halfClose) c.socket.end();
    const deadline = Date.now() + TIMEOUT + 1500;
    while (!c.closed && !c.ended && c.received.length === 0 && Date.now() < deadline) {
      await sleep(5);
    }
    const answered = c.received.length > 0;
    assert.ok(
      c.closed || c.ended || answered,
      `neither answered nor closed: ${data.toString('hex')}`,
    );
  } finally {
    c.destroy();
  }
}

test('random and mutated handshakes: answered or closed, never a crash or a leak', async (t) => {
  let runs = 0;
  // Clients go in batches: most garbage waits for the handshake timeout, in parallel.
  await fc.assert(
    fc.asyncProperty(fc.array(client, { minLength: 1, maxLength: 16 }), async (batch) => {
      runs += batch.length;
      await Promise.all(batch.map((b) => run(b.data, b.cuts, b.halfClose)));
    }),
    { numRuns: 100, interruptAfterTimeLimit: 4000 },
  );
  t.diagnostic(`${runs} connections`);
  assert.ok(runs >= 100, `only ${runs} connections in the time limit`);
  assert.deepEqual(
    proxy.errors.map((e) => e.message),
    [],
  );
  // Every client is gone: the listener must not hold any connection.
  const end = Date.now() + 3000;
  while (proxy.listener.active > 0 && Date.now() < end) await sleep(20);
  assert.equal(proxy.listener.active, 0);
});
