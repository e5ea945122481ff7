// The REAL daemon under systemd: the repository's unit files with only the program paths
// adapted (the checkout is mounted at /srv/portail inside the sandbox), a configuration
// in the sandbox's own /etc/portail, and small clients run inside the sandbox.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKOUT, repoRoot, TEST_FILES } from './harness.js';

export const NODE = '/usr/bin/node';
export const PORTAIL = `${NODE} ${CHECKOUT}/dist/proxy/cli/portail.js`;
export const PORTAILCTL = `${NODE} ${CHECKOUT}/dist/rpc/portailctl.js`;
export const ORIGIN_PATH = `${TEST_FILES}/origin.mjs`;
export const ECHO_CLIENT_PATH = `${TEST_FILES}/echo-client.mjs`;
export const STALL_CLIENT_PATH = `${TEST_FILES}/stall-client.mjs`;

/** A unit file of systemd/, with `portail`/`portailctl` replaced by their paths here. */
export function realUnit(name: string, extra = ''): string {
  const text = readFileSync(join(repoRoot(), 'systemd', name), 'utf8')
    .replace(/^ExecStart=portail /m, `ExecStart=${PORTAIL} `)
    .replace(/^ExecReload=\+portailctl /m, `ExecReload=+${PORTAILCTL} `);
  if (name === 'portail.service' && !text.includes(`ExecStart=${PORTAIL} `))
    throw new Error('systemd/portail.service: ExecStart=portail … not found');
  return text + extra;
}

/** Test users and groups (appended to the sandbox's /etc/passwd and /etc/group):
 * alice and bob are outsiders, carol is trusted through a supplementary group, dave
 * through his primary group, erin is an admin. */
export const USERS = { alice: 1101, bob: 1102, carol: 1103, dave: 1104, erin: 1105 } as const;
export const GROUPS = { ptrust: 1201, padmin: 1202 } as const;
export const PASSWD = Object.entries(USERS).map(
  ([name, uid]) =>
    `${name}:x:${uid}:${name === 'dave' ? GROUPS.ptrust : uid}:test:/nonexistent:/usr/sbin/nologin`,
);
export const GROUP = [
  ...Object.entries(USERS)
    .filter(([name]) => name !== 'dave')
    .map(([name, gid]) => `${name}:x:${gid}:`),
  `ptrust:x:${GROUPS.ptrust}:carol`,
  `padmin:x:${GROUPS.padmin}:erin`,
];

/** argv prefix running a command as `user` with the groups the databases give it. */
export function as(user: keyof typeof USERS): string[] {
  const gid = user === 'dave' ? GROUPS.ptrust : USERS[user];
  return ['setpriv', `--reuid=${USERS[user]}`, `--regid=${gid}`, '--init-groups'];
}

/** An HTTP origin: GET /bytes/N answers N deterministic bytes (see body()), anything else
 * "hello". Prints its port on stdout. */
export const ORIGIN = `
import http from 'node:http';
const CHUNK = 64 * 1024;
function block(i) {
  const b = Buffer.alloc(CHUNK);
  for (let j = 0; j < CHUNK; j += 4) b.writeUInt32LE(((i * CHUNK + j) ^ 0x9e3779b9) >>> 0, j);
  return b;
}
const server = http.createServer((req, res) => {
  const m = /^\\/bytes\\/(\\d+)$/.exec(req.url);
  if (!m) { res.end('hello'); return; }
  const n = Number(m[1]);
  res.writeHead(200, { 'content-length': n, 'content-type': 'application/octet-stream' });
  let i = 0;
  const more = () => {
    while (i * CHUNK < n) {
      const b = block(i);
      const part = Math.min(CHUNK, n - i * CHUNK);
      i++;
      if (!res.write(part === CHUNK ? b : b.subarray(0, part))) return res.once('drain', more);
    }
    res.end();
  };
  more();
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;

/** The bytes /bytes/N serves (for the expected sha256). */
export function body(n: number): Buffer {
  const CHUNK = 64 * 1024;
  const out = Buffer.alloc(Math.ceil(n / CHUNK) * CHUNK);
  for (let i = 0; i * CHUNK < n; i++) {
    for (let j = 0; j < CHUNK; j += 4)
      out.writeUInt32LE(((i * CHUNK + j) ^ 0x9e3779b9) >>> 0, i * CHUNK + j);
  }
  return out.subarray(0, n);
}

export function config(extra = ''): string {
  return `filter-acl-rules-path = "filter.acl"
