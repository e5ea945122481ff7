// Not a benchmark run by scripts/bench.mjs (sub-folder): what a set-up allocates in the
// daemon, by allocation site. V8's sampling heap profiler (lib/heap-sampler.ts, one
// sample per 256 bytes on average) runs during N sequential set-ups in the steady state;
// the sites are printed with their bytes per set-up, then the heaviest call paths.
// Garbage counts: the young generation fills with it, and each scavenge is a pause
// (tools/gc-tail.ts).
//
//   node dist/test/bench/tools/alloc.js [--n=2000] [--warmup=6000] [--top=40]
//     [--survivors]   only what outlived a scavenge (what the scavenges copy)
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { timeFirstByte } from '../lib/socks5-client.js';

const SAMPLER = fileURLToPath(new URL('../lib/heap-sampler.js', import.meta.url));

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

async function main() {
  const args = process.argv.slice(2);
  const n = numberOption(args, 'n', 2000);
  const warmup = numberOption(args, 'warmup', 6000);
  const top = numberOption(args, 'top', 40);
  const survivors = args.includes('--survivors');
  const root = tmpDir(undefined, 'portail-alloc-www-');
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const out = join(tmpDir(undefined, 'portail-alloc-'), 'heap.json');
  process.env.PORTAIL_HEAP_PROFILE = out;
  process.env.PORTAIL_HEAP_SURVIVORS = survivors ? '1' : '0';
  const d = await startPortailDaemon(writeBenchConfig(undefined, 'portail-alloc-'), {
    nodeFlags: [`--import=${SAMPLER}`],
  });
  for (let i = 0; i < warmup; i++) await timeFirstByte(d.proxy, origin);
  rmSync(out, { force: true });
  process.kill(d.started.pid, 'SIGUSR2');
  await sleep(200);
  for (let i = 0; i < n; i++) await timeFirstByte(d.proxy, origin);
  await sleep(100); // close records and sockets' ends belong to these set-ups
  process.kill(d.started.pid, 'SIGUSR2');
  while (!existsSync(out)) await sleep(50);
  await sleep(200);
  const profile = JSON.parse(readFileSync(out, 'utf8')) as { head: ProfileNode };

  const bySite = new Map<string, number>();
  const byPath = new Map<string, number>();
  let total = 0;
  const name = (f: ProfileNode['callFrame']) =>
    `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  const walk = (node: ProfileNode, callers: string[]) => {
    const site = name(node.callFrame);
    if (node.selfSize > 0) {
      total += node.selfSize;
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      const path = [site, ...callers.slice(-3).reverse()].join(' < ');
      byPath.set(path, (byPath.get(path) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, [...callers, site]);
  };
  walk(profile.head, []);
  const perSetUp = (bytes: number) => (bytes / n).toFixed(0).padStart(6);
  console.log(
    `${survivors ? 'outlived a scavenge' : 'allocated'}: ${perSetUp(total).trim()} bytes per set-up (${n} set-ups after ${warmup}; sampled)`,
  );
  console.log('\nbytes per set-up, by site:');
  for (const [k, v] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${perSetUp(v)}  ${k}`);
  console.log('\nbytes per set-up, by call path (site < caller < …):');
  for (const [k, v] of [...byPath].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${perSetUp(v)}  ${k}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
