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

/**
 * A TCP forwarder to `to()` that counts the connections it carried, and can break the
 * ones open now: `kill()` closes them at once (both peers see it), `doom()` leaves them
 * open until the workstation next sends a byte, answered by a reset (a NAT or firewall
 * that dropped the flow), `freeze()` silently stops carrying bytes (a dead path).
 */
async function counter(t: Owner, to: () => number) {
  let count = 0;
  type Pair = { s: net.Socket; up: net.Socket; broken: boolean };
  const pairs = new Set<Pair>();
  let carried = 0;
  const server = net.createServer((s) => {
    count++;
    const up = net.connect(to(), '127.0.0.1');
    // A transparent forwarder: no Nagle delay of its own.
    s.setNoDelay(true);
    up.setNoDelay(true);
    const pair: Pair = { s, up, broken: false };
    pairs.add(pair);
    s.on('error', () => up.destroy());
    up.on('error', () => {});
    s.on('close', () => {
      up.destroy();
      pairs.delete(pair);
    });
    up.on('close', () => pair.broken || s.destroy());
    up.on('data', (d: Buffer) => {
      carried += d.length;
    });
    s.pipe(up).pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const p of pairs) {
      p.s.destroy();
      p.up.destroy();
    }
    server.close();
  });
  const cut = (p: Pair) => {
    p.broken = true;
    p.s.unpipe(p.up);
    p.up.unpipe(p.s);
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    count: () => count,
    /** Connections open now. */
    live: () => pairs.size,
    /** Bytes carried from the gateway so far. */
    carried: () => carried,
    kill() {
      for (const p of pairs) {
        p.s.destroy();
        p.up.destroy();
      }
    },
    doom() {
      for (const p of [...pairs]) {
        cut(p);
        p.up.destroy();
        p.s.once('data', () => p.s.resetAndDestroy());
        p.s.resume();
      }
    },
    freeze() {
      for (const p of pairs) {
        cut(p);
        // Read and drop: nothing is answered, nothing is closed.
        p.s.on('data', () => {});
        p.up.on('data', () => {});
        p.s.resume();
        p.up.resume();
      }
    },
  };
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
  o: { trust?: TestCa; serverName?: string; extra?: string } = {},
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
      o.extra ?? '',
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

/**
 * An origin, an allow-all gateway behind a breakable forwarder, a workstation
 * (`extra`: more of its configuration) whose pool already holds one connection: a first
 * download went through.
 */
async function warmPool(t: Owner, extra?: string) {
  const web = await bulkOrigin(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port, extra);
  const warm = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(warm.code, 0, warm.stderr);
  return { web, gw, fwd, ws };
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
  const slow = await blackholePort(t);
  const { web, fwd, ws } = await warmPool(t, 'connect-timeout = "1s"');

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
  // The audit file is written asynchronously: wait for the fourth decision.
  await ws.waitRecord(() => ws.records().filter((r) => r.event === 'decision').length >= 4);
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

/** An origin that greets each connection and keeps it open (held tunnels). */
async function holdOrigin(t: Owner): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write('hi\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A CONNECT through the workstation, held open; resolves once the origin greeted. */
async function holdTunnel(t: Owner, proxyPort: number, port: number): Promise<net.Socket> {
  const s = net.connect(proxyPort, '127.0.0.1');
  t.after(() => {
    s.destroy();
  });
  s.on('error', () => {});
  s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  // A data listener, not `for await`: leaving that loop would destroy the socket.
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (/\r\n\r\nhi\n$/.test(text)) {
        s.off('data', onData);
        s.off('close', onClose);
        resolve(s);
      } else if (/^HTTP\/1\.1 [^2]/.test(text)) onClose();
    };
    const onClose = () =>
      reject(new Error(`tunnel refused: ${JSON.stringify(text.slice(0, 200))}`));
    s.on('data', onData);
    s.once('close', onClose);
  });
}

/** Milliseconds from the first byte of a CONNECT to the workstation's 200. */
async function connectTime(proxyPort: number, port: number): Promise<number> {
  const s = net.connect(proxyPort, '127.0.0.1');
  await once(s, 'connect');
  s.setNoDelay(true);
  const started = performance.now();
  s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const [d] = (await once(s, 'data')) as [Buffer];
  const ms = performance.now() - started;
  s.destroy();
  assert.match(d.toString('latin1'), /^HTTP\/1\.1 200/);
  return ms;
}

test('h2 pool unhappy: the pooled connection is cut under a download; the download fails cleanly, the next request opens a new connection', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const { web, fwd, ws } = await warmPool(t);

  // 512 MiB cannot finish before the cut (the origin writes with backpressure).
  const inFlight = download(t, ws.port, `http://127.0.0.1:${web}/512`);
  const before = fwd.carried();
  while (fwd.carried() < before + 4 * MiB) await new Promise((r) => setTimeout(r, 10));
  fwd.kill();
  const cut = await inFlight;
  assert.notEqual(cut.code, 0, 'the tunnel on the dead connection ended with an error');
  // The relay's end is recorded like any other.
  const closed = await ws.waitRecord((r) => r.event === 'close' && Number(r.bytes_down) > MiB);
  assert.ok(Number(closed.bytes_down) < 512 * MiB);

  const next = await download(t, ws.port, `http://127.0.0.1:${web}/2`);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.sha, expectedSha(2));
  assert.equal(fwd.count(), 2, 'a new TLS connection replaced the cut one');
  await ws.waitRecord(() => ws.records().filter((r) => r.event === 'decision').length >= 3);
  const decisions = ws.records().filter((r) => r.event === 'decision');
  assert.equal(decisions.length, 3);
  for (const d of decisions) {
    assert.equal(d.route, 'gw');
    assert.doesNotMatch(String(d.reason ?? ''), /after:|backing off/, 'no failed attempt');
  }
});

