// HTTP/2 pooling to identity-aware HTTP backends: a workstation portail chains through a
// portail gateway (mutual TLS, ALPN h2) and every tunnel is a stream of ONE TLS
// connection. The connections are counted by a plain TCP forwarder in front of the
// gateway (TLS passes through it untouched), which also lets the gateway be replaced
// by a new process. A TLS front that offers only http/1.1 shows the HTTP/1.1 path.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import {
  curl,
  makeTestCa,
  type Owner,
  requireTool,
  sha256File,
  type TestCa,
  tmpDir,
} from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { startGateway } from '../gateway/gateway.js';
import { blackholePort } from './helpers.js';

const MiB = 1024 * 1024;
/** One MiB of fixed pseudo-random bytes; a body of N MiB repeats it N times. */
const BLOCK = createHash('sha512')
  .update('h2-pool')
  .digest()
  .toString('hex')
  .repeat(MiB / 128)
  .slice(0, MiB);
const BLOCK_BYTES = Buffer.from(BLOCK, 'latin1');

function expectedSha(mib: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < mib; i++) h.update(BLOCK_BYTES);
  return h.digest('hex');
}

/** An origin answering `GET /N` with N MiB (with backpressure), `PUT` with the body's sha256. */
async function bulkOrigin(t: Owner): Promise<number> {
  const server = http.createServer(async (req, res) => {
    if (req.method === 'PUT') {
      const h = createHash('sha256');
      for await (const chunk of req) h.update(chunk as Buffer);
      res.end(h.digest('hex'));
      return;
    }
    const mib = Number(/^\/(\d+)$/.exec(req.url ?? '')?.[1] ?? 0);
    res.writeHead(200, { 'content-length': String(mib * MiB) });
    for (let i = 0; i < mib; i++) {
      if (!res.write(BLOCK_BYTES)) await once(res, 'drain');
      if (res.destroyed) return;
    }
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A TCP forwarder to `to()` that counts the connections it carried. */
async function counter(t: Owner, to: () => number) {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    count++;
    const up = net.connect(to(), '127.0.0.1');
    for (const x of [s, up]) {
      sockets.add(x);
      x.on('close', () => sockets.delete(x));
    }
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
    s.on('close', () => up.destroy());
    up.on('close', () => s.destroy());
    s.pipe(up).pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, count: () => count };
}

/** A mutual-TLS front offering only http/1.1 by ALPN, forwarding the plaintext to `to`. */
async function http1Front(t: Owner, ca: TestCa, to: number) {
  const alpn: (string | false | null)[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: ca.pem.serverCert,
      key: ca.pem.serverKey,
      ca: ca.pem.ca,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['http/1.1'],
    },
    (s) => {
      alpn.push(s.alpnProtocol);
      const up = net.connect(to, '127.0.0.1');
      sockets.add(s);
      sockets.add(up);
      s.on('error', () => up.destroy());
      up.on('error', () => s.destroy());
      s.pipe(up).pipe(s);
    },
  );
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, alpn };
}

/** A workstation portail whose only route is an identity-aware `http` backend. */
function workstation(
  t: Owner,
  ca: TestCa,
  port: number,
  top = '',
  o: { trust?: TestCa; serverName?: string } = {},
) {
  return startPortail(t, {
    acl: 'route all { use ["gw"] }\npolicy all { action allow }\n',
    config: [
      top,
      'fallback-to-direct = false',
      '[escaper]',
      `cacert-file = "${(o.trust ?? ca).caCert}"`,
      `tls-certificate = "${ca.clientCert}"`,
      `tls-privkey = "${ca.clientKey}"`,
      '[backends.gw]',
      'type = "http"',
      `target-address = "127.0.0.1:${port}"`,
      'identity-aware = true',
      `tls-server-name = "${o.serverName ?? 'localhost'}"`,
      '',
    ].join('\n'),
  });
}

