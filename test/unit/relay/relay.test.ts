// The relay between real loopback TCP sockets: byte-exact both ways, half-close in
// both orders, backpressure, idle timeout, errors, explicit close, one close callback.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { relaySocket, setAdoptReadsForTests } from '../../../proxy/net/fast-read.js';
import { type Relay, RelayRegistry, type RelayStats, relay } from '../../../proxy/relay/index.js';

interface Rig {
  /** The end-user's socket (talks to the proxy). */
  user: net.Socket;
  /** The origin's accepted socket. */
  origin: net.Socket;
  relay: Relay;
  closed: Promise<RelayStats>;
  calls: () => number;
}

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** Resolves with the next socket the server accepts. */
function nextConnection(srv: net.Server): Promise<net.Socket> {
  return once(srv, 'connection').then(([s]) => s as net.Socket);
}

async function listen(): Promise<{ srv: net.Server; port: number }> {
  const srv = net.createServer({ allowHalfOpen: true });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, port: (srv.address() as net.AddressInfo).port };
}

/** A user connected to a listening "proxy": the user's socket and the proxy's accepted side. */
async function userConnection(): Promise<{ user: net.Socket; clientSide: net.Socket }> {
  const proxy = await listen();
  const accepted = nextConnection(proxy.srv);
  const user = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
  return { user, clientSide: await accepted };
}

/** The proxy's upstream socket: plain (read with 'data' events), or as the direct connector makes it. */
function upstreamTo(port: number, fast: boolean): net.Socket {
  // Deliberately without allowHalfOpen, as a connector might create it: the relay must fix it.
  if (fast) return relaySocket().connect({ port, host: '127.0.0.1' });
  return net.connect({ port, host: '127.0.0.1' });
}

/** user ⇄ [proxy client side | relay | proxy upstream side] ⇄ origin. */
async function rig(idleTimeoutMs: number, fast: boolean): Promise<Rig> {
  const origin = await listen();
  const { user, clientSide: proxyClientSide } = await userConnection();
  const originAccepted = nextConnection(origin.srv);
  const up = upstreamTo(origin.port, fast);
  await once(up, 'connect');
  const originSock = await originAccepted;
  let n = 0;
  let resolveClosed!: (s: RelayStats) => void;
  const closed = new Promise<RelayStats>((r) => {
    resolveClosed = r;
  });
  const r = relay(proxyClientSide, up, {
    idleTimeoutMs,
    onClose(stats) {
      n++;
      resolveClosed(stats);
    },
  });
  return { user, origin: originSock, relay: r, closed, calls: () => n };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves on 'close' (events.once would reject on the 'error' that precedes it). */
function closedP(s: net.Socket): Promise<void> {
  return new Promise((r) => s.once('close', () => r()));
}

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** What detachSockets() does with the bytes read but not relayed: take them out. */
function takeUnread(s: net.Socket): Buffer {
  const chunks: Buffer[] = [];
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) chunks.push(c);
  return Buffer.concat(chunks);
}

test('registry: whenEmpty waits for the last entry, or times out', async () => {
  const reg = new RelayRegistry<string>();
  assert.equal(await reg.whenEmpty(10), true);
  const closed: string[] = [];
  const a = { close: (why: string) => closed.push(`a:${why}`) };
  const b = { close: (why: string) => closed.push(`b:${why}`) };
  reg.add(a, 'A');
  reg.add(b, 'B');
  assert.equal(await reg.whenEmpty(30), false);
  const waiting = reg.whenEmpty(1000);
  reg.delete(a);
  assert.equal(reg.size, 1);
  reg.closeAll('shutdown');
  assert.deepEqual(closed, ['b:shutdown']);
  reg.delete(b);
  assert.equal(await waiting, true);
  assert.deepEqual(
    reg.list().map(([, m]) => m),
    [],
  );
});

