// Not a benchmark run by scripts/bench.mjs (sub-folder): does a daemon's history change
// its set-up time? Two daemons of this build behind one nginx origin; one first relays
// bulk downloads (1 stream, then 8 at once, `--rounds` times, as the data-plane
// benchmark's throughput rounds do), then both set up `--warmup` connections, sit idle
// `--idle-ms` (as a row does in a full benchmark run while the others warm up) and are
// measured interleaved. docs/performance-history.md, "Fourth pass", says why it exists.
//
//   node dist/test/bench/tools/history.js [--rounds=3] [--warmup=5000] [--idle-ms=15000]
//     [--n=500] [--node-flag=FLAG]…   (flags for both daemons)
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { groupCpuSeconds, sleep, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { curlDownload, percentile } from '../lib/measure.js';
import { timeFirstByte } from '../lib/socks5-client.js';

const GiB = 1024 ** 3;

async function main() {
  const args = process.argv.slice(2);
  const opt = (k: string, d: number) => numberOption(args, k, d);
  const extraFlags = args
    .filter((a) => a.startsWith('--node-flag='))
    .map((a) => a.slice('--node-flag='.length));
  const root = tmpDir(undefined, 'portail-history-www-');
  const fd = openSync(join(root, 'stream.bin'), 'w');
  ftruncateSync(fd, GiB);
  closeSync(fd);
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const url = `http://127.0.0.1:${nginx.port}/stream.bin`;
  const config = writeBenchConfig(undefined, 'portail-history-');
  const rows = [
    { name: 'set-ups only', d: await startPortailDaemon(config, { name: 'fresh', extraFlags }) },
    {
      name: 'bulk, then set-ups',
      d: await startPortailDaemon(config, { name: 'bulk', extraFlags }),
    },
  ].map((r) => ({ ...r, times: [] as number[], cpu: 0 }));
  const bulk = rows[1]?.d.proxy;
  for (let i = 0; i < opt('rounds', 3); i++) {
    await curlDownload(bulk, url, GiB);
    await Promise.all(Array.from({ length: 8 }, () => curlDownload(bulk, url, GiB)));
  }
  for (const r of rows)
    for (let i = 0; i < opt('warmup', 5000); i++) await timeFirstByte(r.d.proxy, origin);
  await sleep(opt('idle-ms', 15_000));
  const n = opt('n', 500);
  for (let k = 0; k < 5; k++)
    for (const r of rows) {
      const cpu0 = groupCpuSeconds(r.d.started.pid);
      for (let i = 0; i < n / 5; i++) r.times.push(await timeFirstByte(r.d.proxy, origin));
      await sleep(50); // its close records and sockets' ends count for it
      r.cpu += groupCpuSeconds(r.d.started.pid) - cpu0;
    }
  for (const r of rows) {
    const q = (p: number) => (percentile(r.times, p) ?? 0).toFixed(3);
    const cpuUs = ((r.cpu / r.times.length) * 1e6).toFixed(0);
    console.log(
      `${r.name.padEnd(20)} set-up p50 ${q(50)} p90 ${q(90)} p99 ${q(99)} ms, ${cpuUs} µs CPU per set-up`,
    );
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
