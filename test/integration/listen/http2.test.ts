// HTTP/2 with prior knowledge: CONNECT streams from node:http2 as the client, several
// on one connection.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { RejectReason } from '../../../proxy/types.js';
import { type EchoServer, type ProxyUnderTest, startEcho, startProxy } from './helpers.js';

let proxy: ProxyUnderTest;
let echo: EchoServer;
let echo6: EchoServer;

before(async () => {
  proxy = await startProxy();
  echo = await startEcho();
  echo6 = await startEcho('::1');
});
after(async () => {
  await proxy.close();
  await echo.close();
  await echo6.close();
});

function reset() {
  proxy.pipeline.policy = () => undefined;
  proxy.pipeline.tunnels.length = 0;
}

function session(): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${proxy.port}`);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function response(stream: http2.ClientHttp2Stream): Promise<http2.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
}

function readAll(stream: http2.ClientHttp2Stream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      text += d;
    });
    stream.once('end', () => resolve(text));
    stream.once('error', reject);
  });
}

function readExactly(stream: http2.ClientHttp2Stream, n: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString();
      if (text.length >= n) {
        stream.removeListener('data', onData);
        resolve(text);
      }
    };
    stream.on('data', onData);
  });
}

describe('HTTP/2 CONNECT', () => {
  test('two concurrent CONNECT streams on one connection, each its own tunnel', async () => {
    reset();
    const s = await session();
    try {
      const a = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` });
      const b = s.request({ ':method': 'CONNECT', ':authority': `[::1]:${echo6.port}` });
      assert.equal((await response(a))[':status'], 200);
      assert.equal((await response(b))[':status'], 200);
      a.write('stream-a');
      b.write('stream-b');
      assert.equal(await readExactly(a, 8), 'stream-a');
      assert.equal(await readExactly(b, 8), 'stream-b');
      // Half-close: the echo server ends too, and the stream ends cleanly.
      const rest = readAll(a);
      a.end('bye');
      assert.equal(await rest, 'bye');
      b.close();
      const targets = proxy.pipeline.tunnels.map((r) => r.target);
      assert.deepEqual(
        targets.sort((x, y) => x.port - y.port),
        [
          { host: '127.0.0.1', port: echo.port },
          { host: '::1', port: echo6.port },
        ].sort((x, y) => x.port - y.port),
      );
      for (const r of proxy.pipeline.tunnels) {
        assert.equal(r.protocol, 'http');
        assert.equal(r.cmd, 'connect');
      }
    } finally {
      s.destroy();
    }
  });

  const cases: [RejectReason, number][] = [
    ['denied', 403],
    ['bad-request', 400],
    ['unreachable', 502],
    ['refused', 502],
    ['timeout', 504],
  ];
  for (const [reason, status] of cases) {
    test(`${reason} → :status ${status} with the message; the connection serves on`, async () => {
      reset();
      proxy.pipeline.policy = (req) =>
        req.target.port === 1 ? { reason, message: `nope ${reason}` } : undefined;
      const s = await session();
      try {
        const denied = s.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:1' });
        const headers = await response(denied);
        assert.equal(headers[':status'], status);
        assert.equal(headers['content-type'], 'text/plain; charset=utf-8');
        assert.equal(await readAll(denied), `nope ${reason}\n`);
        const ok = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` });
        assert.equal((await response(ok))[':status'], 200);
        ok.close();
      } finally {
        s.destroy();
      }
    });
  }

  test('malformed :authority → 400, pipeline not asked', async () => {
    reset();
    const s = await session();
    try {
      for (const authority of ['example.com:99999', 'example.com:abc', 'a..b:443', '[::1']) {
        const st = s.request({ ':method': 'CONNECT', ':authority': authority });
        assert.equal((await response(st))[':status'], 400, authority);
        st.resume();
      }
      assert.equal(proxy.pipeline.tunnels.length, 0);
    } finally {
      s.destroy();
    }
  });

  test('an :authority nghttp2 itself refuses resets the stream, not the connection', async () => {
    reset();
    const s = await session();
    try {
      const bad = s.request({ ':method': 'CONNECT', ':authority': 'bad host:1' });
      await assert.rejects(response(bad), /PROTOCOL_ERROR/);
      const ok = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` });
      assert.equal((await response(ok))[':status'], 200);
      ok.close();
    } finally {
      s.destroy();
    }
  });

  test('a non-CONNECT request → 400', async () => {
    reset();
    const s = await session();
    try {
      const st = s.request({ ':method': 'GET', ':path': '/', ':authority': 'example.com' });
      assert.equal((await response(st))[':status'], 400);
      st.resume();
      assert.equal(proxy.pipeline.tunnels.length, 0);
    } finally {
      s.destroy();
    }
  });
});