/** Uploads `mib` MiB to `url` through portail (CONNECT); resolves with the origin's sha256. */
async function upload(t: Owner, proxyPort: number, url: string, mib: number) {
  const file = join(tmpDir(t), 'upload');
  const w = createWriteStream(file);
  for (let i = 0; i < mib; i++) if (!w.write(BLOCK_BYTES)) await once(w, 'drain');
  w.end();
  await once(w, 'finish');
  const started = process.hrtime.bigint();
  const r = await curl(['-x', `http://127.0.0.1:${proxyPort}`, '--proxytunnel', '-T', file, url], {
    timeoutMs: 60_000,
  });
  return { ...r, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** Downloads `url` through portail into a file; resolves with curl's result and the sha256. */
async function download(t: Owner, proxyPort: number, url: string, tunnel = true) {
  const out = join(tmpDir(t), 'body');
  const started = process.hrtime.bigint();
  const r = await curl(
    ['-x', `http://127.0.0.1:${proxyPort}`, ...(tunnel ? ['--proxytunnel'] : []), '-o', out, url],
    { timeoutMs: 60_000 },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ...r, seconds, sha: r.code === 0 ? await sha256File(out) : '' };
}

const ALLOW_BUT_PORT = (port: number) =>
  `policy closed_port { when port == ${port} action deny }\npolicy all { action allow }\n`;

test('h2 pool: the gateway certificate is verified (CA and name) before any stream', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const other = await makeTestCa({ t });
  const cases = [
    { name: 'foreign CA', o: { trust: other }, why: /TLS to gw .*certificate/ },
    { name: 'wrong name', o: { serverName: 'gw.example.com' }, why: /gw\.example\.com/ },
  ];
  for (const c of cases) {
    const ws = await workstation(t, gw.ca, fwd.port, '', c.o);
    const r = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
    assert.notEqual(r.code, 0, c.name);
    assert.match(r.stderr, /502/, c.name);
    const d = await ws.waitRecord((x) => x.event === 'decision');
    assert.match(String(d.reason), c.why, c.name);
  }
  assert.equal(fwd.count(), 2, 'one refused handshake each');
  assert.deepEqual(
    gw.records().filter((x) => x.event === 'decision'),
    [],
    'no CONNECT reached the gateway',
  );
});

test('h2 pool: a refusal is the gateway answer (403 → 502), the session and the backend stay good', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  const closedPort = web === 65535 ? 65534 : web + 1;
  const gw = await startGateway(t, { acl: ALLOW_BUT_PORT(closedPort) });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port);

  const denied = await curl([
    '-x',
    `http://127.0.0.1:${ws.port}`,
    '--proxytunnel',
    `http://127.0.0.1:${closedPort}/`,
  ]);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /502/);
  const d = await ws.waitRecord((r) => r.event === 'decision');
  assert.match(String(d.reason), /answered 403/);
  // The gateway's explanation names its deciding policy.
  assert.match(String(d.reason), /closed_port/);

  const ok = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.sha, expectedSha(1));
  const second = ws.records().filter((r) => r.event === 'decision')[1];
  assert.doesNotMatch(String(second?.reason ?? ''), /backing off/);
  assert.equal(fwd.count(), 1, 'the refusal and the download shared one TLS connection');
});

test('h2 pool: connect-timeout bounds each stream; a slow destination keeps the session and the backend', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  const slow = await blackholePort(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port, 'connect-timeout = "1s"');
  const warm = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(warm.code, 0, warm.stderr);

  const started = Date.now();
  const r = await curl([
    '-x',
    `http://127.0.0.1:${ws.port}`,
    '--proxytunnel',
    `http://127.0.0.1:${slow}/`,
  ]);
  const took = Date.now() - started;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /504/);
  // The gateway's own connect-timeout (5 s) would answer later: ours ended the stream.
  assert.ok(took < 4500, `answered after ${took} ms`);
  const d = await ws.waitRecord(
    (x) => x.event === 'decision' && /within 1000 ms/.test(String(x.reason)),
  );
  assert.equal(d.action, 'allow');

  const after = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(after.code, 0, after.stderr);
  const last = ws
    .records()
    .filter((x) => x.event === 'decision')
    .at(-1);
  assert.doesNotMatch(String(last?.reason ?? ''), /backing off/);
  assert.equal(fwd.count(), 1, 'the session outlived the slow destination');
});

