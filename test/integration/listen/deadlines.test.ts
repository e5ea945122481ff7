// Every client connection has a deadline in every state (issue 18, defect 2): HTTP/2
// sessions idle, refused, half-closed or closing; HTTP/1.1 and SOCKS5 sockets the
// listener ended; TLS stalled in or after its handshake. The clients here never send
// their FIN unless the scenario says so, as a lingering or hostile peer would; each
// scenario has a proxy of its own, and passes when the proxy's count of open
// connections is back to 0 within the state's deadline (docs/security.md).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { CLOSE_GRACE_MS } from '../../../proxy/listen/http2.js';
import { createTlsTerminator } from '../../../proxy/listen/tls.js';
import { makeTestCa, type TestCa } from '../../harness/index.js';
import { sleep } from './fake-pipeline.js';
import {
  connectHeaders,
  DATA,
  END_STREAM,
  frame,
  goaway,
  opening,
  PREFACE,
  settings,
} from './h2-frames.js';
import {
  type EchoServer,
  ipv4,
  type ProxyUnderTest,
  RawClient,
  socksConnect,
  startEcho,
  startProxy,
} from './helpers.js';

const TIMEOUT = 300;
/** Timer granularity, event-loop delays on a busy machine. */
const SLACK = 1000;
const GRACE = CLOSE_GRACE_MS;

let echo: EchoServer;
let ca: TestCa;
before(async () => {
  echo = await startEcho();
  ca = await makeTestCa();
});
after(async () => {
  await echo.close();
});

/** A proxy that allows the echo server only, and terminates TLS with the test CA's certificate. */
async function proxyForScenario(): Promise<ProxyUnderTest> {
  const terminator = createTlsTerminator({
    chain: Buffer.from(`${ca.pem.serverCert}${ca.pem.ca}`),
    key: Buffer.from(ca.pem.serverKey),
  });
  const proxy = await startProxy({ handshakeTimeoutMs: TIMEOUT, onTls: terminator.onTls });
  proxy.pipeline.policy = (req) =>
    req.target.port === echo.port ? undefined : { reason: 'denied', message: 'not this one' };
  return proxy;
}

/** Has the client received a frame of this type on this stream (frames parsed from the start)? */
function hasFrame(bytes: Buffer, type: number, stream: number): boolean {
  let at = 0;
  while (at + 9 <= bytes.length) {
    const len = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === type && bytes.readUInt32BE(at + 5) === stream) return true;
    at += 9 + len;
  }
  return false;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Runs the scenario, then waits for the proxy to hold no connection; fails past `boundMs`. */
async function closedWithin(
  boundMs: number,
  scenario: (proxy: ProxyUnderTest) => Promise<{ destroy(): void }>,
  /** The state may end before the scenario returns (the proxy closes at once). */
  quick = false,
): Promise<void> {
  const proxy = await proxyForScenario();
  let client: { destroy(): void } | undefined;
  try {
    client = await scenario(proxy);
    const start = Date.now();
    if (!quick) assert.ok(proxy.listener.active > 0, 'the scenario left no connection to close');
    while (proxy.listener.active > 0) {
      const ms = Date.now() - start;
      assert.ok(ms < boundMs, `still ${proxy.listener.active} open after ${ms} ms`);
      await sleep(10);
    }
    assert.deepEqual(
      proxy.errors.map((e) => e.message),
      [],
    );
  } finally {
    client?.destroy();
    await proxy.close();
  }
}

async function h2Client(proxy: ProxyUnderTest, first: Buffer): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port, '127.0.0.1', true);
  c.write(first);
  return c;
}

const HEADERS = 0x1;

