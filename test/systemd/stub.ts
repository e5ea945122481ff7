// A tiny stand-in for the daemon, run by real systemd inside the sandbox. It uses only
// systemd/ (through dist/, mounted at /srv/portail) and knows a one-line protocol:
//   WHO          → "<fd name> <pid> <source> <our uid> <peer uid|->" and close
//   DENY host    → journal entry with PORTAIL_ACTION=deny, "LOGGED"
//   ALLOW host   → journal entry with PORTAIL_ACTION=allow, "LOGGED"
//   PINO         → a pino line through the journal writer, "LOGGED"
//   RELAY port   → connect to 127.0.0.1:port, "OK", then relay bytes both ways
// SIGHUP reloads (RELOADING=1 … READY=1), SIGTERM stops (STOPPING=1) after handing its
// relays to the fd store. Gates (files in the runtime directory, created by the test)
// hold it in "reloading"/"stopping" so that the test can observe those states.
// Environment: STUB_PORT (default 1080) for the listener it binds when systemd passed no
// "proxy" socket; STUB_NO_WATCHDOG=1; STUB_RELOAD_GATE=1; STUB_STOP_GATE=1.
import { CHECKOUT, TEST_FILES } from './harness.js';

export const STUB_PATH = `${TEST_FILES}/stub.mjs`;
export const CLIENT_PATH = `${TEST_FILES}/client.mjs`;
export const PROBE_PATH = `${TEST_FILES}/probe.mjs`;
export const RELAY_CLIENT_PATH = `${TEST_FILES}/relay-client.mjs`;

export const STUB = `
import net from 'node:net';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as sd from '${CHECKOUT}/dist/systemd/index.js';

const runtime = process.env.RUNTIME_DIRECTORY ?? '/run';
const journal = sd.createJournalWriter();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function gate(name) {
  const path = join(runtime, name);
  while (!existsSync(path)) await sleep(20);
  rmSync(path, { force: true });
}

const passed = sd.listenFds();
const relays = new Map();
const recovered = sd.recoverConnections(passed, {
  onStale: (name, why) => journal.write({ MESSAGE: 'stale ' + name + ': ' + why }),
});
const servers = [];
const source = new Map();

function track(id, client, upstream) {
  relays.set(id, { client, upstream });
  const forget = () => relays.delete(id);
  client.on('close', forget);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
}

// Connections accepted but not yet answered or relayed: finished before exiting (they
// cannot be handed over), or their clients would see a reset.
const busy = new Set();

function handle(name, sock) {
  busy.add(sock);
  sock.on('close', () => busy.delete(sock));
  let buf = Buffer.alloc(0);
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const nl = buf.indexOf(10);
    if (nl < 0) return;
    sock.off('data', onData);
    sock.pause();
    const [cmd, arg] = buf.subarray(0, nl).toString().split(' ');
    const rest = buf.subarray(nl + 1);
    if (cmd === 'WHO') {
      let peer = '-';
      try { peer = String(sd.peerCred(sock).uid); } catch {}
      sock.end([name, process.pid, source.get(name), process.getuid(), peer].join(' ') + '\\n');
    } else if (cmd === 'DENY' || cmd === 'ALLOW') {
      const action = cmd.toLowerCase();
      journal.write({
        MESSAGE: action + ' ' + arg + ':443\\nexplanation: no policy matched',
        PRIORITY: action === 'deny' ? 5 : 6,
        PORTAIL_EVENT: 'decision',
        PORTAIL_ACTION: action,
        PORTAIL_HOST: arg,
        PORTAIL_PORT: 443,
        PORTAIL_TAGS: ['t1', 't2'],
      });
      sock.end('LOGGED\\n');
    } else if (cmd === 'PINO') {
      import('${CHECKOUT}/node_modules/pino/pino.js').then(({ default: pino }) => {
        pino({}, journal).warn({ event: 'error', reason: 'from pino' }, 'pino line');
        sock.end('LOGGED\\n');
      });
    } else if (cmd === 'RELAY') {
      const upstream = net.connect(Number(arg), '127.0.0.1', () => {
        sock.write('OK\\n');
        if (rest.length) upstream.write(rest);
        busy.delete(sock);
        track('r' + process.pid + '-' + relays.size + '-' + Date.now(), sock, upstream);
        sock.resume();
      });
      upstream.on('error', () => sock.destroy());
    } else {
      sock.end('?\\n');
    }
  };
  sock.on('data', onData);
  sock.on('error', () => {});
}

function serve(name, server, from) {
  source.set(name, from);
  server.on('connection', (sock) => handle(name, sock));
  servers.push(server);
}

for (const [name, fds] of passed) for (const fd of fds) serve(name, await sd.serverFromFd(fd), 'systemd');
if (!passed.has('proxy')) {
  const server = net.createServer();
  await new Promise((r) => server.listen(Number(process.env.STUB_PORT ?? 1080), '127.0.0.1', r));
  sd.storeListeners('proxy', [sd.socketFd(server)]);
  serve('proxy', server, 'bound');
}
for (const r of recovered) {
  const [client, upstream] = r.fds.map((fd) => sd.adoptSocket(fd));
  const [toUpstream, toClient] = r.meta.unread.map((b) => Buffer.from(b, 'base64'));
  if (toUpstream.length) upstream.write(toUpstream);
  if (toClient.length) client.write(toClient);
  track(r.name, client, upstream);
}

let reloads = 0;
process.on('SIGHUP', async () => {
  sd.reloading('reloading');
  if (process.env.STUB_RELOAD_GATE) await gate('reload-gate');
  reloads++;
  sd.ready('serving (reloaded ' + reloads + ')');
});

process.on('SIGTERM', async () => {
  sd.stopping('stopping');
  if (process.env.STUB_STOP_GATE) await gate('stop-gate');
  for (const s of servers) s.close();
  for (let i = 0; busy.size > 0 && i < 100; i++) await sleep(20);
  const entries = [];
  for (const [id, r] of relays) {
    try {
      const d = await sd.detachSockets([r.client, r.upstream], 2000);
      entries.push({ name: id, fds: d.map((x) => x.fd), meta: { unread: d.map((x) => x.unread.toString('base64')) } });
    } catch (err) {
      journal.write({ MESSAGE: 'cannot hand over ' + id + ': ' + err.message });
    }
  }
  const confirmed = entries.length ? sd.storeConnections(entries) : true;
  journal.write({ MESSAGE: 'handed over ' + entries.length + ' relay(s), confirmed=' + confirmed });
  for (const r of relays.values()) {
    r.client.destroy();
    r.upstream.destroy();
  }
  process.exit(0);
});

if (!process.env.STUB_NO_WATCHDOG) sd.startWatchdog();
sd.ready('serving, ' + recovered.length + ' relay(s) recovered');
`;

