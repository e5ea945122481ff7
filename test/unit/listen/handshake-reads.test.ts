// The handshake reader (proxy/listen/handshake-reads.ts), on real loopback sockets, in
// both of its modes: an adopted socket delivered from its read callback, and any other
// socket read with 'data' events. What must hold in both: every byte once and in order
// across the hand-over to the next owner, chunks that stay intact after later reads
// (an adopted socket reads into one shared buffer), a client that closes mid-handshake
// destroyed, and the kernel reads of an adopted socket never stopped by the handshake.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { readHandshake } from '../../../proxy/listen/handshake-reads.js';
import { adoptReads } from '../../../proxy/net/fast-read.js';

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A connected pair: `server` is the accepted side (adopted when asked), `client` ours. */
async function pair(adopt: boolean): Promise<{ server: net.Socket; client: net.Socket }> {
  const srv = net.createServer({ allowHalfOpen: true });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  const [server] = await accepted;
  server.on('error', () => {});
  if (adopt) assert.ok(adoptReads(server), 'the accepted socket could not be adopted');
  return { server, client };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const reading = (s: net.Socket) =>
  (s as unknown as { _handle: { reading: boolean } })._handle.reading;

for (const adopt of [true, false]) {
  describe(
    adopt ? 'adopted socket (delivered from the read callback)' : "plain socket ('data')",
    () => {
      test('chunks arrive in order and stay intact after later reads', async () => {
        const { server, client } = await pair(adopt);
        const got: Buffer[] = [];
        const reader = readHandshake(server, (c) => got.push(c));
        const sent: Buffer[] = [];
        for (let i = 0; i < 5; i++) {
          const b = randomBytes(100 + i);
          sent.push(b);
          client.write(b);
          await sleep(5); // one read each
        }
        assert.deepEqual(Buffer.concat(got), Buffer.concat(sent));
        // Kept chunks were not overwritten by the reads after them.
        if (got.length === sent.length)
          for (let i = 0; i < sent.length; i++) assert.deepEqual(got[i], sent[i]);
        reader.stop();
        client.destroy();
        server.destroy();
      });

      test('stop(unread): the unread bytes come first, then everything sent later, once each', async () => {
        const { server, client } = await pair(adopt);
        const head = Buffer.from('request+EARLY');
        let seen = Buffer.alloc(0);
        const reader = readHandshake(server, (c) => {
          seen = Buffer.concat([seen, c]);
          if (seen.length >= head.length) reader.stop(seen.subarray('request+'.length));
        });
        client.write(head);
        await sleep(10);
        // Sent after the hand-over, before the next owner reads: waits in the stream.
        client.write('LATER');
        await sleep(10);
        if (adopt) assert.equal(reading(server), true, 'the handshake stopped the kernel reads');
        const chunks: Buffer[] = [];
        server.on('data', (c: Buffer) => chunks.push(c));
        server.resume(); // left paused: the next owner starts the flow
        client.end('-END');
        await once(server, 'end');
        assert.equal(Buffer.concat(chunks).toString(), 'EARLYLATER-END');
        client.destroy();
        server.destroy();
      });

      test('a client that closes mid-handshake is destroyed', async () => {
        const { server, client } = await pair(adopt);
        const reader = readHandshake(server, () => {});
        client.end(Buffer.from([5]));
        await once(server, 'close');
        assert.equal(server.destroyed, true);
        reader.stop(); // harmless once closed
      });

      test('after stop() the end of the stream is left to the next owner', async () => {
        const { server, client } = await pair(adopt);
        const reader = readHandshake(server, () => reader.stop());
        client.write('x');
        await sleep(10);
        client.end();
        await sleep(20);
        assert.equal(server.destroyed, false, 'destroyed by a reader that was stopped');
        // Node may emit 'end' on a paused stream with nothing buffered: the next owner
        // (the relay) must then see readableEnded (relay.test.ts covers it).
        if (!server.readableEnded) {
          server.resume();
          await once(server, 'end');
        }
        server.destroy();
      });
    },
  );
}
