// HTTP/1.1 front-end against real clients: curl (-x, --proxytunnel) and a raw socket
// client for exact status lines, bodies, keep-alive and pipelined bytes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RejectReason } from '../../../proxy/types.js';
import {
  curl,
  type EchoServer,
  needCurl,
  type Origin,
  type ProxyUnderTest,
  RawClient,
  readResponse,
  startEcho,
  startOrigin,
  startProxy,
} from './helpers.js';

let proxy: ProxyUnderTest;
let echo: EchoServer;
let echo6: EchoServer;
let origin: Origin;

before(async () => {
  proxy = await startProxy({ limits: { maxHeaderCount: 50, maxHeaderBytes: 8 * 1024 } });
  echo = await startEcho();
  echo6 = await startEcho('::1');
  origin = await startOrigin();
});
after(async () => {
  await proxy.close();
  await echo.close();
  await echo6.close();
  await origin.close();
});

function reset() {
  proxy.pipeline.policy = () => undefined;
  proxy.pipeline.delayMs = 0;
  proxy.pipeline.tunnels.length = 0;
  proxy.pipeline.forwards.length = 0;
  proxy.pipeline.finished.length = 0;
  origin.seen.length = 0;
  proxy.errors.length = 0;
}

async function connectRequest(authority: string, extra = ''): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  c.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extra}\r\n`);
  return c;
}

describe('HTTP CONNECT refusals', () => {
  const cases: [RejectReason, number][] = [
    ['denied', 403],
    ['dns', 502],
    ['unreachable', 502],
    ['refused', 502],
    ['internal', 502],
    ['timeout', 504],
    ['overloaded', 503],
    ['bad-request', 400],
  ];
  for (const [reason, status] of cases) {
    test(`${reason} → ${status}, body = the message, connection closed`, async () => {
      reset();
      proxy.pipeline.policy = () => ({ reason, message: `no: ${reason}` });
      const c = await connectRequest(`127.0.0.1:${echo.port}`);
      const r = await readResponse(c);
      assert.equal(r.status, status);
      assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(r.body, `no: ${reason}\n`);
      assert.equal(r.headers.get('connection'), 'close');
      await c.waitClosed();
    });
  }

  test('curl --proxytunnel on denial: exit 56 "CONNECT tunnel failed, response 403"', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    proxy.pipeline.policy = () => ({ reason: 'denied', message: 'denied by policy web' });
    const r = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '--proxytunnel',
      `http://127.0.0.1:${origin.port}/`,
    ]);
    assert.equal(r.code, 56, r.stderr);
    assert.match(r.stderr, /CONNECT tunnel failed, response 403/);
  });

  test('the denial body is HTML only when Accept names text/html (escaped)', async () => {
    reset();
    proxy.pipeline.policy = () => ({ reason: 'denied', message: 'denied by policy <b>&' });
    let c = await connectRequest(
      `127.0.0.1:${echo.port}`,
      'Accept: text/html,application/xhtml+xml;q=0.9\r\n',
    );
    let r = await readResponse(c);
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(r.body, /denied by policy &#60;b&#62;&#38;/);
    assert.doesNotMatch(r.body, /<b>/);
    c = await connectRequest(`127.0.0.1:${echo.port}`, 'Accept: text/html;q=0, */*\r\n');
    r = await readResponse(c);
    assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(r.body, 'denied by policy <b>&\n');
  });

  test('an ACL redirect on CONNECT is a 403 naming the URI', async () => {
    reset();
    proxy.pipeline.policy = () => ({
      reason: 'denied',
      message: 'see the help page',
      redirect: 'https://help.example/why',
    });
    const c = await connectRequest(`127.0.0.1:${echo.port}`);
    const r = await readResponse(c);
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('location'), undefined);
    assert.equal(r.body, 'see the help page\nhttps://help.example/why\n');
  });
});

