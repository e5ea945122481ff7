// Not a benchmark run by scripts/bench.mjs (sub-folder): a tool for telling whether a
// change to the set-up path helps. Starts one daemon per build (a copy of `dist/` made
// before the change, the current one…) behind the same nginx origin, then runs rounds of
// sequential SOCKS5 set-ups against each in turn, so that every build sees the same
// machine state, and prints p50/p90/p99 and the daemon's CPU per connection. Differences
// under ~5 % are noise on a shared 2-core machine: run it twice.
//
//   cp -r dist .cache/base-dist            (before the change; then rebuild)
//   node dist/test/bench/tools/ab.js .cache/base-dist dist [--rounds=4] [--n=500]
//   … DIST|--flag|--flag   Node flags for that daemon (in addition to the bin's)
//   … bare | lean          a reference Node SOCKS5 proxy (lib/bare-node-socks.ts,
//                          lib/lean-node-socks.ts): the floor
//   … --warmup=N           set-ups per daemon before measuring (default 200)
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { groupCpuSeconds, sleep, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import {
  type Daemon,
  startPortailDaemon,
  startReferenceNode,
  writeBenchConfig,
} from '../lib/daemons.js';
import { percentile } from '../lib/measure.js';
import { timeFirstByte } from '../lib/socks5-client.js';

async function main() {
  const args = process.argv.slice(2);
  const opt = (k: string, d: number) => numberOption(args, k, d);
  const rounds = opt('rounds', 4);
  const n = opt('n', 500);
  const builds = args.filter((a) => !a.startsWith('--'));
  if (builds.length === 0) {
    console.error('usage: ab.js DIST[|--node-flag…] DIST… [--rounds=4] [--n=500]');
    process.exit(2);
  }
  const root = tmpDir(undefined, 'portail-ab-www-');
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const config = writeBenchConfig(undefined, 'portail-ab-');
  const daemons = [];
  for (const spec of builds) {
    let d: Daemon;
    if (spec === 'bare' || spec === 'lean') d = await startReferenceNode(spec, spec);
    else {
      const [dist, ...extraFlags] = spec.split('|');
      const cli = join(resolve(dist as string), 'proxy/cli/portail.js');
      readFileSync(cli); // a clear error for a wrong path
      d = await startPortailDaemon(config, { cli, name: spec, extraFlags });
    }
    daemons.push({ spec, pid: d.started.pid, proxy: d.proxy, times: [] as number[], cpu: 0 });
  }
  const warmup = opt('warmup', 200);
  for (const d of daemons) for (let i = 0; i < warmup; i++) await timeFirstByte(d.proxy, origin);
  for (let r = 0; r < rounds; r++) {
    for (const d of daemons) {
      const cpu0 = groupCpuSeconds(d.pid);
      for (let i = 0; i < n; i++) d.times.push(await timeFirstByte(d.proxy, origin));
      await sleep(50); // its close records and sockets' ends count for it
      d.cpu += groupCpuSeconds(d.pid) - cpu0;
    }
  }
  for (const d of daemons) {
    const q = (x: number) => (percentile(d.times, x * 100) ?? 0).toFixed(3);
    console.log(
      `${d.spec}: p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} ms, ${((d.cpu / (rounds * n)) * 1e6).toFixed(0)} µs CPU per connection`,
    );
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