watch-acl = false
${extra}
[rpc]
trusted-groups = ["ptrust"]
admin-groups = ["padmin"]
`;
}

/** node echo-client.mjs PROXY_PORT: runs an echo server, opens one SOCKS5 CONNECT through
 * the proxy to it, prints "relaying", streams numbered bytes (997 every 5 ms) until stdin
 * closes, then half-closes and prints {"sent","received","mismatch","ended"} once the
 * echo has come back (or after 10 s). */
export const ECHO_CLIENT = `
import net from 'node:net';
const proxyPort = Number(process.argv[2]);
const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s)).listen(0, '127.0.0.1');
await new Promise((r) => echo.once('listening', r));
const sock = net.connect(proxyPort, '127.0.0.1');
const port = echo.address().port;
let buf = Buffer.alloc(0);
await new Promise((resolve, reject) => {
  sock.once('error', reject);
  const onData = (c) => {
    buf = Buffer.concat([buf, c]);
    if (buf.length >= 2 && buf.length < 12) return;
    if (buf.length >= 12) { sock.off('data', onData); buf[1] === 0 ? resolve() : reject(new Error('socks reply ' + buf[1])); }
  };
  sock.on('data', onData);
  sock.write(Buffer.from([5, 1, 0]));
  sock.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 255]));
});
// The first 2 bytes were the method reply; 10 the CONNECT reply.
let sent = 0, received = 0, mismatch = -1, ended = false;
const byte = (i) => (i * 7 + (i >> 8)) & 255;
sock.on('data', (c) => {
  for (const b of c) {
    if (mismatch < 0 && b !== byte(received)) mismatch = received;
    received++;
  }
});
sock.on('end', () => { ended = true; });
sock.on('error', (e) => { process.stderr.write('client error ' + e.code + '\\n'); });
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
  sock.end();
  const deadline = Date.now() + 10000;
  while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  process.stdout.write(JSON.stringify({ sent, received, mismatch, ended }) + '\\n');
  process.exit(0);
});
`;

/** node stall-client.mjs PROXY_PORT ORIGIN_PORT: SOCKS5 CONNECT to the origin, asks for
 * 64 MiB, reads the first 100 KB, then stops reading and prints "stalled"; when stdin
 * closes it reads again and prints {"received", "error", "closed"} once the connection
 * ends (or after 10 s). */
export const STALL_CLIENT = `
import net from 'node:net';
const [proxyPort, originPort] = process.argv.slice(2).map(Number);
const sock = net.connect(proxyPort, '127.0.0.1');
sock.setNoDelay(true);
let received = 0, error = null, stalled = false;
sock.on('error', (e) => { error = e.code || e.message; });
sock.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, originPort >> 8, originPort & 255]));
sock.write('GET /bytes/67108864 HTTP/1.1\\r\\nhost: o\\r\\n\\r\\n');
let closed = false;
const done = new Promise((r) => sock.on('close', () => { closed = true; r(); }));
sock.on('data', (c) => {
  received += c.length;
  if (received > 100000 && !stalled) {
    stalled = true;
    sock.pause();
    setTimeout(() => process.stdout.write('stalled\\n'), 500);
  }
});
process.stdin.resume();
process.stdin.on('end', async () => {
  sock.resume();
  await Promise.race([done, new Promise((r) => setTimeout(r, 10000))]);
  process.stdout.write(JSON.stringify({ received, error, closed }) + '\\n');
  process.exit(0);
});
`;
