// The benchmark's measuring client (test/bench/lib/socks5-client.ts) against real SOCKS5
// servers: failure replies become SocksError with the server's code, a non-SOCKS peer
// is an error, and a relay carries the origin's answer.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { SocksError, socksConnect, timeFirstByte } from '../../bench/lib/socks5-client.js';
import {
  freePort,
  requireTool,
  startDante,
  startMicrosocks,
  startNginx,
  tmpDir,
} from '../../harness/index.js';

describe('bench SOCKS5 client', () => {
  test('refused destination: SocksError carrying the reply code (dante: 0x05)', async (t) => {
    if (!requireTool(t, 'danted')) return;
    const dante = await startDante({ t, outgoingAddress: '127.0.0.1' });
    const dead = await freePort();
    await assert.rejects(
      socksConnect(dante, { host: '127.0.0.1', port: dead }),
      (e: unknown) => e instanceof SocksError && e.reply === 0x05,
    );
  });

  test('a peer that is not a SOCKS5 server: rejected, not hung', async (t) => {
    const srv = net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const { port } = srv.address() as net.AddressInfo;
    await assert.rejects(
      socksConnect({ host: '127.0.0.1', port }, { host: 'x', port: 1 }),
      /SOCKS5/,
    );
  });

  test('through microsocks (IPv4 and by name) and direct: the origin answers', async (t) => {
    if (!requireTool(t, 'microsocks') || !requireTool(t, 'nginx')) return;
    const nginx = await startNginx({ root: tmpDir(t), t });
    const socks = await startMicrosocks({ t, bindOutgoing: '127.0.0.11' });
    for (const host of ['127.0.0.1', 'localhost']) {
      const s = await socksConnect(socks, { host, port: nginx.port });
      const body = await new Promise<string>((resolve) => {
        let got = '';
        s.on('data', (d) => {
          got += d;
        });
        s.on('end', () => resolve(got));
        s.write(`GET /__peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
      s.destroy();
      assert.match(body, /^HTTP\/1\.1 200[\s\S]*127\.0\.0\.11\n$/);
    }
    const origin = { host: '127.0.0.1', port: nginx.port };
    for (const proxy of [socks, undefined]) {
      const ms = await timeFirstByte(proxy, origin);
      assert.ok(ms > 0 && ms < 1000, `${ms} ms`);
    }
  });
});