for (const fast of [false, true]) {
  describe(
    fast ? 'both sides read into reused buffers' : "both sides read with 'data' events",
    () => {
      // Accepted client sockets are adopted (fast-read.ts) unless told not to.
      beforeEach(() => setAdoptReadsForTests(fast));
      afterEach(() => setAdoptReadsForTests(true));
      test('an upstream reset closes the client side with upstream_error, once', async () => {
        const r = await rig(0, fast);
        const userClosed = closedP(r.user);
        r.user.on('error', () => {});
        r.origin.resetAndDestroy();
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'upstream_error');
        await userClosed;
        await new Promise((res) => setTimeout(res, 20));
        assert.equal(r.calls(), 1);
        assert.equal(r.relay.closed, true);
      });

      test('a client reset closes the upstream with client_error', async () => {
        const r = await rig(0, fast);
        r.origin.on('error', () => {});
        const originClosed = closedP(r.origin);
        r.user.resetAndDestroy();
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'client_error');
        await originClosed;
      });

      test('idle timeout closes a silent relay, not an active one', async () => {
        const r = await rig(300, fast);
        r.user.on('error', () => {});
        r.origin.on('error', () => {});
        r.origin.on('data', () => {});
        // Active for 600 ms (twice the timeout): still open.
        const t0 = Date.now();
        while (Date.now() - t0 < 600) {
          r.user.write('x');
          await new Promise((res) => setTimeout(res, 50));
        }
        assert.equal(r.relay.closed, false);
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'idle_timeout');
        const idleFor = Date.now() - t0 - 600;
        assert.ok(idleFor >= 250 && idleFor < 1000, `closed after ${idleFor} ms of silence`);
      });

      // The idle check of a timeout value is shared and goes away once unused (at its
      // next tick): a relay that comes just before, or just after, must still be timed.
      for (const gapMs of [0, 150]) {
        test(`idle timeout still applies to a relay opened ${gapMs} ms after the last one closed`, async () => {
          const a = await rig(200, fast);
          a.user.on('error', () => {});
          a.origin.on('error', () => {});
          a.relay.close('policy_changed');
          await a.closed;
          await sleep(gapMs);
          const b = await rig(200, fast);
          b.user.on('error', () => {});
          b.origin.on('error', () => {});
          const t0 = Date.now();
          try {
            const stats = await Promise.race([b.closed, sleep(2000).then(() => null)]);
            assert.ok(stats, 'the second relay was never timed out');
            assert.equal(stats.closeReason, 'idle_timeout');
            assert.ok(Date.now() - t0 < 1000);
          } finally {
            b.relay.close('shutdown'); // a no-op once timed out; frees the sockets if not
          }
        });
      }

      test('close(reason) closes both sides and reports that reason', async () => {
        const r = await rig(0, fast);
        r.user.on('error', () => {});
        r.origin.on('error', () => {});
        const both = Promise.all([closedP(r.user), closedP(r.origin)]);
        r.relay.close('policy_changed');
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'policy_changed');
        await both;
        r.relay.close('shutdown'); // no-op once closed
        assert.equal(r.calls(), 1);
      });

      test('a side already destroyed when the relay starts closes it at once', async () => {
        const a = new net.Socket();
        a.destroy();
        const r = await rig(0, fast);
        r.origin.on('error', () => {});
        r.user.on('error', () => {});
        let stats: RelayStats | undefined;
        relay(a, r.origin, {
          idleTimeoutMs: 0,
          onClose(s) {
            stats = s;
          },
        });
        await closedP(r.origin);
        await new Promise((res) => setTimeout(res, 10));
        assert.equal(stats?.closeReason, 'client_error');
      });

      test('bytes pass unchanged both ways and are counted', async () => {
        const r = await rig(0, fast);
        const up = randomBytes(3 * 1024 * 1024 + 17);
        const down = randomBytes(2 * 1024 * 1024 + 5);
        const gotAtOrigin = readAll(r.origin);
        const gotAtUser = readAll(r.user);
        r.user.end(up);
        r.origin.end(down);
        assert.ok((await gotAtOrigin).equals(up));
        assert.ok((await gotAtUser).equals(down));
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'completed');
        assert.equal(stats.bytesUp, up.length);
        assert.equal(stats.bytesDown, down.length);
        assert.ok(stats.durationMs >= 0);
      });

      test('half-close: the client ends first and still reads the reply', async () => {
        const r = await rig(0, fast);
        const request = Buffer.from('hash this please');
        r.origin.on('data', () => {});
        const gotAtUser = readAll(r.user);
        const hash = createHash('sha256');
        r.origin.removeAllListeners('data');
        r.origin.on('data', (c) => hash.update(c));
        r.origin.on('end', () => {
          // The origin saw EOF; its own direction is still open.
          r.origin.end(hash.digest('hex'));
        });
        r.user.end(request);
        const reply = await gotAtUser;
        assert.equal(reply.toString(), createHash('sha256').update(request).digest('hex'));
        assert.equal((await r.closed).closeReason, 'completed');
      });

      test('half-close: the origin ends first and still receives the client', async () => {
        const r = await rig(0, fast);
        r.origin.end('banner then EOF');
        const gotAtOrigin = readAll(r.origin);
        const userGot: Buffer[] = [];
        r.user.on('data', (c: Buffer) => userGot.push(c));
        await once(r.user, 'end');
        assert.equal(Buffer.concat(userGot).toString(), 'banner then EOF');
        // The client's direction is still open after the origin's FIN.
        r.user.write('late ');
        await new Promise((res) => setTimeout(res, 50));
        r.user.end('bytes');
        assert.equal((await gotAtOrigin).toString(), 'late bytes');
        assert.equal((await r.closed).closeReason, 'completed');
      });

      test('backpressure: a reader that stops reading stalls the writer, nothing piles up', async () => {
        const r = await rig(0, fast);
        r.origin.pause(); // the origin reads nothing
        const chunk = Buffer.alloc(64 * 1024, 1);
        let written = 0;
        // Write 64 MiB into the user socket as fast as it accepts.
        while (written < 64 * 1024 * 1024) {
          r.user.write(chunk);
          written += chunk.length;
        }
        await new Promise((res) => setTimeout(res, 500));
        // The relay moved only what the kernel buffers and one high-water mark hold.
        assert.ok(
          r.relay.bytesUp < 16 * 1024 * 1024,
          `relayed ${r.relay.bytesUp} bytes to a non-reader`,
        );
        assert.ok(r.user.writableLength > 32 * 1024 * 1024, 'the writer is held back');
        // Reading again lets everything through, in order and complete.
        let received = 0;
        r.origin.on('data', (c: Buffer) => {
          received += c.length;
        });
        r.origin.resume();
        r.user.end();
        await once(r.origin, 'end');
        assert.equal(received, written);
        r.origin.end();
        const stats = await r.closed;
        assert.equal(stats.bytesUp, written);
      });

      test('backpressure downstream: a client that stops reading stalls the origin, bytes intact', async () => {
        const r = await rig(0, fast);
        r.user.pause();
        const data = randomBytes(48 * 1024 * 1024);
        r.origin.end(data);
        await new Promise((res) => setTimeout(res, 500));
        assert.ok(
          r.relay.bytesDown < 24 * 1024 * 1024,
          `relayed ${r.relay.bytesDown} bytes to a non-reader`,
        );
        assert.ok(r.origin.writableLength > 16 * 1024 * 1024, 'the origin is held back');
        const reading = readAll(r.user);
        r.user.resume(); // paused explicitly: a 'data' listener alone does not resume
        const got = await reading;
        assert.ok(got.equals(data));
        r.user.end();
        const stats = await r.closed;
        assert.equal(stats.closeReason, 'completed');
        assert.equal(stats.bytesDown, data.length);
      });

      test('detach: no close, no reset, no callback; a new relay on the same sockets goes on byte-exact', async () => {
        const origin = await listen();
        const { user, clientSide } = await userConnection();
        const originAccepted = nextConnection(origin.srv);
        const up = upstreamTo(origin.port, fast);
        await once(up, 'connect');
        const originSock = await originAccepted;
        const events = ['data', 'end', 'finish', 'close', 'error', 'drain'];
        const counts = (s: net.Socket) => events.map((e) => s.listenerCount(e));
        const before = [counts(clientSide), counts(up)];
        const closes: RelayStats[] = [];
        const startedAt = Date.now() - 5000;
        const first = relay(clientSide, up, {
          idleTimeoutMs: 50,
          traceId: 't1',
          initial: { bytesUp: 0, bytesDown: 0, startedAt },
          onClose: (s) => closes.push(s),
        });
        const down = randomBytes(8 * 1024 * 1024);
        const upData = randomBytes(1024 * 1024);
        const gotAtUser = readAll(user);
        const gotAtOrigin = readAll(originSock);
        // Both directions in flight when the hand-over happens.
        originSock.write(down.subarray(0, 4 * 1024 * 1024));
        user.write(upData.subarray(0, 512 * 1024));
        while (first.bytesDown < 1024 * 1024 || first.bytesUp < 64 * 1024)
          await new Promise((r) => setTimeout(r, 2));
        const d = first.detach();
        assert.equal(d.client, clientSide);
        assert.equal(d.upstream, up);
        assert.equal(d.traceId, 't1');
        assert.equal(d.startedAt, startedAt);
        assert.throws(() => first.detach(), /already detached/);
        first.close('shutdown'); // no-op after detach
        assert.equal(clientSide.destroyed || up.destroyed, false);
        // Only the one no-op 'error' listener stays.
        const plusError = (c: number[]) => c.map((n, i) => (events[i] === 'error' ? n + 1 : n));
        assert.deepEqual([counts(clientSide), counts(up)], before.map(plusError));
        // Longer than the idle timeout: the old relay's timer must be gone.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(closes.length, 0);
        assert.equal(first.closed, false);
        // The next owner: deliver what was read but not relayed, then relay again.
        const unreadUp = takeUnread(clientSide);
        const unreadDown = takeUnread(up);
        up.write(unreadUp);
        clientSide.write(unreadDown);
        let resolveClosed!: (s: RelayStats) => void;
        const closed = new Promise<RelayStats>((r) => {
          resolveClosed = r;
        });
        relay(clientSide, up, {
          idleTimeoutMs: 0,
          initial: {
            bytesUp: d.bytesUp + unreadUp.length,
            bytesDown: d.bytesDown + unreadDown.length,
            startedAt: d.startedAt,
          },
          onClose: resolveClosed,
        });
        originSock.end(down.subarray(4 * 1024 * 1024));
        user.end(upData.subarray(512 * 1024));
        assert.ok((await gotAtUser).equals(down), 'download intact');
        assert.ok((await gotAtOrigin).equals(upData), 'upload intact');
        originSock.end();
        const stats = await closed;
        assert.equal(stats.closeReason, 'completed');
        assert.equal(stats.bytesDown, down.length);
        assert.equal(stats.bytesUp, upData.length);
        assert.ok(stats.durationMs >= 5000, `duration ${stats.durationMs} counts from startedAt`);
        assert.equal(closes.length, 0);
      });

      test('detach refuses a relay that is closing; registry.detachAll skips it and plain entries', async () => {
        const r = await rig(0, fast);
        r.user.on('error', () => {});
        r.origin.on('error', () => {});
        const live = await rig(0, fast);
        const reg = new RelayRegistry<string>();
        const plain = { close: () => {} };
        reg.add(r.relay, 'closing');
        reg.add(live.relay, 'live');
        reg.add(plain, 'plain');
        r.relay.close('shutdown');
        assert.throws(() => r.relay.detach(), /closing/);
        const out = reg.detachAll();
        assert.deepEqual(
          out.map((o) => o.meta),
          ['live'],
        );
        assert.equal(reg.size, 2, 'the closing relay and the plain entry stay registered');
        assert.equal(out[0].relay.bytesUp, 0);
        assert.equal((await r.closed).closeReason, 'shutdown');
        // The detached relay's sockets are still open and now belong to the caller.
        const { client, upstream } = out[0].relay;
        assert.equal(client.destroyed || upstream.destroyed, false);
        live.user.destroy();
        live.origin.destroy();
        client.destroy();
        upstream.destroy();
        await new Promise((res) => setTimeout(res, 20));
        assert.equal(live.calls(), 0, 'no close callback after detach');
      });
    },
  );
}

test("a FIN the client sent before the relay started (its 'end' already emitted) is passed on", async () => {
  const origin = await listen();
  const { user, clientSide } = await userConnection();
  // As a front-end leaves it: paused, with its FIN read while the exit was connecting.
  clientSide.pause();
  user.end();
  const originAccepted = nextConnection(origin.srv);
  const up = upstreamTo(origin.port, true);
  await once(up, 'connect');
  const originSock = await originAccepted;
  for (let i = 0; i < 50 && !clientSide.readableEnded; i++) await sleep(5);
  assert.equal(
    clientSide.readableEnded,
    true,
    "the client's 'end' was not emitted before the relay",
  );
  let stats: RelayStats | undefined;
  relay(clientSide, up, {
    idleTimeoutMs: 0,
    onClose(s) {
      stats = s;
    },
  });
  // The origin sees the end of the request, answers and closes: the relay completes.
  const got = readAll(originSock);
  assert.equal((await got).length, 0);
  originSock.end('bye');
  assert.equal((await readAll(user)).toString(), 'bye');
  for (let i = 0; i < 50 && stats === undefined; i++) await sleep(5);
  assert.equal(stats?.closeReason, 'completed');
});
