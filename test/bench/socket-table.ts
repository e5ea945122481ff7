// Cost of one socket-table lookup (docs/acl.md, "Attributes": client.uid /
// client.process.*), netlink (NETLINK_SOCK_DIAG by exact 4-tuple) against /proc/net/tcp,
// with N open loopback connections whose client ends live in a child process (a browser, say).
//   node dist/test/bench/socket-table.js [--connections=100,10000] [--lookups=200]
//   node scripts/bench.mjs socket-table [--connections=…]
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  createSocketTable,
  type PeerAddress,
  type SocketTable,
} from '../../proxy/context/socket-table.js';
import { addon } from '../../systemd/addon.js';
import { peerAddressOf } from '../harness/sockets.js';

const flag = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
const sizes = flag('connections', '100,10000').split(',').map(Number);
const lookups = Number(flag('lookups', '200'));

/** N connections from a child process to a fresh listener; the server ends as peers. */
async function openConnections(n: number) {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const { port } = server.address() as net.AddressInfo;
  // Connects in batches: thousands of simultaneous SYNs overflow the accept queue.
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const net=require('net');let n=0,open=0;const keep=[];
function more(){while(open<256&&n<${n}){n++;open++;const c=net.connect(${port},'127.0.0.1');keep.push(c);c.on('error',()=>{});c.on('connect',()=>{open--;if(n===${n}&&open===0)console.log('ready');else more()})}}
more();setInterval(()=>{},1e6);
let extra;process.stdin.on('data',()=>{extra?.destroy();extra=net.connect(${port},'127.0.0.1');extra.on('error',()=>{})})`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((r) => child.stdout?.once('data', () => r()));
  while (accepted.length < n) await new Promise((r) => setTimeout(r, 10));
  const peers: PeerAddress[] = accepted.map(peerAddressOf);
  const close = () => {
    child.kill('SIGKILL');
    for (const s of accepted) s.destroy();
    server.close();
  };
  /**
   * The child closes the connection it opened last (if any) and opens a new one, as a
   * browser does all day: its peer address once accepted.
   */
  const newConnection = async (): Promise<PeerAddress> => {
    const before = accepted.length;
    child.stdin?.write('n');
    while (accepted.length === before) await new Promise((r) => setImmediate(r));
    return peerAddressOf(accepted[before] as net.Socket);
  };
  return { peers, child, close, newConnection };
}

const fmt = (ms: number) => (ms * 1000).toFixed(1).padStart(9);

/**
 * Sequential lookups, one at a time: p50/p99/max in µs. Each looks up one of `peers`,
 * or the peer `peers` returns (not timed) when it is a function.
 */
async function measure(
  name: string,
  peers: PeerAddress[] | (() => Promise<PeerAddress>),
  count: number,
  once: (peer: PeerAddress) => Promise<boolean>,
) {
  const times: number[] = [];
  let misses = 0;
  for (let i = 0; i < count; i++) {
    const peer =
      typeof peers === 'function'
        ? await peers()
        : (peers[(i * 7919) % peers.length] as PeerAddress);
    const t0 = performance.now();
    if (!(await once(peer))) misses++;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(
    `  ${name.padEnd(36)} p50 ${fmt(q(50))} µs  p99 ${fmt(q(99))} µs  max ${fmt(times[times.length - 1])} µs  ${Math.round(
      1000 / mean,
    )
      .toLocaleString('en')
      .padStart(9)} lookups/s${misses ? `  (${misses} misses!)` : ''}`,
  );
}

/** Tight loop of synchronous addon calls: the raw netlink cost. */
function rawNetlink(name: string, peers: PeerAddress[], count: number, reuse: boolean) {
  const a = addon();
  let misses = 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const p = peers[(i * 7919) % peers.length];
    if (!a.sockDiagOwner(p.ip, p.port, p.localIp, p.localPort, 100, reuse)) misses++;
  }
  const each = (performance.now() - t0) / count;
  console.log(
    `  ${name.padEnd(36)} mean ${fmt(each)} µs  ${Math.round(1000 / each)
      .toLocaleString('en')
      .padStart(9)} lookups/s${misses ? `  (${misses} misses!)` : ''}`,
  );
}

async function burst(name: string, table: SocketTable, peers: PeerAddress[], n: number) {
  const t0 = performance.now();
  const found = await Promise.all(peers.slice(0, n).map((p) => table.owner(p)));
  const took = performance.now() - t0;
  const misses = found.filter((o) => o === undefined).length;
  console.log(
    `  ${name.padEnd(36)} total ${took.toFixed(3).padStart(8)} ms = ${fmt(took / n)} µs per lookup${misses ? `  (${misses} misses!)` : ''}`,
  );
}

const processes = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
console.log(
  `socket table lookups, Node ${process.version}, ${processes} processes; ${lookups} sequential lookups per row`,
);
for (const n of sizes) {
  const { peers, child, close, newConnection } = await openConnections(n);
  try {
    console.log(
      `\n${n.toLocaleString('en')} loopback connections (${(2 * n).toLocaleString('en')} sockets):`,
    );
    const netlink = createSocketTable();
    const proc = createSocketTable({ sockDiag: false });
    rawNetlink('netlink, addon call (socket reused)', peers, 100_000, true);
    rawNetlink('netlink, addon call (socket per call)', peers, 20_000, false);
    await measure(
      'uid via netlink (owner())',
      peers,
      lookups * 10,
      async (p) => (await netlink.owner(p)) !== undefined,
    );
    await measure(
      'uid via /proc/net/tcp (owner())',
      peers,
      lookups,
      async (p) => (await proc.owner(p)) !== undefined,
    );
    await burst('uid via netlink, burst of 50', netlink, peers, 50);
    await burst('uid via /proc, burst of 50 (shared)', proc, peers, 50);
    await measure('uid + user name (netlink)', peers, lookups, async (p) => {
      const o = await netlink.owner(p);
      return o !== undefined && (await netlink.userName(o.uid)) !== undefined;
    });
    await measure('uid + process, cold (full scan)', peers, Math.min(lookups, 50), async (p) => {
      const t = createSocketTable(); // no memory of recent pids: worst realistic case
      const o = await t.owner(p);
      return o !== undefined && (await t.process(o.inode, o.uid))?.pid === child.pid;
    });
    await measure('uid + process, an old connection', peers, Math.min(lookups, 50), async (p) => {
      const o = await netlink.owner(p);
      return o !== undefined && (await netlink.process(o.inode, o.uid))?.pid === child.pid;
    });
    // The common case: the client's newest connection (process-scan.ts's hints).
    const scans = netlink.scanStats.scans;
    await measure('uid + process, new connection', newConnection, lookups, async (p) => {
      const o = await netlink.owner(p);
      return o !== undefined && (await netlink.process(o.inode, o.uid))?.pid === child.pid;
    });
    console.log(`    (full /proc scans in that row: ${netlink.scanStats.scans - scans})`);
  } finally {
    close();
  }
}