describe('HTTP/2: every state has a deadline', { concurrency: true }, () => {
  test('preface only: closed after handshake-timeout', () =>
    closedWithin(TIMEOUT + SLACK, (p) => h2Client(p, PREFACE)));

  test('SETTINGS exchanged, no stream: closed after handshake-timeout', () =>
    closedWithin(TIMEOUT + SLACK, async (p) => {
      const c = await h2Client(p, opening());
      await waitFor('server SETTINGS', () => hasFrame(c.received, 0x4, 0));
      c.write(settings([], 0x1)); // ACK
      return c;
    }));

  for (const [status, authority] of [
    [400, 'example.com:99999'],
    [403, '127.0.0.1:1'],
  ] as const) {
    test(`a stream refused (${status}), then the client's FIN without GOAWAY: closed within the grace`, () =>
      closedWithin(GRACE + SLACK, async (p) => {
        const c = await h2Client(p, Buffer.concat([opening(), connectHeaders(1, authority)]));
        await waitFor('the refusal', () => hasFrame(c.received, HEADERS, 1));
        c.socket.end();
        return c;
      }));

    test(`a stream refused (${status}), then silence: idle deadline, GOAWAY, then the grace`, () =>
      closedWithin(TIMEOUT + GRACE + SLACK, async (p) => {
        const c = await h2Client(p, Buffer.concat([opening(), connectHeaders(1, authority)]));
        await waitFor('the refusal', () => hasFrame(c.received, HEADERS, 1));
        return c;
      }));
  }

  test('a tunnel open, then the client half-closes TCP: closed within the grace', () =>
    closedWithin(GRACE + SLACK, async (p) => {
      const c = await h2Client(
        p,
        Buffer.concat([opening(), connectHeaders(1, `127.0.0.1:${echo.port}`)]),
      );
      await waitFor('the 200', () => hasFrame(c.received, HEADERS, 1));
      c.socket.end();
      return c;
    }));

  test('GOAWAY from the client with a tunnel open, then the stream ends: closed within the grace', () =>
    closedWithin(
      GRACE + SLACK,
      async (p) => {
        const c = await h2Client(
          p,
          Buffer.concat([opening(), connectHeaders(1, `127.0.0.1:${echo.port}`)]),
        );
        await waitFor('the 200', () => hasFrame(c.received, HEADERS, 1));
        c.write(goaway(1, 0));
        await sleep(50);
        // The tunnel still works after the client's GOAWAY; its end ends the connection.
        c.write(frame(DATA, END_STREAM, 1, Buffer.from('bye')));
        return c;
      },
      true,
    ));

  test('a slow reader (window 0) refused: its answer is dropped after the grace, then idle', () =>
    closedWithin(GRACE + TIMEOUT + GRACE + SLACK, async (p) => {
      const c = await h2Client(
        p,
        Buffer.concat([
          PREFACE,
          settings([[0x4, 0]]), // INITIAL_WINDOW_SIZE 0: no DATA can reach us
          connectHeaders(1, '127.0.0.1:1'),
        ]),
      );
      await waitFor('the refusal', () => hasFrame(c.received, HEADERS, 1));
      return c;
    }));

  test('many refused-then-FIN connections do not accumulate (the report: 4,200 in 2.9 s)', () =>
    closedWithin(GRACE + SLACK * 2, async (p) => {
      const clients = await Promise.all(
        Array.from({ length: 200 }, () =>
          h2Client(p, Buffer.concat([opening(), connectHeaders(1, '127.0.0.1:1')])),
        ),
      );
      await waitFor('every refusal', () => clients.every((c) => hasFrame(c.received, HEADERS, 1)));
      for (const c of clients) c.socket.end();
      return {
        destroy() {
          for (const c of clients) c.destroy();
        },
      };
    }));
});

