// A second reference row, not a product: the leanest Node SOCKS5 proxy we know how to
// write. Like bare-node-socks.ts (no-auth greeting, CONNECT, relay; no ACL, no audit, no
// limits, no error answers, no backpressure), but without the stream machinery: the
// accepted socket is read into portail's reused buffer from its first byte
// (proxy/net/fast-read.ts, adoptReads), the outgoing one is a relaySocket(), chunks
// go straight to write(). Its set-up time is what Node's per-event cost alone leaves
// (docs/performance.md, "Set-up: where the time goes").
//
//   node dist/test/bench/lib/lean-node-socks.js PORT
import net from 'node:net';
import { adoptReads, readSinkOf, relaySocket } from '../../../proxy/net/fast-read.js';
import { requestTarget } from './socks5-request.js';

const port = Number(process.argv[2]);
const METHOD = Buffer.from([5, 0]);
const SUCCEEDED = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

net
  .createServer({ allowHalfOpen: true }, (client) => {
    client.on('error', () => client.destroy());
    const sink = adoptReads(client);
    if (sink === undefined) throw new Error('cannot adopt the reads of an accepted socket');
    let upstream: net.Socket | undefined;
    let greeted = false;
    sink.attach({
      deliver(d) {
        if (upstream !== undefined) return upstream.write(d) || true;
        if (!greeted) {
          // The greeting and the request come in separate reads (the client waits).
          greeted = true;
          client.write(METHOD);
          return true;
        }
        const up = relaySocket();
        upstream = up;
        up.on('error', () => client.destroy());
        up.on('end', () => client.end());
        client.on('close', () => up.destroy());
        up.connect(requestTarget(d), () => {
          client.write(SUCCEEDED);
          readSinkOf(up)?.attach({ deliver: (x) => client.write(x) || true });
        });
        return true;
      },
    });
  })
  .listen(port, '127.0.0.1');
