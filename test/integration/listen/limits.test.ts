// The listener's two shared limits: handshake-timeout (first byte through to the
// complete request, whatever the protocol) and max-connections, and that idle clients
// cost nothing to the others.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sleep } from './fake-pipeline.js';
import {
  domain,
  type EchoServer,
  ipv4,
  type ProxyUnderTest,
  RawClient,
  readResponse,
  socksConnect,
  startEcho,
  startOrigin,
  startProxy,
} from './helpers.js';

let echo: EchoServer;
before(async () => {
  echo = await startEcho();
});
after(async () => {
  await echo.close();
});

const TIMEOUT = 300;

/** Writes one byte every `everyMs` until the server closes. */
function trickle(c: RawClient, bytes: Buffer, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (c.closed || c.ended || i >= bytes.length) {
      clearInterval(timer);
      return;
    }
    c.write(bytes.subarray(i, i + 1));
    i++;
  }, everyMs);
}

async function socksTunnel(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  c.write(Buffer.concat([Buffer.from([5, 1, 0]), socksConnect(1, ipv4('127.0.0.1'), echo.port)]));
  assert.deepEqual(await c.read(2), Buffer.from([5, 0]));
  assert.equal((await c.read(10))[1], 0);
  return c;
}

describe('handshake-timeout', () => {
  let proxy: ProxyUnderTest;
  before(async () => {
    proxy = await startProxy({ handshakeTimeoutMs: TIMEOUT });
  });
  after(async () => {
    await proxy.close();
  });

  const assertClosedInTime = (ms: number) => {
    assert.ok(ms >= TIMEOUT - 80 && ms < TIMEOUT + 700, `closed after ${ms} ms`);
  };

  test('a client that never sends a byte is closed', async () => {
    const before = proxy.listener.handshakeTimeouts;
    const c = await RawClient.connect(proxy.port);
    assertClosedInTime(await c.waitClosed(3000));
    assert.equal(proxy.listener.handshakeTimeouts, before + 1);
  });

  test('SOCKS5 slow loris (a byte every 40 ms, request never complete) is closed', async () => {
    const c = await RawClient.connect(proxy.port);
    const start = Date.now();
    trickle(
      c,
      Buffer.concat([Buffer.from([5, 1, 0]), socksConnect(3, domain('a'.repeat(250)), 80)]),
      40,
    );
    await c.waitClosed(3000);
    assertClosedInTime(Date.now() - start);
    assert.equal(proxy.pipeline.tunnels.length, 0);
  });

  test('HTTP slow loris (headers a byte at a time) is closed', async () => {
    const c = await RawClient.connect(proxy.port);
    const start = Date.now();
    trickle(
      c,
      Buffer.from(
        `GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nX-Slow: ${'a'.repeat(200)}`,
      ),
      40,
    );
    await c.waitClosed(3000);
    assertClosedInTime(Date.now() - start);
    assert.equal(proxy.pipeline.forwards.length, 0);
  });

  test('HTTP/2 preface with no stream is closed', async () => {
    const c = await RawClient.connect(proxy.port);
    c.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    c.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
    assertClosedInTime(await c.waitClosed(3000));
  });

  test('an HTTP/2 prefix that never completes is closed', async () => {
    const c = await RawClient.connect(proxy.port);
    c.write('PRI * HTTP/2');
    assertClosedInTime(await c.waitClosed(3000));
  });

  test('an idle keep-alive connection is closed after the same delay (not counted as a timeout)', async () => {
    const origin = await startOrigin();
    try {
      const c = await RawClient.connect(proxy.port);
      c.write(`GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await readResponse(c)).status, 200);
      const before = proxy.listener.handshakeTimeouts;
      assertClosedInTime(await c.waitClosed(3000));
      assert.equal(proxy.listener.handshakeTimeouts, before);
    } finally {
      await origin.close();
    }
  });

  test('a completed handshake is not subject to it: a quiet tunnel stays open', async () => {
    const c = await socksTunnel(proxy.port);
    await sleep(TIMEOUT * 2);
    c.write('still here');
    assert.equal((await c.read(10)).toString(), 'still here');
    c.destroy();
  });
});

describe('max-connections', () => {
  let proxy: ProxyUnderTest;
  const refusedSeen: string[] = [];
  before(async () => {
    proxy = await startProxy({
      maxConnections: 2,
      handshakeTimeoutMs: 3000,
      onRefused: (c) => refusedSeen.push(c.ip),
    });
  });
  after(async () => {
    await proxy.close();
  });

  test('beyond the limit: SOCKS5 0x01, HTTP 503, HTTP/2 GOAWAY, TLS closed; counted; served again below it', async () => {
    const a = await socksTunnel(proxy.port);
    const b = await RawClient.connect(proxy.port);
    await sleep(20);
    assert.equal(proxy.listener.active, 2);

    const socks = await RawClient.connect(proxy.port);
    socks.write(
      Buffer.concat([Buffer.from([5, 1, 0]), socksConnect(1, ipv4('127.0.0.1'), echo.port)]),
    );
    assert.deepEqual(await socks.read(12), Buffer.from([5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]));
    await socks.waitClosed();

    const http = await RawClient.connect(proxy.port);
    http.write('GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const r = await readResponse(http);
    assert.equal(r.status, 503);
    await http.waitClosed();

    const h2 = await RawClient.connect(proxy.port);
    h2.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const frames = await h2.read(26);
    assert.equal(frames[3], 0x04, 'SETTINGS first');
    assert.equal(frames[12], 0x07, 'then GOAWAY');
    assert.equal(frames.readUInt32BE(22), 0x07, 'REFUSED_STREAM');
    await h2.waitClosed();

    const tls = await RawClient.connect(proxy.port);
    tls.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]));
    await tls.waitClosed();

    assert.equal(proxy.listener.refused, 4);
    assert.deepEqual(refusedSeen, ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
    assert.equal(proxy.pipeline.tunnels.length, 1);

    b.destroy();
    const end = Date.now() + 2000;
    while (proxy.listener.active > 1) {
      assert.ok(Date.now() < end);
      await sleep(10);
    }
    const again = await socksTunnel(proxy.port);
    again.write('back');
    assert.equal((await again.read(4)).toString(), 'back');
    again.destroy();
    a.destroy();
  });
});

describe('idle clients cost the others nothing', () => {
  test('1,000 silent connections do not delay a real client', async () => {
    const proxy = await startProxy({ maxConnections: 5000, handshakeTimeoutMs: 10_000 });
    const idle: net.Socket[] = [];
    try {
      // In batches, so that the accept backlog never overflows into SYN retries.
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from(
            { length: 100 },
            () =>
              new Promise<void>((resolve, reject) => {
                const s = net.connect(proxy.port, '127.0.0.1', () => resolve());
                s.on('error', reject);
                idle.push(s);
              }),
          ),
        );
      }
      const end = Date.now() + 3000;
      while (proxy.listener.active < 1000) {
        assert.ok(Date.now() < end, `only ${proxy.listener.active} active`);
        await sleep(10);
      }
      const start = performance.now();
      const c = await socksTunnel(proxy.port);
      c.write('fast');
      assert.equal((await c.read(4)).toString(), 'fast');
      const ms = performance.now() - start;
      c.destroy();
      // Blocking work per idle client would show as seconds (or the 10 s timeout).
      assert.ok(ms < 1500, `a real client took ${ms.toFixed(0)} ms behind 1,000 idle ones`);
      assert.equal(proxy.listener.handshakeTimeouts, 0);
    } finally {
      for (const s of idle) s.destroy();
      await proxy.close();
    }
  });
});
