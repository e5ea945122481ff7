// A reference row for the data-plane benchmark, not a product: the least a Node SOCKS5
// proxy can do (no-auth greeting, CONNECT to an IPv4 address or a name, socket.pipe both
// ways; no ACL, no audit, no limits, no error answers). Its figures are the floor of any
// Node proxy on the same machine, next to the C peers.
//
//   node dist/test/bench/lib/bare-node-socks.js PORT
import net from 'node:net';
import { requestTarget } from './socks5-request.js';

const port = Number(process.argv[2]);

net
  .createServer((client) => {
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    let greeted = false;
    const onData = (d: Buffer) => {
      if (!greeted) {
        greeted = true;
        client.write(Buffer.from([5, 0]));
        if (d.length > 2 + (d[1] ?? 0)) onData(d.subarray(2 + (d[1] ?? 0)));
        return;
      }
      client.removeListener('data', onData);
      client.pause();
      const upstream = net.connect(requestTarget(d), () => {
        upstream.setNoDelay(true);
        client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    };
    client.on('data', onData);
  })
  .listen(port, '127.0.0.1');
