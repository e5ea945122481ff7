// Byte-exactness and half-close through the real daemon: 1 GiB each way with sha256
// compared at both ends (generated as a stream, never held in memory), and a FIN in
// each direction with the other still flowing.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { closed, readBytes, socksConnect, startPortail, tcpServer } from './portail.js';

const GiB = 1024 * 1024 * 1024;
const CHUNK = 256 * 1024;

/** Writes `total` bytes (a random block, each chunk stamped with its index, so a lost or
 * reordered chunk changes the hash) with backpressure; resolves with their sha256. */
async function send(s: net.Socket, total: number): Promise<string> {
  const block = randomBytes(CHUNK);
  const hash = createHash('sha256');
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const n = Math.min(CHUNK, total - sent);
    const chunk = Buffer.allocUnsafe(n);
    block.copy(chunk, 0, 0, n);
    chunk.writeUInt32BE(i++ >>> 0, 0);
    hash.update(chunk);
    sent += n;
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  return hash.digest('hex');
}

/** Hashes everything until EOF. */
function receive(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    s.once('end', () => resolve({ sha: hash.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

test('1 GiB in each direction at once, sha256 equal at both ends', {
  timeout: 120_000,
}, async (t) => {
  let originSide: Promise<{ sha: string; bytes: number }> | undefined;
  let originSent: Promise<string> | undefined;
  const origin = await tcpServer(t, (s) => {
    originSide = receive(s);
    originSent = send(s, GiB);
  });
  const p = await startPortail(t);
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  const t0 = Date.now();
  const [clientSent, clientGot] = await Promise.all([send(c, GiB), receive(c)]);
  const up = await (originSide as Promise<{ sha: string; bytes: number }>);
  const downSha = await (originSent as Promise<string>);
  const secs = (Date.now() - t0) / 1000;
  t.diagnostic(`2 GiB relayed in ${secs.toFixed(1)} s (${((2 * 1024) / secs).toFixed(0)} MiB/s)`);
  assert.equal(up.bytes, GiB);
  assert.equal(up.sha, clientSent);
  assert.equal(clientGot.bytes, GiB);
  assert.equal(clientGot.sha, downSha);
  const close = await p.waitRecord((r) => r.event === 'close');
  assert.equal(close.bytes_up, GiB);
  assert.equal(close.bytes_down, GiB);
  assert.equal(close.close_reason, 'completed');
});

/** An origin that answers the sha256 of what it received once the client's FIN came. */
function answerWithHash(s: net.Socket): void {
  const hash = createHash('sha256');
  s.on('data', (c) => hash.update(c));
  s.on('end', () => s.end(hash.digest('hex')));
}

test('half-close: the client ends first and still gets the answer', async (t) => {
  const origin = await tcpServer(t, answerWithHash);
  const p = await startPortail(t);
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  const body = randomBytes(300_000);
  c.end(body);
  const answer = await readBytes(c, 64);
  assert.equal(answer.toString(), createHash('sha256').update(body).digest('hex'));
  await closed(c);
  const close = await p.waitRecord((r) => r.event === 'close');
  assert.equal(close.close_reason, 'completed');
  assert.equal(close.bytes_up, body.length);
});

test('half-close before the reply: data and FIN sent with the request reach the origin', async (t) => {
  const origin = await tcpServer(t, answerWithHash);
  const p = await startPortail(t);
  // Greeting, CONNECT, data and FIN in one go, before any answer: the FIN can reach the
  // daemon while it is still connecting (repeated: which comes first is a race).
  for (let i = 0; i < 10; i++) {
    const c = net.connect(p.port, '127.0.0.1');
    c.allowHalfOpen = true;
    await once(c, 'connect');
    // Every other round no data at all: the FIN comes right after the request.
    const body = randomBytes(i % 2 === 0 ? 0 : 1000 + i);
    const request = Buffer.from([
      5,
      1,
      0,
      5,
      1,
      0,
      1,
      127,
      0,
      0,
      1,
      origin.port >> 8,
      origin.port & 255,
    ]);
    c.end(Buffer.concat([request, body]));
    const answer = await readBytes(c, 2 + 10 + 64, 5000);
    assert.deepEqual(answer.subarray(0, 3), Buffer.from([5, 0, 5]), 'method, then a reply');
    assert.equal(answer[3], 0, `CONNECT refused: ${answer.toString('hex')}`);
    assert.equal(
      answer.subarray(12).toString(),
      createHash('sha256').update(body).digest('hex'),
      `round ${i}: the origin did not get the body and its FIN`,
    );
    await closed(c);
  }
});

test('half-close: the origin ends first, the client keeps sending', async (t) => {
  let got: Promise<Buffer> | undefined;
  const origin = await tcpServer(t, (s) => {
    s.end('banner\n');
    got = readBytes(s, 1e9, 5000);
  });
  const p = await startPortail(t);
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  const banner = await readBytes(c, 1e9); // until the origin's FIN
  assert.equal(banner.toString(), 'banner\n');
  c.write('after ');
  await new Promise((r) => setTimeout(r, 100));
  c.end('the FIN');
  assert.equal((await (got as Promise<Buffer>)).toString(), 'after the FIN');
  const close = await p.waitRecord((r) => r.event === 'close');
  assert.equal(close.close_reason, 'completed');
});