describe('HTTP CONNECT request bounds', () => {
  const bad = [
    'example.com:99999',
    'example.com:0',
    'example.com:abc',
    'user@example.com:443',
    'example.com:443/path',
    'http://example.com:443',
    '[::1',
    '[zz::1]:443',
    '[::1]x',
    'ex_ample..com:443',
    '/just/a/path',
  ];
  for (const authority of bad) {
    test(`CONNECT ${authority} → 400, pipeline not asked`, async () => {
      reset();
      const c = await connectRequest(authority);
      const r = await readResponse(c);
      assert.equal(r.status, 400);
      await c.waitClosed();
      assert.equal(proxy.pipeline.tunnels.length, 0);
    });
  }

  test('CONNECT without a port means 443', async () => {
    reset();
    proxy.pipeline.policy = () => ({ reason: 'denied', message: 'no' });
    const c = await connectRequest('Example.COM.');
    assert.equal((await readResponse(c)).status, 403);
    assert.deepEqual(proxy.pipeline.tunnels[0].target, { host: 'example.com', port: 443 });
    assert.equal(proxy.pipeline.tunnels[0].protocol, 'http');
    assert.equal(proxy.pipeline.tunnels[0].cmd, 'connect');
  });

  test('too many header fields → 431', async () => {
    reset();
    const extra = Array.from({ length: 60 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const c = await connectRequest(`127.0.0.1:${echo.port}`, extra);
    assert.equal((await readResponse(c)).status, 431);
    assert.equal(proxy.pipeline.tunnels.length, 0);
  });

  test('a request head over the size bound → 431', async () => {
    reset();
    const c = await connectRequest(`127.0.0.1:${echo.port}`, `X-Big: ${'a'.repeat(10_000)}\r\n`);
    assert.equal((await readResponse(c)).status, 431);
    await c.waitClosed();
  });

  test('garbage → 400 and close', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write('HELLO THERE\r\n\r\n');
    assert.equal((await readResponse(c)).status, 400);
    await c.waitClosed();
  });
});

describe('HTTP CONNECT tunnels', () => {
  test('curl --proxytunnel reaches the origin through CONNECT', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const r = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '--proxytunnel',
      `http://echo.portail.test:${origin.port}/t`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello from origin GET /t\n');
    assert.equal(proxy.pipeline.forwards.length, 0);
    const [req] = proxy.pipeline.tunnels;
    assert.deepEqual(req.target, { host: 'echo.portail.test', port: origin.port });
    assert.equal(req.cmd, 'connect');
    assert.equal(req.client.ip, '127.0.0.1');
  });

  test('bytes pipelined after the CONNECT head are not lost', async () => {
    reset();
    proxy.pipeline.delayMs = 100;
    const c = await connectRequest(`127.0.0.1:${echo.port}`);
    c.write('early|');
    setTimeout(() => c.write('during|'), 30);
    assert.equal(await c.readUntil('\r\n\r\n'), 'HTTP/1.1 200 Connection established\r\n\r\n');
    c.write('after');
    assert.equal((await c.read(18)).toString(), 'early|during|after');
    c.destroy();
  });

  test('bytes in the same packet as the CONNECT head are not lost', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\nsame-packet`);
    await c.readUntil('\r\n\r\n');
    assert.equal((await c.read(11)).toString(), 'same-packet');
    c.destroy();
  });

  test('IPv6 literal authority [::1]:port', async () => {
    reset();
    const c = await connectRequest(`[::1]:${echo6.port}`);
    assert.match(await c.readUntil('\r\n\r\n'), /^HTTP\/1\.1 200 /);
    c.write('v6');
    assert.equal((await c.read(2)).toString(), 'v6');
    assert.deepEqual(proxy.pipeline.tunnels[0].target, { host: '::1', port: echo6.port });
    c.destroy();
  });
});

describe('HTTP plain forwarding (absolute-form)', () => {
  test('curl -x: origin-form upstream, hop-by-hop fields removed, facts in the request', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const r = await curl([
      '-i',
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '-U',
      'alice:secret',
      '-H',
      'Connection: X-Private',
      '-H',
      'X-Private: hop',
      '-H',
      'X-Kept: yes',
      `http://echo.portail.test:${origin.port}/a/../b/c?x=1&y=2`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.stdout, /hello from origin GET \/b\/c\?x=1&y=2\n$/);
    assert.doesNotMatch(r.stdout, /X-Secret-Hop/i);
    assert.match(r.stdout, /Via: 1\.1 portail/i);
    const [seen] = origin.seen;
    assert.equal(seen.url, '/b/c?x=1&y=2');
    assert.equal(seen.headers.host, `echo.portail.test:${origin.port}`);
    assert.equal(seen.headers['x-kept'], 'yes');
    assert.equal(seen.headers.connection, 'close');
    assert.equal(seen.headers.via, '1.1 portail');
    for (const hop of ['proxy-authorization', 'proxy-connection', 'x-private']) {
      assert.equal(seen.headers[hop], undefined, hop);
    }
    const [req] = proxy.pipeline.forwards;
    assert.equal(req.cmd, 'forward');
    assert.equal(req.protocol, 'http');
    assert.deepEqual(req.target, { host: 'echo.portail.test', port: origin.port });
    assert.deepEqual(req.http, { method: 'GET', scheme: 'http', path: '/b/c', query: 'x=1&y=2' });
    const [fin] = proxy.pipeline.finished;
    assert.equal(fin.closeReason, 'completed');
    assert.ok(fin.bytesUp > 0 && fin.bytesDown > 0);
  });

  test('request bodies are forwarded (Content-Length and chunked)', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    let r = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '-d',
      'a=1',
      `http://127.0.0.1:${origin.port}/post`,
    ]);
    assert.equal(r.stdout, 'hello from origin POST /post body=a=1\n', r.stderr);
    r = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '-H',
      'Transfer-Encoding: chunked',
      '-d',
      'chunky',
      `http://127.0.0.1:${origin.port}/chunked`,
    ]);
    assert.equal(r.stdout, 'hello from origin POST /chunked body=chunky\n', r.stderr);
  });

  test('curl -x to an IPv6 literal URL', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const origin6 = await startOrigin('::1');
    try {
      const r = await curl([
        '-x',
        `http://127.0.0.1:${proxy.port}`,
        `http://[::1]:${origin6.port}/six`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello from origin GET /six\n');
      assert.equal(origin6.seen[0].headers.host, `[::1]:${origin6.port}`);
      assert.deepEqual(proxy.pipeline.forwards[0].target, { host: '::1', port: origin6.port });
    } finally {
      await origin6.close();
    }
  });

  test('keep-alive: two requests on one client connection', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write(`GET http://127.0.0.1:${origin.port}/one HTTP/1.1\r\nHost: x\r\n\r\n`);
    const first = await readResponse(c);
    assert.equal(first.body, 'hello from origin GET /one\n');
    c.write(`GET http://127.0.0.1:${origin.port}/two HTTP/1.1\r\nHost: x\r\n\r\n`);
    const second = await readResponse(c);
    assert.equal(second.body, 'hello from origin GET /two\n');
    assert.equal(c.closed, false);
    assert.equal(proxy.pipeline.forwards.length, 2);
    assert.equal(proxy.pipeline.forwards[0].client.port, proxy.pipeline.forwards[1].client.port);
    c.destroy();
  });

  test('keep-alive with curl: two URLs, one client connection', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const accepted = proxy.listener.accepted;
    const base = `http://127.0.0.1:${origin.port}`;
    const r = await curl(['-x', `http://127.0.0.1:${proxy.port}`, `${base}/1`, `${base}/2`]);
    assert.equal(r.stdout, 'hello from origin GET /1\nhello from origin GET /2\n', r.stderr);
    assert.equal(proxy.listener.accepted - accepted, 1);
    assert.equal(proxy.pipeline.forwards.length, 2);
  });

  test('denied → 403 with the message, and the connection stays usable', async () => {
    reset();
    proxy.pipeline.policy = (req) =>
      req.http?.path === '/no' ? { reason: 'denied', message: 'no policy matched' } : undefined;
    const c = await RawClient.connect(proxy.port);
    c.write(`GET http://127.0.0.1:${origin.port}/no HTTP/1.1\r\nHost: x\r\n\r\n`);
    const denied = await readResponse(c);
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'no policy matched\n');
    assert.equal(origin.seen.length, 0);
    c.write(`GET http://127.0.0.1:${origin.port}/yes HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal((await readResponse(c)).body, 'hello from origin GET /yes\n');
    c.destroy();
  });

  test('redirect → 302 with Location', async () => {
    reset();
    proxy.pipeline.policy = () => ({
      reason: 'denied',
      message: 'go there',
      redirect: 'https://help.example/a b',
    });
    const c = await RawClient.connect(proxy.port);
    c.write(`GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    const r = await readResponse(c);
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('location'), 'https://help.example/a%20b');
    c.destroy();
  });

  test('Expect: 100-continue is answered only after the destination is allowed', async () => {
    reset();
    proxy.pipeline.policy = () => ({ reason: 'denied', message: 'no' });
    let c = await RawClient.connect(proxy.port);
    const head = `POST http://127.0.0.1:${origin.port}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`;
    c.write(head);
    assert.equal((await readResponse(c)).status, 403);
    c.destroy();
    reset();
    c = await RawClient.connect(proxy.port);
    c.write(head);
    assert.equal(await c.readUntil('\r\n\r\n'), 'HTTP/1.1 100 Continue\r\n\r\n');
    c.write('hello');
    assert.equal((await readResponse(c)).body, 'hello from origin POST /up body=hello\n');
    assert.equal(origin.seen[0].headers.expect, undefined);
    c.destroy();
  });

  const notForUs: [string, string][] = [
    [
      'origin-form (a request to the proxy itself)',
      'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    ],
    ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['https:// absolute URI', 'GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['ftp:// absolute URI', 'GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['userinfo in the URI', 'GET http://u:p@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['empty host', 'GET http:///path HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['bad port', 'GET http://example.com:70000/ HTTP/1.1\r\nHost: example.com\r\n\r\n'],
  ];
  for (const [name, request] of notForUs) {
    test(`${name} → 400, pipeline not asked`, async () => {
      reset();
      const c = await RawClient.connect(proxy.port);
      c.write(request);
      assert.equal((await readResponse(c)).status, 400);
      assert.equal(proxy.pipeline.forwards.length, 0);
      c.destroy();
    });
  }

  test('an origin that answers garbage → 502', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    // The echo server sends the request back: not an HTTP response.
    c.write(`GET http://127.0.0.1:${echo.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal((await readResponse(c)).status, 502);
    c.destroy();
    assert.equal(proxy.pipeline.finished[0].closeReason, 'upstream_error');
  });

  test('a refused upstream → 502 with the message', async () => {
    reset();
    proxy.pipeline.policy = () => ({
      reason: 'refused',
      message: 'connection refused by 127.0.0.1:1',
    });
    const c = await RawClient.connect(proxy.port);
    c.write('GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await readResponse(c);
    assert.equal(r.status, 502);
    assert.equal(r.body, 'connection refused by 127.0.0.1:1\n');
    c.destroy();
  });
});
