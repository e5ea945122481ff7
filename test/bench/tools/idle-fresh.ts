// Not a benchmark run by scripts/bench.mjs (sub-folder): RSS per idle relay in the worst
// case for a garbage-collected daemon — just started, young generation at its initial
// size, then 2,000 relays opened at once (every allocation survives, so V8 grows the
// young generation to its cap during the measurement). The data-plane benchmark
// measures idle relays after thousands of set-ups instead (a daemon that has run a
// while); this one bounds what the semi-space cap costs a fresh one.
//
//   node dist/test/bench/tools/idle-fresh.js [--semi=2,8,16] [--relays=2000] [--before=0]
//   (--before=N: N sequential set-ups first, the data-plane benchmark's situation)
import { groupRssBytes, sleep, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberListOption, numberOption } from '../lib/args.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { socksConnect, timeFirstByte } from '../lib/socks5-client.js';

async function main() {
  const args = process.argv.slice(2);
  const relays = numberOption(args, 'relays', 2000);
  const before = numberOption(args, 'before', 0);
  const sizes = numberListOption(args, 'semi', [2, 8, 16]);
  const root = tmpDir(undefined, 'portail-idle-fresh-www-');
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const config = writeBenchConfig(undefined, 'portail-idle-fresh-');
  for (const semi of sizes) {
    const d = await startPortailDaemon(config, {
      name: `semi ${semi}`,
      extraFlags: [`--max-semi-space-size=${semi}`],
    });
    for (let i = 0; i < before; i++) await timeFirstByte(d.proxy, origin);
    // Warm the pools and allocator (as the data-plane benchmark does), then settle.
    const warm = [];
    for (let i = 0; i < 50; i++) warm.push(await socksConnect(d.proxy, origin));
    for (const s of warm) s.destroy();
    await sleep(2000);
    const rss0 = groupRssBytes(d.started.pid);
    const open = [];
    for (let i = 0; i < relays; i++) open.push(await socksConnect(d.proxy, origin));
    await sleep(1500);
    const rss1 = groupRssBytes(d.started.pid);
    console.log(
      `semi ${semi} MiB, ${before} set-ups before: RSS ${(rss0 / 1024).toFixed(0)} -> ${(rss1 / 1024).toFixed(0)} KiB, ` +
        `${((rss1 - rss0) / 1024 / relays).toFixed(1)} KiB per idle relay (${relays})`,
    );
    for (const s of open) s.destroy();
    await d.started.stop();
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
