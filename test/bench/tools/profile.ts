// Not a benchmark run by scripts/bench.mjs (sub-folder): a tool for finding where the time goes.
// Where portail spends its CPU: runs the daemon under `node --cpu-prof` behind the same
// nginx origin as the data-plane benchmark, drives it (a download, or sequential set-ups),
// stops it and prints the functions with the most self time.
//
//   node dist/test/bench/tools/profile.js download [MiB]     (default 1024)
//   node dist/test/bench/tools/profile.js setup [count]      (default 2000)
//   node dist/test/bench/tools/profile.js idle [count]       RSS per idle relay (default 2000)
//   … --keep   keeps the .cpuprofile (path printed), for Chrome DevTools
//   … --no-prof   no profiler (its sampling costs CPU): clean CPU figures only
//   … --node-flag=FLAG   a Node/V8 flag for the daemon (repeatable)
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
} from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  groupCpuSeconds,
  groupRssBytes,
  sleep,
  startNginx,
  stopAll,
  tmpDir,
} from '../../harness/index.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { socksConnect, timeFirstByte } from '../lib/socks5-client.js';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
}

function summarize(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const total = p.samples.length;
  const self = new Map<string, number>();
  for (const n of p.nodes) {
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(dist|node:)/, '$1')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    self.set(key, (self.get(key) ?? 0) + n.hitCount);
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`)
    .join('\n');
}

/** [user, system] CPU seconds of one process. */
function userSys(pid: number): [number, number] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return [Number(rest[11]) / 100, Number(rest[12]) / 100];
}

async function main() {
  const [mode = 'download', nArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const keep = process.argv.includes('--keep');
  // The profiler's sampling signals cost CPU themselves: --no-prof for clean figures.
  const prof = !process.argv.includes('--no-prof');
  const root = tmpDir(undefined, 'portail-prof-www-');
  const mib = mode === 'download' ? Number(nArg ?? 1024) : 1;
  const fd = openSync(join(root, 'stream.bin'), 'w');
  ftruncateSync(fd, mib * 1024 * 1024);
  closeSync(fd);
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const config = writeBenchConfig(undefined, 'portail-prof-');
  const profDir = join(dirname(config), 'prof');
  const { started: daemon, proxy } = await startPortailDaemon(config, {
    nodeFlags: [
      ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=200'] : []),
      ...(process.argv.includes('--heap')
        ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${tmpdir()}`]
        : []),
    ],
    // --node-flag=--max-semi-space-size=1 …: more V8/Node flags for the daemon.
    extraFlags: process.argv.filter((a) => a.startsWith('--node-flag=')).map((a) => a.slice(12)),
  });
  await timeFirstByte(proxy, origin);
  const cpu0 = groupCpuSeconds(daemon.pid);
  const ut0 = userSys(daemon.pid);
  const t0 = performance.now();
  if (mode === 'download') {
    await new Promise<void>((resolve, reject) => {
      const c = spawn(
        'curl',
        [
          '-sS',
          '--socks5-hostname',
          `127.0.0.1:${proxy.port}`,
          '-o',
          '/dev/null',
          `http://127.0.0.1:${nginx.port}/stream.bin`,
        ],
        { stdio: 'inherit' },
      );
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl exited ${code}`))));
    });
    const secs = (performance.now() - t0) / 1000;
    const cpu = groupCpuSeconds(daemon.pid) - cpu0;
    const ut1 = userSys(daemon.pid);
    console.log(
      `user ${((ut1[0] - ut0[0]) / (mib / 1024)).toFixed(2)} + system ${((ut1[1] - ut0[1]) / (mib / 1024)).toFixed(2)} CPU-s/GiB (the daemon process)`,
    );
    console.log(
      `download ${mib} MiB: ${((mib * 1.048576) / secs).toFixed(0)} MB/s, ${(cpu / (mib / 1024)).toFixed(2)} CPU-s/GiB`,
    );
  } else if (mode === 'idle') {
    // RSS per idle relay, as the data-plane benchmark measures it (after a warm-up).
    const n = Number(nArg ?? 2000);
    const open = async (count: number) => {
      const out: net.Socket[] = [];
      for (let i = 0; i < count; i += 50) {
        const batch = Math.min(50, count - i);
        out.push(
          ...(await Promise.all(Array.from({ length: batch }, () => socksConnect(proxy, origin)))),
        );
      }
      return out;
    };
    for (const s of await open(50)) s.destroy();
    await sleep(500);
    const rss0 = groupRssBytes(daemon.pid);
    const socks = await open(n);
    await sleep(1000);
    const rss1 = groupRssBytes(daemon.pid);
    if (process.argv.includes('--heap')) {
      // --heap: a heap snapshot of the daemon with the relays open (node --heapsnapshot-signal).
      process.kill(daemon.pid, 'SIGUSR2');
      await sleep(8000);
    }
    console.log(`${n} idle relays: ${((rss1 - rss0) / 1024 / n).toFixed(1)} KiB RSS each`);
    for (const s of socks) s.destroy();
  } else {
    const n = Number(nArg ?? 2000);
    const times: number[] = [];
    for (let i = 0; i < n; i++) times.push(await timeFirstByte(proxy, origin));
    times.sort((a, b) => a - b);
    const cpu = groupCpuSeconds(daemon.pid) - cpu0;
    const ut1 = userSys(daemon.pid);
    console.log(
      `user ${(((ut1[0] - ut0[0]) / n) * 1e6).toFixed(0)} + system ${(((ut1[1] - ut0[1]) / n) * 1e6).toFixed(0)} µs per set-up (the daemon process)`,
    );
    console.log(
      `${n} set-ups: p50 ${times[Math.floor(n / 2)].toFixed(3)} ms, p99 ${times[Math.floor(n * 0.99)].toFixed(3)} ms, ${((cpu / n) * 1e6).toFixed(0)} µs CPU each`,
    );
  }
  await daemon.stop();
  const found = prof ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
  for (const f of found) {
    console.log(`\n${summarize(join(profDir, f))}`);
    if (keep) {
      // The temporary folder goes away with the harness: keep a copy.
      const kept = join(tmpdir(), `portail-${mode}-${f}`);
      copyFileSync(join(profDir, f), kept);
      console.log(`profile: ${kept}`);
    }
  }
  await stopAll();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