test('h2 pool: concurrent downloads share ONE TLS connection; a restarted gateway gets a new one', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  let gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port);

  // CONNECT and plain forwarding (a CONNECT tunnel to the origin) at the same time.
  const [a, b] = await Promise.all([
    download(t, ws.port, `http://127.0.0.1:${web}/24`),
    download(t, ws.port, `http://127.0.0.1:${web}/16`, false),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.sha, expectedSha(24));
  assert.equal(b.sha, expectedSha(16));
  assert.equal(fwd.count(), 1, 'both tunnels were streams of one TLS connection');
  const seen = gw.records().filter((r) => r.event === 'decision' && r.action === 'allow');
  assert.equal(seen.length, 2);

  // The gateway goes away: the pooled session dies with it; a new process is reached
  // through a new connection, which is pooled in turn.
  const ca = gw.ca;
  await gw.proc.stop();
  gw = await startGateway(t, { ca, acl: 'policy all { action allow }\n' });
  const c = await download(t, ws.port, `http://127.0.0.1:${web}/2`);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.sha, expectedSha(2));
  const e = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(fwd.count(), 2);
  const last = ws.records().filter((r) => r.event === 'decision');
  assert.equal(last.length, 4);
  for (const r of last) assert.equal(r.route, 'gw');
});

test('h2 pool: a backend offering only http/1.1 is used through HTTP/1.1 CONNECT; 256 MiB timed both ways', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  // The gateway serves plaintext too (require-tls = false): the front does the TLS.
  const front = await http1Front(t, gw.ca, gw.port);
  const viaH1 = await workstation(t, gw.ca, front.port);
  const fwd = await counter(t, () => gw.port);
  const viaH2 = await workstation(t, gw.ca, fwd.port);

  const [a, b] = await Promise.all([
    download(t, viaH1.port, `http://127.0.0.1:${web}/3`),
    download(t, viaH1.port, `http://127.0.0.1:${web}/2`, false),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.sha, expectedSha(3));
  assert.equal(b.sha, expectedSha(2));
  // We offered h2 and http/1.1, the front picked http/1.1: one connection per tunnel.
  assert.deepEqual(front.alpn, ['http/1.1', 'http/1.1']);

  const big = 256;
  const h1 = await download(t, viaH1.port, `http://127.0.0.1:${web}/${big}`);
  assert.equal(h1.code, 0, h1.stderr);
  const h2 = await download(t, viaH2.port, `http://127.0.0.1:${web}/${big}`);
  assert.equal(h2.code, 0, h2.stderr);
  const sha = expectedSha(big);
  assert.equal(h1.sha, sha);
  assert.equal(h2.sha, sha);
  assert.equal(fwd.count(), 1);
  const rate = (s: number) => `${(big / s).toFixed(0)} MiB/s`;
  t.diagnostic(
    `${big} MiB through one stream: HTTP/2 ${h2.seconds.toFixed(2)} s (${rate(h2.seconds)}), HTTP/1.1 tunnel ${h1.seconds.toFixed(2)} s (${rate(h1.seconds)})`,
  );

  // The other direction: the client's bytes reach the origin intact both ways.
  const up = 32;
  const u1 = await upload(t, viaH1.port, `http://127.0.0.1:${web}/up`, up);
  const u2 = await upload(t, viaH2.port, `http://127.0.0.1:${web}/up`, up);
  assert.equal(u1.code, 0, u1.stderr);
  assert.equal(u2.code, 0, u2.stderr);
  assert.equal(u1.stdout, expectedSha(up));
  assert.equal(u2.stdout, expectedSha(up));
  t.diagnostic(
    `${up} MiB upload: HTTP/2 ${u2.seconds.toFixed(2)} s, HTTP/1.1 tunnel ${u1.seconds.toFixed(2)} s`,
  );
});
