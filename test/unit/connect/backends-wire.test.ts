// The upstream handshakes on the wire, against small loopback servers that answer
// exactly what each case needs: HTTP CONNECT responses (strict parsing, bounded size,
// bytes after the head kept) and SOCKS5 reply codes mapped to our refusal reasons.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import {
  httpConnect,
  MAX_RESPONSE_HEAD,
  parseConnectResponse,
} from '../../../proxy/connect/upstream-http.js';
import { socks5Connect } from '../../../proxy/connect/upstream-socks5.js';
import { ConnectError } from '../../../proxy/types.js';

type Owner = { after(fn: () => void): void };

/** A server that runs `script` on each connection; returns a connected client socket. */
async function peer(t: Owner, script: (s: net.Socket, firstChunk: Buffer) => void) {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.once('data', (d) => script(s, d));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'connect');
  t.after(() => c.destroy());
  return c;
}

const target = { host: 'origin.example', port: 8443 };
const sig = () => new AbortController().signal;

test('parseConnectResponse: strict status line and header lines', () => {
  assert.deepEqual(parseConnectResponse('HTTP/1.1 200 Connection established'), {
    status: 200,
    reason: 'Connection established',
  });
  assert.deepEqual(parseConnectResponse('HTTP/1.0 200\r\nVia: 1.1 squid'), {
    status: 200,
    reason: '',
  });
  for (const bad of [
    'HTTP/2 200 OK',
    'HTTP/1.1 20 OK',
    'ICY 200 OK',
    'HTTP/1.1 200 OK\r\nno colon here',
    'HTTP/1.1 200 OK\r\n bad: folded',
    'HTTP/1.1 200 O\x00K',
  ]) {
    assert.ok('error' in parseConnectResponse(bad), JSON.stringify(bad));
  }
});

test('httpConnect: sends CONNECT with Host, keeps the bytes that followed the head', async (t) => {
  let request = '';
  const c = await peer(t, (s, d) => {
    request = d.toString('latin1');
    s.write('HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\nSSH-2.0-banner\r\n');
  });
  const stream = await httpConnect(c, target, { proxy: 'p', signal: sig() });
  assert.equal(
    request,
    'CONNECT origin.example:8443 HTTP/1.1\r\nHost: origin.example:8443\r\n\r\n',
  );
  const [first] = (await once(stream, 'data')) as [Buffer];
  assert.equal(first.toString(), 'SSH-2.0-banner\r\n');
});

test('httpConnect: IPv6 targets are bracketed', async (t) => {
  let request = '';
  const c = await peer(t, (s, d) => {
    request = d.toString('latin1');
    s.write('HTTP/1.1 200 OK\r\n\r\n');
  });
  await httpConnect(c, { host: '2001:db8::1', port: 443 }, { proxy: 'p', signal: sig() });
  assert.match(request, /^CONNECT \[2001:db8::1\]:443 HTTP\/1\.1\r\n/);
});

test('httpConnect: refusals map to reasons; the stream is destroyed', async (t) => {
  const cases: [string, ConnectError['reason']][] = [
    ['HTTP/1.1 403 Forbidden\r\n\r\n', 'refused'],
    ['HTTP/1.1 407 Proxy Authentication Required\r\n\r\n', 'refused'],
    ['HTTP/1.1 502 Bad Gateway\r\n\r\n', 'unreachable'],
    ['HTTP/1.1 503 Service Unavailable\r\n\r\n', 'unreachable'],
    ['HTTP/1.1 504 Gateway Timeout\r\n\r\n', 'timeout'],
    ['HTTP/1.1 301 Moved\r\n\r\n', 'internal'],
    ['HTTP/1.1 200 OK\r\nBad Header\r\n\r\n', 'internal'],
    ['SOCKS? no\r\n\r\n', 'internal'],
  ];
  for (const [answer, reason] of cases) {
    const c = await peer(t, (s) => s.write(answer));
    await assert.rejects(httpConnect(c, target, { proxy: 'p', signal: sig() }), (e) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.reason, reason, answer);
      return true;
    });
    assert.equal(c.destroyed, true);
  }
});

test('httpConnect: an endless head is cut at the bound; a close before the answer fails', async (t) => {
  const big = await peer(t, (s) => {
    s.write(`HTTP/1.1 200 OK\r\n`);
    s.write(`X-Filler: ${'a'.repeat(MAX_RESPONSE_HEAD + 10)}`);
  });
  await assert.rejects(httpConnect(big, target, { proxy: 'p', signal: sig() }), /too large/);
  const closing = await peer(t, (s) => s.end('HTTP/1.1 200 OK\r\n'));
  await assert.rejects(
    httpConnect(closing, target, { proxy: 'p', signal: sig() }),
    /closed before answering/,
  );
});

test('httpConnect: an abort ends the wait as a timeout; bad hosts are never written', async (t) => {
  const silent = await peer(t, () => {});
  const ac = new AbortController();
  const p = httpConnect(silent, target, { proxy: 'p', signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e) => e instanceof ConnectError && e.reason === 'timeout');
  let got = '';
  const c = await peer(t, (_s, d) => {
    got = d.toString();
  });
  await assert.rejects(
    httpConnect(c, { host: 'a\r\nX-Evil: 1', port: 80 }, { proxy: 'p', signal: sig() }),
    /invalid destination/,
  );
  assert.equal(got, '');
});

test('socks5Connect: reply codes map to reasons and say the upstream answered', async (t) => {
  const reply = (code: number) => (s: net.Socket) => {
    s.write(Buffer.from([5, 0]));
    s.once('data', () => s.write(Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0])));
  };
  const cases: [number, ConnectError['reason']][] = [
    [1, 'internal'],
    [2, 'refused'],
    [3, 'unreachable'],
    [4, 'unreachable'],
    [5, 'refused'],
    [6, 'timeout'],
  ];
  for (const [code, reason] of cases) {
    const c = await peer(t, reply(code));
    await assert.rejects(
      socks5Connect(c, target, { proxy: 'up', signal: sig(), timeoutMs: 2000 }),
      (e) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.reason, reason, `code ${code}: ${e.message}`);
        assert.match(e.message, /up rejected the request/);
        return true;
      },
    );
  }
  const ok = await peer(t, reply(0));
  const s = await socks5Connect(ok, target, { proxy: 'up', signal: sig(), timeoutMs: 2000 });
  assert.equal(s, ok);
});
