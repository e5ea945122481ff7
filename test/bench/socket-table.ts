// Cost of one socket-table lookup (SPEC 5.5: client.uid / client.process.*), with a
// few hundred open loopback connections whose client ends live in a child process.
//   node dist/test/bench/socket-table.js [connections=300] [lookups=200]
import { spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createSocketTable, type PeerAddress } from '../../proxy/context/socket-table.js';

const connections = Number(process.argv[2] ?? 300);
const lookups = Number(process.argv[3] ?? 200);

const accepted: net.Socket[] = [];
const server = net.createServer((s) => {
  s.on('error', () => {});
  accepted.push(s);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address() as net.AddressInfo;

// The clients: one child process holding every connection open (a browser, say).
const child = spawn(
  process.execPath,
  [
    '-e',
    `const net=require('net');let n=0;for(let i=0;i<${connections};i++){const c=net.connect(${port},'127.0.0.1');c.on('error',()=>{});c.on('connect',()=>{if(++n===${connections})console.log('ready')})}setInterval(()=>{},1e6)`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise<void>((r) => child.stdout?.once('data', () => r()));
while (accepted.length < connections) await new Promise((r) => setTimeout(r, 10));

const peers: PeerAddress[] = accepted.map((s) => ({
  ip: s.remoteAddress as string,
  port: s.remotePort as number,
  localIp: s.localAddress as string,
  localPort: s.localPort as number,
}));

async function measure(name: string, once: (peer: PeerAddress) => Promise<boolean>) {
  const times: number[] = [];
  let misses = 0;
  for (let i = 0; i < lookups; i++) {
    const peer = peers[(i * 7919) % peers.length];
    const t0 = performance.now();
    if (!(await once(peer))) misses++;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const q = (p: number) =>
    times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))].toFixed(3);
  console.log(
    `${name.padEnd(34)} p50 ${q(50).padStart(8)} ms   p99 ${q(99).padStart(8)} ms   max ${times[times.length - 1].toFixed(3).padStart(8)} ms${misses ? `   (${misses} misses!)` : ''}`,
  );
}

const warm = createSocketTable();
const processes = (await import('node:fs'))
  .readdirSync('/proc')
  .filter((n) => /^\d+$/.test(n)).length;
console.log(
  `socket table: ${connections} loopback connections (${connections * 2} sockets), ${processes} processes, ${lookups} lookups each`,
);
await measure('uid (owner)', async (p) => (await warm.owner(p)) !== undefined);
await measure('uid + user name', async (p) => {
  const o = await warm.owner(p);
  return o !== undefined && (await warm.userName(o.uid)) !== undefined;
});
await measure('uid + process, cold (full scan)', async (p) => {
  const t = createSocketTable(); // no memory of recent pids: worst realistic case
  const o = await t.owner(p);
  return o !== undefined && (await t.process(o.inode, o.uid))?.pid === child.pid;
});
await measure('uid + process, warm (same client)', async (p) => {
  const o = await warm.owner(p);
  return o !== undefined && (await warm.process(o.inode, o.uid))?.pid === child.pid;
});

{
  // A burst (a browser opening many connections at once): lookups share table passes.
  const burst = 50;
  const t0 = performance.now();
  const found = await Promise.all(peers.slice(0, burst).map((p) => warm.owner(p)));
  const took = performance.now() - t0;
  const misses = found.filter((o) => o === undefined).length;
  console.log(
    `${`uid, burst of ${burst} concurrent`.padEnd(34)} total ${took.toFixed(3).padStart(6)} ms = ${(took / burst).toFixed(3)} ms per lookup${misses ? `   (${misses} misses!)` : ''}`,
  );
}

child.kill('SIGKILL');
for (const s of accepted) s.destroy();
server.close();
