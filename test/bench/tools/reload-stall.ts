// Not a benchmark run by scripts/bench.mjs (sub-folder): what a reload costs the
// connections that are open. Opens N relays through a daemon with a 1,000-policy ACL,
// keeps one more relay busy with a ping every millisecond, replaces the ACL by one of
// --policies=P policies (default 1,000; 150,000 ≈ 13 MB) and sends SIGHUP, then prints
// how long the reload took (until its audit record) and the longest a ping waited
// meanwhile (the event loop's stall, as a user feels it).
//
//   node dist/test/bench/tools/reload-stall.js [--policies=P] [N…]  (default 10 3000 9000)
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { sleep, stopAll } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import { startPortailDaemon, writeBenchConfig } from '../lib/daemons.js';
import { socksConnect } from '../lib/socks5-client.js';

/** `n` exact-host policies that never match the echo server, then allow. */
function acl(n: number, first = 'p0'): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = i === 0 ? first : `p${i}`;
    out.push(
      `policy ${name} {\n  when host == "h${i}.corp.example.com" and port == 443\n  action allow\n}`,
    );
  }
  out.push('policy allow_rest {\n  action allow\n}');
  return `${out.join('\n')}\n`;
}

async function once(n: number, policies: number): Promise<string> {
  const held: net.Socket[] = [];
  const echo = net.createServer((s) => {
    s.on('error', () => {});
    held.push(s);
    s.on('data', (d) => s.write(d));
  });
  await new Promise<void>((r) => echo.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const target = { host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port };
  const config = writeBenchConfig(acl(1000), 'portail-reload-');
  const d = await startPortailDaemon(config);
  const clients: net.Socket[] = [];
  try {
    for (let i = 0; i < n; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 200); j++) batch.push(socksConnect(d.proxy, target));
      clients.push(...(await Promise.all(batch)));
    }
    const probe = await socksConnect(d.proxy, target);
    clients.push(probe);
    const waits: number[] = [];
    let sentAt = 0;
    let pinging = true;
    const ping = () => {
      sentAt = performance.now();
      probe.write('x');
    };
    probe.on('data', () => {
      waits.push(performance.now() - sentAt);
      if (pinging) setTimeout(ping, 1);
    });
    ping();
    await sleep(500);
    const from = waits.length;
    const dir = dirname(config);
    writeFileSync(join(dir, 'filter.acl'), acl(policies, 'p0_changed'));
    const audit = join(dir, 'audit.jsonl');
    const t0 = performance.now();
    process.kill(d.started.pid, 'SIGHUP');
    while (!readFileSync(audit, 'utf8').includes('"event":"reload"')) await sleep(2);
    const took = performance.now() - t0;
    await sleep(300);
    pinging = false;
    const during = waits.slice(from).sort((a, b) => a - b);
    const p50 = during[during.length >> 1] ?? 0;
    return `${n.toLocaleString('en').padStart(6)} relays: reload ${took.toFixed(0).padStart(4)} ms; a ping waited at most ${(during.at(-1) ?? 0).toFixed(1).padStart(6)} ms (p50 ${p50.toFixed(2)} ms)`;
  } finally {
    for (const c of clients) c.destroy();
    for (const s of held) s.destroy();
    echo.close();
    await d.started.stop();
  }
}

async function main() {
  const args = process.argv.slice(2);
  const policies = numberOption(args, 'policies', 1000);
  const sizes = args.filter((a) => !a.startsWith('--')).map(Number);
  const mb = (Buffer.byteLength(acl(policies)) / 1e6).toFixed(1);
  console.log(
    `reload (SIGHUP, 1,000-policy ACL replaced by ${policies.toLocaleString('en')} policies, ${mb} MB) with open relays; one relay pinged every ms`,
  );
  for (const n of sizes.length ? sizes : [10, 3000, 9000]) console.log(await once(n, policies));
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
