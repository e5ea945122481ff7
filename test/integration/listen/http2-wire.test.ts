// HTTP/2 frames written raw on a TCP socket, several in one write, as an attacker would
// (issue 18, defect 1): one connection's errors must never reach the process, and the
// listener serves on.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sleep } from './fake-pipeline.js';
import { connectHeaders, goaway, headers, opening, rstStream, settings } from './h2-frames.js';
import {
  type EchoServer,
  type ProxyUnderTest,
  RawClient,
  startEcho,
  startProxy,
} from './helpers.js';

let proxy: ProxyUnderTest;
let echo: EchoServer;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

before(async () => {
  // The runner's own handler would fail the file; ours records the error for the assertion.
  process.on('uncaughtException', onUncaught);
  proxy = await startProxy({ handshakeTimeoutMs: 1000 });
  echo = await startEcho();
});
after(async () => {
  process.removeListener('uncaughtException', onUncaught);
  await proxy.close();
  await echo.close();
});

/** A CONNECT through a fresh raw HTTP/2 connection gets its 200 and echoes. */
async function stillServes(): Promise<void> {
  const c = await RawClient.connect(proxy.port);
  try {
    c.write(Buffer.concat([opening(), connectHeaders(1, `127.0.0.1:${echo.port}`)]));
    // Frames until a HEADERS on stream 1; its block starts with :status 200 (static index 8).
    for (;;) {
      const head = await c.read(9);
      const len = head.readUIntBE(0, 3);
      const body = await c.read(len);
      if (head[3] === 0x1 && head.readUInt32BE(5) === 1) {
        assert.equal(body[0], 0x88, `:status 200 expected, got ${body.toString('hex')}`);
        return;
      }
    }
  } finally {
    c.destroy();
  }
}

async function sendAndSettle(bytes: Buffer): Promise<void> {
  uncaught.length = 0;
  proxy.errors.length = 0;
  const c = await RawClient.connect(proxy.port);
  c.write(bytes);
  // A connection error closes; a stream reset does not (the connection serves on).
  await c.waitClosed(300).catch(() => {});
  c.destroy();
  await sleep(50);
}

function assertUnharmed() {
  assert.deepEqual(uncaught.map(String), []);
  assert.deepEqual(
    proxy.errors.map((e) => e.message),
    [],
  );
}

describe('HTTP/2: a connection error right after a HEADERS frame (defect 1a)', () => {
  const connect = () => connectHeaders(1, `127.0.0.1:${echo.port}`);
  const variants: [string, () => Buffer][] = [
    ['GOAWAY with a non-zero code', () => goaway(0, 0x1)],
    ['an invalid SETTINGS (ENABLE_PUSH = 2)', () => settings([[0x2, 2]])],
    ['a HEADERS on an even stream id', () => connectHeaders(2, '127.0.0.1:1')],
  ];
  for (const [name, error] of variants) {
    test(`HEADERS then ${name}, in one write: no uncaught error, still serving`, async () => {
      await sendAndSettle(Buffer.concat([opening(), connect(), error()]));
      assertUnharmed();
      await stillServes();
    });
  }
});

describe('HTTP/2: a refused stream reset by the client before the answer (defect 1b)', () => {
  const requests: [string, () => Buffer][] = [
    [
      'a GET',
      () =>
        headers(1, [
          [':method', 'GET'],
          [':scheme', 'http'],
          [':path', '/'],
          [':authority', 'example.com'],
        ]),
    ],
    ['a CONNECT with a bad :authority', () => connectHeaders(1, 'example.com:99999')],
  ];
  for (const [name, request] of requests) {
    test(`${name} then RST_STREAM(NO_ERROR), in one write: no throw, still serving`, async () => {
      await sendAndSettle(Buffer.concat([opening(), request(), rstStream(1, 0)]));
      assertUnharmed();
      await stillServes();
    });
  }
});