/** node client.mjs TARGET LINE: TARGET is host:port or a unix path; prints the reply. */
export const CLIENT = `
import net from 'node:net';
const [target, line] = process.argv.slice(2);
const m = /^(.*):(\\d+)$/.exec(target);
const sock = m ? net.connect(Number(m[2]), m[1]) : net.connect(target);
let out = '';
sock.on('data', (c) => { out += c; });
sock.on('end', () => { process.stdout.write(out); process.exit(0); });
sock.on('error', (e) => { console.error(e.code || e.message); process.exit(3); });
sock.write(line + '\\n');
setTimeout(() => { console.error('timeout'); process.exit(4); }, 10000);
`;

/** node probe.mjs PORT: connects every 10 ms with WHO (prints "started" after the first
 * answer) until stdin closes, then prints {"ok": n, "failed": [...], "pids": [...]}. */
export const PROBE = `
import net from 'node:net';
const port = Number(process.argv[2]);
let ok = 0, running = true, inflight = 0;
const failed = [], pids = new Set();
function once() {
  inflight++;
  const sock = net.connect(port, '127.0.0.1');
  let out = '';
  sock.setTimeout(10000, () => sock.destroy(new Error('timeout')));
  sock.on('data', (c) => { out += c; });
  sock.on('end', () => {
    ok++;
    pids.add(out.split(' ')[1]);
    inflight--;
    if (ok === 1) process.stdout.write('started\\n');
  });
  sock.on('error', (e) => { failed.push(e.code || e.message); inflight--; });
  sock.write('WHO\\n');
}
const timer = setInterval(() => running && once(), 10);
process.stdin.resume();
process.stdin.on('end', async () => {
  running = false;
  clearInterval(timer);
  while (inflight > 0) await new Promise((r) => setTimeout(r, 10));
  process.stdout.write(JSON.stringify({ ok, failed, pids: [...pids] }) + '\\n');
  process.exit(0);
});
`;

/** node relay-client.mjs PORT: runs an echo server, opens one relay through the stub to
 * it, and streams numbered bytes through it (a chunk every 5 ms) until stdin closes;
 * then checks that the echo is exactly what was sent, on the same connection. */
export const RELAY_CLIENT = `
import net from 'node:net';
const port = Number(process.argv[2]);
const echo = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
await new Promise((r) => echo.once('listening', r));
const sock = net.connect(port, '127.0.0.1');
let sent = 0, received = 0, mismatch = -1, closed = false, head = '';
const byte = (i) => (i * 7 + (i >> 8)) & 255;
await new Promise((resolve) => {
  const onData = (c) => {
    head += c.toString('latin1');
    if (head.includes('OK\\n')) { sock.off('data', onData); resolve(); }
  };
  sock.on('data', onData);
  sock.write('RELAY ' + echo.address().port + '\\n');
});
sock.on('data', (c) => {
  for (const b of c) {
    if (mismatch < 0 && b !== byte(received)) mismatch = received;
    received++;
  }
});
sock.on('close', () => { closed = true; });
sock.on('error', () => {});
const timer = setInterval(() => {
  const chunk = Buffer.alloc(997);
  for (let i = 0; i < chunk.length; i++) chunk[i] = byte(sent + i);
  sent += chunk.length;
  sock.write(chunk);
}, 5);
process.stdout.write('relaying\\n');
process.stdin.resume();
process.stdin.on('end', async () => {
  clearInterval(timer);
  const deadline = Date.now() + 10000;
  while (received < sent && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  process.stdout.write(JSON.stringify({ sent, received, mismatch, closed }) + '\\n');
  process.exit(0);
});
`;

export const STUB_FILES = {
  'stub.mjs': STUB,
  'client.mjs': CLIENT,
  'probe.mjs': PROBE,
  'relay-client.mjs': RELAY_CLIENT,
};

/** A drop-in that runs the stub in place of the daemon, keeping the unit's hardening. */
export function stubDropIn(extra = ''): string {
  return `[Service]\nExecStart=\nExecStart=/usr/bin/node ${STUB_PATH}\nExecReload=\nExecReload=/bin/kill -HUP $MAINPID\n${extra}`;
}