describe('HTTP/1.1 and SOCKS5: sockets the listener ended', { concurrency: true }, () => {
  test('SOCKS5 refused, the client never sends its FIN: destroyed after the linger', () =>
    closedWithin(GRACE + SLACK, async (p) => {
      const c = await RawClient.connect(p.port, '127.0.0.1', true);
      c.write(Buffer.concat([Buffer.from([5, 1, 0]), socksConnect(1, ipv4('127.0.0.1'), 1)]));
      await c.read(12);
      return c;
    }));

  test('SOCKS5 with no acceptable method: destroyed after the linger', () =>
    closedWithin(GRACE + SLACK, async (p) => {
      const c = await RawClient.connect(p.port, '127.0.0.1', true);
      c.write(Buffer.from([5, 1, 0x80]));
      await c.read(2);
      return c;
    }));

  test('HTTP CONNECT refused: destroyed after the linger', () =>
    closedWithin(GRACE + SLACK, async (p) => {
      const c = await RawClient.connect(p.port, '127.0.0.1', true);
      c.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.readUntil('\r\n\r\n');
      return c;
    }));

  test('malformed HTTP: answered 400, destroyed after the linger', () =>
    closedWithin(GRACE + SLACK, async (p) => {
      const c = await RawClient.connect(p.port, '127.0.0.1', true);
      c.write('BLAH\0\r\n\r\n');
      await c.readUntil('\r\n\r\n');
      return c;
    }));

  test('HTTP refused with Connection: close: closed after handshake-timeout at most', () =>
    closedWithin(
      TIMEOUT + SLACK,
      async (p) => {
        const c = await RawClient.connect(p.port, '127.0.0.1', true);
        c.write('GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        await c.readUntil('\r\n\r\n');
        return c;
      },
      true,
    ));
});

describe('TLS: stalled in or after the handshake', { concurrency: true }, () => {
  test('a partial ClientHello: closed after handshake-timeout', () =>
    closedWithin(TIMEOUT + SLACK, async (p) => {
      const c = await RawClient.connect(p.port, '127.0.0.1', true);
      c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
      return c;
    }));

  const received = new Map<tls.TLSSocket, Buffer>();
  const refusalSeen = (s: tls.TLSSocket) =>
    waitFor('the refusal', () => hasFrame(received.get(s) ?? Buffer.alloc(0), HEADERS, 1));
  const connectTls = (p: ProxyUnderTest, alpn: string[]) =>
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        port: p.port,
        host: '127.0.0.1',
        ca: ca.pem.ca,
        servername: 'localhost',
        ALPNProtocols: alpn,
        allowHalfOpen: true,
      } as tls.ConnectionOptions);
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
      s.on('error', () => {});
      received.set(s, Buffer.alloc(0));
      s.on('data', (d: Buffer) =>
        received.set(s, Buffer.concat([received.get(s) ?? Buffer.alloc(0), d])),
      );
    });

  test('handshake complete, no request: closed after handshake-timeout', () =>
    closedWithin(TIMEOUT + SLACK, (p) => connectTls(p, ['http/1.1'])));

  test('h2 over TLS, SETTINGS only: closed after handshake-timeout', () =>
    closedWithin(TIMEOUT + SLACK, async (p) => {
      const s = await connectTls(p, ['h2']);
      s.write(opening());
      return s;
    }));

  test('h2 over TLS, a stream refused then silence: idle deadline, GOAWAY, then the grace', () =>
    closedWithin(
      TIMEOUT + GRACE + SLACK,
      async (p) => {
        const s = await connectTls(p, ['h2']);
        s.write(Buffer.concat([opening(), connectHeaders(1, '127.0.0.1:1')]));
        await refusalSeen(s);
        return s;
      },
      true,
    )); // TLS clients may answer our FIN with theirs: the state can end early

  test('h2 over TLS, a stream refused then the client ends TLS (close_notify + FIN): within the grace', () =>
    closedWithin(
      GRACE + SLACK,
      async (p) => {
        const s = await connectTls(p, ['h2']);
        s.write(Buffer.concat([opening(), connectHeaders(1, '127.0.0.1:1')]));
        await refusalSeen(s);
        s.end();
        return s;
      },
      true,
    )); // TLS clients may answer our FIN with theirs: the state can end early
});
