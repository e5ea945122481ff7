// What a peer can repeat at will is written a bounded number of times (docs/security.md,
// "Logs and audit records"): refused control calls and control connections of an
// unprivileged user, connections over max-connections, malformed requests. The first
// occurrences are kept; the rest are summarised (here: at the stop, which flushes).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRoot, sleep, tmpDir } from '../../harness/index.js';
import { type Portail, startPortail } from './portail.js';

const BURST = 10;
const skipNotRoot = isRoot ? false : 'needs root: runs a client as nobody (setpriv)';

/** A daemon whose control socket a non-root user can reach. */
async function withControl(t: Parameters<typeof startPortail>[0], config = '') {
  const sockDir = tmpDir(t, 'portail-flood-');
  chmodSync(sockDir, 0o755);
  const sock = join(sockDir, 'control.sock');
  const p = await startPortail(t, {
    config: `watch-acl = false\n${config}`,
    args: ['--bind-rpc-socket', sock],
  });
  return { p, sock };
}

/** Runs `script` (JavaScript, argv[1] = the socket) as nobody; resolves with its stdout. */
function asNobody(script: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'setpriv',
      [
        '--reuid',
        'nobody',
        '--regid',
        'nogroup',
        '--clear-groups',
        '--',
        process.execPath,
        '-e',
        script,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => {
      out += b;
    });
    child.stderr.on('data', (b) => {
      err += b;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`client as nobody exited ${code}: ${err}`));
    });
  });
}

async function stopAndFlush(p: Portail) {
  p.signal('SIGTERM');
  await p.proc.exited;
}

const refusedCalls = (p: Portail) =>
  p
    .records()
    .filter(
      (r) =>
        r.event === 'error' && /^control: .* refused \(PermissionDenied\)$/.test(String(r.reason)),
    );

test('2,000 refused control calls on one connection: 10 audit records, then one summary', {
  skip: skipNotRoot,
}, async (t) => {
  const { p, sock } = await withControl(t);
  // 2,000 Reload calls (trusted groups only) in one write; every answer is read.
  const out = await asNobody(
    `const net = require('node:net');
     const s = net.connect(process.argv[1]);
     const call = JSON.stringify({ method: 'io.portail.Control.Reload' }) + '\\0';
     s.write(call.repeat(2000));
     let n = 0, denied = 0, buf = '';
     s.on('data', (b) => {
       buf += b;
       const parts = buf.split('\\0'); buf = parts.pop();
       for (const m of parts) { n++; if (JSON.parse(m).error?.endsWith('PermissionDenied')) denied++; }
       if (n === 2000) { console.log(denied); s.end(); }
     });`,
    sock,
  );
  assert.equal(Number(out.trim()), 2000, 'every call answered PermissionDenied');
  await sleep(200);
  assert.equal(refusedCalls(p).length, BURST);
  assert.ok(refusedCalls(p).every((r) => r.uid === 65534));
  await stopAndFlush(p);
  const summary = p.records().find((r) => r.event === 'error' && r.suppressed !== undefined);
  assert.ok(summary, 'a summary record at the stop');
  assert.equal(summary.suppressed, 2000 - BURST);
  assert.equal(summary.uid, 65534);
  assert.match(
    String(summary.reason),
    /1990 more in the last \d+ s, not recorded one by one \(rate limit\)/,
  );
});

test('control connections refused over the per-user cap: 10 log lines, then one summary', {
  skip: skipNotRoot,
}, async (t) => {
  const { p, sock } = await withControl(t);
  // 32 are admitted per uid; 168 more are refused at once.
  await asNobody(
    `const net = require('node:net');
     const all = [];
     let closed = 0;
     for (let i = 0; i < 200; i++) {
       const s = net.connect(process.argv[1]);
       s.on('error', () => {});
       s.on('close', () => { if (++closed === 168) { for (const x of all) x.destroy(); } });
       all.push(s);
     }
     setTimeout(() => { for (const x of all) x.destroy(); }, 10000).unref();`,
    sock,
  );
  await sleep(200);
  const lines = () => p.proc.output().match(/connection from uid 65534 refused/g) ?? [];
  assert.equal(lines().length, BURST, p.proc.output().slice(-2000));
  await stopAndFlush(p);
  assert.match(
    p.proc.output(),
    /control socket: 158 more connections from uid 65534 refused in the last \d+ s/,
  );
});

test('a flood over max-connections: 10 log lines, then one summary', async (t) => {
  const p = await startPortail(t, { config: 'max-connections = 2\nhandshake-timeout = 30\n' });
  const held = await Promise.all([0, 1].map(() => connected(p.port)));
  const refused = await Promise.all(
    Array.from({ length: 300 }, async () => {
      const s = await connected(p.port);
      await new Promise((r) => s.once('close', r));
    }),
  );
  assert.equal(refused.length, 300);
  const lines = () => p.proc.output().match(/max-connections \(2\) reached: refused /g) ?? [];
  assert.equal(lines().length, BURST);
  for (const s of held) s.destroy();
  await stopAndFlush(p);
  assert.match(
    p.proc.output(),
    /max-connections \(2\) reached: 290 more connections refused in the last \d+ s/,
  );
});

test('malformed requests are audited: client, protocol, reason; a flood is summarised', async (t) => {
  const p = await startPortail(t);
  // One of each front-end, then a flood of one kind.
  await exchange(p.port, Buffer.from([5, 1, 0, 4, 1, 0, 0, 1, 127, 0, 0, 1, 0, 80]));
  await exchange(p.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  const first = await p.waitRecord(
    (r) => r.protocol === 'socks5' && /^malformed request/.test(String(r.reason)),
  );
  assert.match(String(first.reason), /wrong version or reserved byte/);
  assert.match(String(first.client), /^127\.0\.0\.1:\d+$/);
  const http = await p.waitRecord(
    (r) => r.protocol === 'http' && /^malformed request/.test(String(r.reason)),
  );
  assert.match(String(http.reason), /name the destination/);

  // HTTP/2: a GET (only CONNECT is proxied) is refused 400 and audited.
  const h2 = http2.connect(`http://127.0.0.1:${p.port}`);
  h2.on('error', () => {});
  const status = await new Promise((resolve) => {
    const req = h2.request({ ':method': 'GET', ':path': '/' });
    req.on('response', (h) => resolve(h[':status']));
    req.on('error', () => resolve('error'));
    req.resume();
  });
  h2.destroy();
  assert.equal(status, 400);
  const h2Record = await p.waitRecord(
    (r) => r.protocol === 'http2' && /^malformed request/.test(String(r.reason)),
  );
  assert.match(String(h2Record.reason), /only CONNECT is proxied over HTTP\/2/);

  for (let i = 0; i < 40; i++) await exchange(p.port, Buffer.from('\x00\x01garbage\r\n\r\n'));
  await sleep(200);
  const httpRecords = p
    .records()
    .filter((r) => r.protocol === 'http' && /^malformed request/.test(String(r.reason)));
  assert.equal(httpRecords.length, BURST);
  await stopAndFlush(p);
  const summary = p.records().find((r) => r.suppressed !== undefined && r.protocol === 'http');
  assert.ok(summary);
  assert.equal(summary.suppressed, 41 - BURST);
});

/** Connected and greeted nothing: a socket the daemon counts. */
async function connected(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  return s;
}

/** Writes `bytes` and waits for the daemon's answer or close (the answer is not checked here). */
async function exchange(port: number, bytes: Buffer): Promise<void> {
  const s = await connected(port);
  s.write(bytes);
  await new Promise((r) => {
    s.once('data', r);
    s.once('close', r);
  });
  s.destroy();
}
