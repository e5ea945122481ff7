// Upstream sockets made by relaySocket(): plain sockets until a relay takes them over,
// then read into one reused buffer. What must hold: no byte lost, reordered or
// overwritten (a pending write still points into the buffer), data that arrived before
// the relay, and no buffer held by an idle relay.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, test } from 'node:test';
import {
  adoptReads,
  readSinkOf,
  relaySocket,
  setBufferIdleMsForTests,
} from '../../../proxy/net/fast-read.js';
import { type RelayStats, relay } from '../../../proxy/relay/index.js';

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function listen(onConn?: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return srv;
}
const portOf = (srv: net.Server) => (srv.address() as net.AddressInfo).port;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** user ⇄ [accepted | relay | relaySocket] ⇄ origin, the relay started after `delayMs`. */
async function chain(originConn: (s: net.Socket) => void, delayMs = 0) {
  const origin = await listen(originConn);
  const proxy = await listen();
  const accepted = once(proxy, 'connection');
  const user = net.connect({ port: portOf(proxy), host: '127.0.0.1', allowHalfOpen: true });
  const [clientSide] = (await accepted) as [net.Socket];
  const up = relaySocket().connect({ port: portOf(origin), host: '127.0.0.1' });
  await once(up, 'connect');
  if (delayMs) await sleep(delayMs);
  let resolveClosed!: (s: RelayStats) => void;
  const closed = new Promise<RelayStats>((r) => {
    resolveClosed = r;
  });
  const r = relay(clientSide, up, { idleTimeoutMs: 0, onClose: resolveClosed });
  return { user, up, relay: r, closed };
}

test('without a relay, a relaySocket is a plain socket: data events, pause, end, byte-exact', async () => {
  const data = randomBytes(6 * 1024 * 1024 + 3);
  const srv = await listen((s) => s.end(data));
  const sock = relaySocket().connect({ port: portOf(srv), host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  let n = 0;
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    // Pause now and then: reading must stop and restart without loss.
    if (++n % 7 === 0) {
      sock.pause();
      setTimeout(() => sock.resume(), 2);
    }
  });
  await once(sock, 'end');
  const got = Buffer.concat(chunks);
  assert.equal(got.length, data.length);
  assert.equal(sha(got), sha(data));
  // Chunks are copies, not views of one reused buffer.
  assert.ok(new Set(chunks.map((c) => c.buffer)).size > 1 || chunks.length === 1);
  sock.destroy();
});

test('bytes the origin sent before the relay started arrive first, and are counted', async () => {
  const banner = Buffer.from('220 hello, speaking first\r\n');
  const rest = randomBytes(3 * 1024 * 1024);
  let originSock!: net.Socket;
  const c = await chain((s) => {
    originSock = s;
    s.write(banner);
  }, 100);
  const got = readAll(c.user);
  originSock.end(rest);
  c.user.end();
  const all = await got;
  assert.ok(all.subarray(0, banner.length).equals(banner), 'the banner comes first');
  assert.equal(sha(all.subarray(banner.length)), sha(rest));
  const stats = await c.closed;
  assert.equal(stats.closeReason, 'completed');
  assert.equal(stats.bytesDown, banner.length + rest.length);
});

test('an idle relay holds no buffer of its own; one that relayed does', async () => {
  let originSock!: net.Socket;
  const c = await chain((s) => {
    originSock = s;
  });
  const sink = readSinkOf(c.up) as unknown as { own: Buffer | null };
  assert.ok(sink, 'the socket has a read sink');
  await sleep(50);
  assert.equal(sink.own, null);
  const chunks: Buffer[] = [];
  c.user.on('data', (b: Buffer) => chunks.push(b));
  originSock.write(randomBytes(256 * 1024));
  while (Buffer.concat(chunks).length < 256 * 1024) await sleep(5);
  assert.ok(Buffer.isBuffer(sink.own as unknown), 'a buffer once it relayed in bulk');
  originSock.end();
  c.user.end();
  await c.closed;
  assert.equal(sink.own, null, 'dropped when the relay ended');
});