test('h2 pool unhappy: a pooled connection found dead only when used (reset) is replaced and the request succeeds', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const { web, fwd, ws } = await warmPool(t);
  assert.equal(fwd.live(), 1, 'the session is pooled');

  // The flow is gone but the workstation does not know: its next CONNECT meets a reset.
  fwd.doom();
  const r = await download(t, ws.port, `http://127.0.0.1:${web}/2`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha, expectedSha(2));
  assert.equal(fwd.count(), 2);
  await ws.waitRecord(() => ws.records().filter((x) => x.event === 'decision').length >= 2);
  const last = ws
    .records()
    .filter((x) => x.event === 'decision')
    .at(-1);
  assert.equal(last?.route, 'gw');
  assert.doesNotMatch(String(last?.reason ?? ''), /after:|backing off/);
});

test('h2 pool unhappy: a silently dead pooled connection — the CONNECT times out, the PING gets no answer, the connection is dropped and the next request works', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const { web, fwd, ws } = await warmPool(t, 'connect-timeout = "1s"');

  fwd.freeze();
  const started = Date.now();
  const lost = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.notEqual(lost.code, 0);
  assert.match(lost.stderr, /504/);
  assert.ok(Date.now() - started < 3000, 'bounded by connect-timeout');
  // The probe's PING is not answered within connect-timeout: the session is destroyed
  // (its TCP connection closed) rather than offered to the next request.
  const deadline = Date.now() + 4000;
  while (fwd.live() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(fwd.live(), 0, 'the silent connection was closed');

  const next = await download(t, ws.port, `http://127.0.0.1:${web}/2`);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.sha, expectedSha(2));
  assert.equal(fwd.count(), 2);
});

test("h2 pool: past the gateway's MAX_CONCURRENT_STREAMS (100) a second connection is opened", async (t) => {
  if (!requireTool(t, 'openssl')) return;
  const hold = await holdOrigin(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port, 'connect-timeout = "10s"');
  // One burst: the first session's SETTINGS must be known before it is filled.
  const tunnels = await Promise.all(
    Array.from({ length: 101 }, () => holdTunnel(t, ws.port, hold)),
  );
  assert.equal(tunnels.length, 101);
  // Every tunnel is still open at the gateway (101 origin connections).
  assert.equal(gw.records().filter((r) => r.event === 'close').length, 0, 'no tunnel ended early');
  assert.equal(fwd.count(), 2, '100 streams on the first connection, 1 on a second');
  // A freed stream makes room again: no third connection.
  tunnels[0]?.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const more = await holdTunnel(t, ws.port, hold);
  more.destroy();
  assert.equal(fwd.count(), 2);
  for (const s of tunnels) s.destroy();
});

test('h2 pool: an idle pooled connection is closed after idle-timeout (when shorter than 30 s)', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  // The gateway would close it after its handshake-timeout: make that long.
  const gw = await startGateway(t, {
    acl: 'policy all { action allow }\n',
    top: 'handshake-timeout = 60',
  });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port, 'idle-timeout = "1s"');
  const r = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fwd.live(), 1);
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(fwd.live(), 1, 'not closed while still fresh');
  const deadline = Date.now() + 3000;
  while (fwd.live() > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  assert.equal(fwd.live(), 0, 'closed by the workstation once idle');
  const again = await download(t, ws.port, `http://127.0.0.1:${web}/1`);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(fwd.count(), 2);
});

test('http2 = false: the backend is offered only http/1.1 — one TLS connection per tunnel, answered without a Nagle delay', async (t) => {
  if (!requireTool(t, 'curl') || !requireTool(t, 'openssl')) return;
  const web = await bulkOrigin(t);
  const gw = await startGateway(t, { acl: 'policy all { action allow }\n' });
  const fwd = await counter(t, () => gw.port);
  const ws = await workstation(t, gw.ca, fwd.port, '', { extra: 'http2 = false' });
  const a = await download(t, ws.port, `http://127.0.0.1:${web}/2`);
  const b = await download(t, ws.port, `http://127.0.0.1:${web}/1`, false);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.sha, expectedSha(2));
  assert.equal(b.sha, expectedSha(1));
  // The gateway picks h2 whenever it is offered, and h2 would have pooled these two.
  assert.equal(fwd.count(), 2, 'one TLS connection per tunnel: HTTP/1.1 CONNECT');

  // Each tunnel is a new TCP + mutual TLS handshake + CONNECT: a few ms on loopback.
  // With Nagle on the gateway's socket, its 200 waited for the client's delayed ACK of
  // the TLS 1.3 session tickets (~40 ms).
  const times: number[] = [];
  for (let i = 0; i < 9; i++) times.push(await connectTime(ws.port, web));
  times.sort((x, y) => x - y);
  const median = times[4] as number;
  assert.ok(median < 30, `CONNECT answered in ${median.toFixed(1)} ms (median of 9)`);
});
