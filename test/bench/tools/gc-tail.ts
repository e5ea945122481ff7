// Not a benchmark run by scripts/bench.mjs (sub-folder): what the slow set-ups (the p99)
// of a daemon in the steady state are made of. Sequential SOCKS5 set-ups through one
// daemon per semi-space size, interleaved in rounds; the daemon records its garbage collections
// (lib/gc-observer.ts) and every set-up slower than --slow=MS is checked against them:
// one that overlaps a pause was waiting for the collector.
//
//   node dist/test/bench/tools/gc-tail.js [--semi=2,8,16] [--n=3000] [--rounds=6]
//     [--warmup=6000] [--slow=1]
//   (each size is passed as --max-semi-space-size after the bin's own flags)
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberListOption, numberOption } from '../lib/args.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { percentile } from '../lib/measure.js';
import { timeFirstByte } from '../lib/socks5-client.js';

const OBSERVER = fileURLToPath(new URL('../lib/gc-observer.js', import.meta.url));

async function main() {
  const args = process.argv.slice(2);
  const opt = (k: string, d: number) => numberOption(args, k, d);
  const n = opt('n', 3000);
  const warmup = opt('warmup', 6000);
  const slowMs = opt('slow', 1);
  const sizes = numberListOption(args, 'semi', [2, 8, 16]);
  const root = tmpDir(undefined, 'portail-gc-tail-www-');
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const config = writeBenchConfig(undefined, 'portail-gc-tail-');
  const rounds = opt('rounds', 6);
  console.log(
    `${n} sequential set-ups per daemon after ${warmup}, interleaved in ${rounds} rounds; slow = over ${slowMs} ms`,
  );
  const daemons = [];
  for (const semi of sizes) {
    const log = join(tmpDir(undefined, 'portail-gc-tail-'), 'gc.json');
    process.env.PORTAIL_GC_LOG = log; // read by the preload when the daemon starts
    const d = await startPortailDaemon(config, {
      name: `semi ${semi}`,
      nodeFlags: [`--import=${OBSERVER}`],
      extraFlags: [`--max-semi-space-size=${semi}`],
    });
    daemons.push({ semi, log, d, samples: [] as Array<[number, number]> });
  }
  for (const x of daemons) for (let i = 0; i < warmup; i++) await timeFirstByte(x.d.proxy, origin);
  for (let r = 0; r < rounds; r++) {
    for (const x of daemons) {
      for (let i = 0; i < n / rounds; i++) {
        const start = performance.timeOrigin + performance.now();
        x.samples.push([start, await timeFirstByte(x.d.proxy, origin)]);
      }
    }
  }
  for (const { semi, log, d, samples } of daemons) {
    rmSync(log, { force: true });
    process.kill(d.started.pid, 'SIGUSR2');
    while (!existsSync(log)) await sleep(20);
    await sleep(100); // written synchronously: let the write finish
    const first = (samples[0] as [number, number])[0];
    const gcs = (JSON.parse(readFileSync(log, 'utf8')) as Array<[number, number, number]>).filter(
      ([t]) => t >= first,
    );
    let slow = 0;
    let slowInGc = 0;
    for (const [start, ms] of samples) {
      if (ms <= slowMs) continue;
      slow++;
      const end = start + ms;
      if (gcs.some(([t, dur]) => t < end && t + dur > start)) slowInGc++;
    }
    const times = samples.map((s) => s[1]);
    const q = (p: number) => (percentile(times, p) ?? 0).toFixed(3);
    const minor = gcs.filter((g) => g[2] === 1);
    const meanPause = gcs.reduce((a, g) => a + g[1], 0) / Math.max(1, gcs.length);
    console.log(
      `semi ${semi} MiB: p50 ${q(50)} p99 ${q(99)} ms; ${gcs.length} collections (${minor.length} minor), ` +
        `mean pause ${meanPause.toFixed(2)} ms, one per ${(samples.length / Math.max(1, gcs.length)).toFixed(0)} set-ups; ` +
        `${slow} slow set-ups, ${slowInGc} of them during a collection`,
    );
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