test('small exchanges are relayed as copies: no buffer of its own for a request and its reply', async () => {
  let originSock!: net.Socket;
  const c = await chain((s) => {
    originSock = s;
    s.on('data', () => s.write('HTTP/1.1 204 No Content\r\n\r\n'));
  });
  const sink = readSinkOf(c.up) as unknown as { own: Buffer | null };
  const reply = once(c.user, 'data');
  c.user.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const [got] = (await reply) as [Buffer];
  assert.equal(got.toString(), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(sink.own, null);
  c.user.destroy();
  originSock.destroy();
  await c.closed;
});

test('many relays at once with slow readers: every stream intact (no buffer shared by mistake)', async () => {
  const streams = 12;
  const size = 4 * 1024 * 1024;
  const payloads = Array.from({ length: streams }, () => randomBytes(size));
  let next = 0;
  const chains = [];
  for (let i = 0; i < streams; i++) {
    chains.push(
      await chain((s) => {
        const p = payloads[next++];
        // Many small writes and a few large ones: every chunk size on the way.
        let off = 0;
        const pump = () => {
          while (off < p.length) {
            const len = Math.min(p.length - off, off % 3 === 0 ? 1500 : 200_000);
            const ok = s.write(p.subarray(off, off + len));
            off += len;
            if (!ok) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      }),
    );
  }
  const results = await Promise.all(
    chains.map(async (c, i) => {
      // Readers that stall now and then, so that writes to them are left pending.
      const chunks: Buffer[] = [];
      c.user.on('data', (b: Buffer) => {
        chunks.push(b);
        if (chunks.length % (3 + i) === 0) {
          c.user.pause();
          setTimeout(() => c.user.resume(), 1 + (i % 4));
        }
      });
      await once(c.user, 'end');
      c.user.end();
      await c.closed;
      return Buffer.concat(chunks);
    }),
  );
  for (let i = 0; i < streams; i++) {
    assert.equal(results[i].length, size, `stream ${i} length`);
    assert.equal(sha(results[i]), sha(payloads[i]), `stream ${i} content`);
  }
});

test('a relay idle for a while gives its buffer back, and takes one again when data comes', async () => {
  setBufferIdleMsForTests(50);
  let originSock!: net.Socket;
  const c = await chain((s) => {
    originSock = s;
  });
  const sink = readSinkOf(c.up) as unknown as { own: Buffer | null };
  const chunks: Buffer[] = [];
  c.user.on('data', (b: Buffer) => chunks.push(b));
  const first = randomBytes(300 * 1024);
  originSock.write(first);
  while (Buffer.concat(chunks).length < first.length) await sleep(5);
  assert.ok(Buffer.isBuffer(sink.own as unknown), 'a buffer while relaying');
  await sleep(200);
  assert.equal(sink.own, null, 'given back after an idle period');
  const second = randomBytes(700 * 1024);
  originSock.end(second);
  c.user.end();
  await once(c.user, 'end');
  assert.equal(sha(Buffer.concat(chunks)), sha(Buffer.concat([first, second])));
  const stats = await c.closed;
  assert.equal(stats.bytesDown, first.length + second.length);
  assert.equal(sink.own, null, 'dropped when the relay ended');
  setBufferIdleMsForTests(10_000);
});

test('an accepted client socket is adopted: uploads read into its own buffer, byte-exact', async () => {
  const data = randomBytes(5 * 1024 * 1024 + 11);
  let received: Promise<Buffer> | undefined;
  const c = await chain((s) => {
    received = readAll(s);
    s.on('end', () => s.end());
  });
  const clientSide = (c.relay as unknown as { c: { stream: net.Socket } }).c.stream;
  const sink = readSinkOf(clientSide) as unknown as { own: Buffer | null } | undefined;
  assert.ok(sink, 'the accepted socket was adopted');
  c.user.end(data);
  c.user.resume();
  const got = await (received as Promise<Buffer>);
  assert.equal(sha(got), sha(data));
  assert.equal((await c.closed).bytesUp, data.length);
});

test('adoption leaves alone a socket someone still reads', async () => {
  const srv = await listen();
  const accepted = once(srv, 'connection');
  const user = net.connect({ port: portOf(srv), host: '127.0.0.1' });
  const [s] = (await accepted) as [net.Socket];
  s.on('data', () => {});
  assert.equal(adoptReads(s), undefined);
  assert.equal(readSinkOf(s), undefined);
  user.destroy();
  s.destroy();
});
