// Not a benchmark run by scripts/bench.mjs (sub-folder): what an idle daemon costs the
// machine, against a bare Node server measured in the same run (docs/performance.md,
// "Footprint"), and how long `portail check-acl-syntax` takes on the acl benchmark's
// 1,000,000-entry list, process start included.
//
//   node dist/test/bench/tools/footprint.js [idle] [acl] [--runs=5] [--settle=3000] [--window=5000]
//     [--cli=PATH]   (another build's dist/proxy/cli/portail.js, for a before/after)
//
// idle: each run starts (a) `node bare.mjs`, a `net.createServer().listen(port,
// '127.0.0.1')`, and (b) `portail daemon` as its bin runs it, on examples/portail.toml
// (the README's default configuration: loopback only, audit to stdout, no control socket)
// — in alternating order — and (c) "floor": the bare server after importing the
// libraries the daemon cannot start without (commander, zod, pino, smol-toml), what no
// lazy loading can remove; and measures:
//   - exec → listening: from spawn to the first TCP connect that succeeds (polled every
//     2 ms, the same for both);
//   - idle RSS: VmRSS (/proc/PID/status) after `--settle` ms of idleness;
//   - wakeups/s: the context switches (voluntary + involuntary) of every thread
//     (/proc/PID/task/*/status) over `--window` ms, divided by the seconds.
// acl: `portail check-acl-syntax FILE` on the acl benchmark's case a, wall time from
// spawn to exit, `--runs` times.
// Targets (issue 19): RSS ≤ 1.3× bare, 0 wakeups/s (< 0.5/s counted as 0: reading /proc
// or a timer of the kernel's can land in a window), exec → listening ≤ 1.5× bare,
// check-acl-syntax < 1 s.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, stopAll, tmpDir } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import { BUILT_CLI, shebangFlags } from '../lib/daemons.js';
import { median } from '../lib/measure.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const EXAMPLE_CONFIG = join(ROOT, 'examples/portail.toml');

interface Sample {
  readyMs: number;
  rssKiB: number;
  wakeupsPerS: number;
}

function statusField(path: string, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(path, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // a thread that ended between readdir and read
  }
}

/** Context switches of every thread of `pid` so far. */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const status = `/proc/${pid}/task/${tid}/status`;
    n += statusField(status, 'voluntary_ctxt_switches');
    n += statusField(status, 'nonvoluntary_ctxt_switches');
  }
  return n;
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function measureServer(
  args: string[],
  cwd: string,
  port: number,
  settleMs: number,
  windowMs: number,
): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-4000);
  });
  child.stderr.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-4000);
  });
  try {
    for (;;) {
      if (await tryConnect(port)) break;
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}):\n${out}`);
      if (performance.now() - t0 > 15_000) throw new Error(`not listening after 15 s:\n${out}`);
      await sleep(2);
    }
    const readyMs = performance.now() - t0;
    await sleep(settleMs);
    const pid = child.pid as number;
    const rssKiB = statusField(`/proc/${pid}/status`, 'VmRSS');
    const c0 = contextSwitches(pid);
    const w0 = performance.now();
    await sleep(windowMs);
    const wakeupsPerS = (contextSwitches(pid) - c0) / ((performance.now() - w0) / 1000);
    return { readyMs, rssKiB, wakeupsPerS };
  } finally {
    await stopChild(child);
  }
}

const fmt = (x: number, digits = 0) => x.toFixed(digits);
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

type Row = 'bare' | 'floor' | 'portail';

const FLOOR_IMPORTS = ['commander', 'zod', 'pino', 'smol-toml'];

async function idle(runs: number, settleMs: number, windowMs: number, cli: string): Promise<void> {
  const dir = tmpDir(undefined, 'portail-footprint-');
  const bare = join(dir, 'bare.mjs');
  writeFileSync(
    bare,
    "import net from 'node:net';\n" +
      "net.createServer().listen(Number(process.argv[2]), '127.0.0.1', () => console.log('ready'));\n",
  );
  const rows: Record<Row, Sample[]> = { bare: [], floor: [], portail: [] };
  const rotations: Row[][] = [
    ['bare', 'floor', 'portail'],
    ['portail', 'bare', 'floor'],
    ['floor', 'portail', 'bare'],
  ];
  for (let i = 0; i < runs; i++) {
    for (const which of rotations[i % rotations.length]) {
      const port = await freePort();
      const floor =
        `${FLOOR_IMPORTS.map((m) => `await import('${m}');`).join(' ')} ` +
        `(await import('node:net')).default.createServer().listen(${port}, '127.0.0.1');`;
      const args =
        which === 'bare'
          ? [bare, String(port)]
          : which === 'floor'
            ? [...shebangFlags(cli), '--input-type=module', '-e', floor]
            : [
                ...shebangFlags(cli),
                cli,
                'daemon',
                '--config',
                EXAMPLE_CONFIG,
                '--bind-proxy-address',
                `127.0.0.1:${port}`,
              ];
      // From the checkout, where the floor's imports resolve.
      const s = await measureServer(args, ROOT, port, settleMs, windowMs);
      rows[which].push(s);
      console.log(
        `run ${i + 1} ${which.padEnd(7)} exec→listening ${fmt(s.readyMs, 1)} ms, ` +
          `RSS ${fmt(s.rssKiB / 1024, 1)} MiB, ${fmt(s.wakeupsPerS, 2)} wakeups/s`,
      );
    }
  }
  const med = (w: Row, k: keyof Sample) => median(rows[w].map((s) => s[k])) as number;
  const ready = (['bare', 'floor', 'portail'] as const).map((w) => med(w, 'readyMs'));
  const rss = (['bare', 'floor', 'portail'] as const).map((w) => med(w, 'rssKiB') / 1024);
  const wake = (['bare', 'floor', 'portail'] as const).map((w) => med(w, 'wakeupsPerS'));
  console.log(`\nmedians of ${runs} runs (idle ${settleMs} ms, then a ${windowMs} ms window)`);
  console.log(
    'figure                 bare    floor  portail   portail/bare  floor/bare   target           verdict',
  );
  const line = (
    name: string,
    v: number[],
    digits: number,
    ratios: boolean,
    target: string,
    ok: boolean,
  ) =>
    console.log(
      `${name.padEnd(22)} ${v.map((x) => fmt(x, digits).padStart(7)).join('  ')}   ` +
        `${(ratios ? `${fmt(v[2] / v[0], 2)}×` : '').padStart(12)}  ${(ratios ? `${fmt(v[1] / v[0], 2)}×` : '').padStart(10)}   ` +
        `${target.padEnd(16)} ${verdict(ok)}`,
    );
  line('exec→listening (ms)', ready, 1, true, '≤ 1.5× bare', ready[2] <= 1.5 * ready[0]);
  line('idle RSS (MiB)', rss, 1, true, '≤ 1.3× bare', rss[2] <= 1.3 * rss[0]);
  line('wakeups/s idle', wake, 2, false, '0 (< 0.5 noise)', wake[2] < 0.5);
  console.log(`floor: a bare server after importing ${FLOOR_IMPORTS.join(', ')}`);
}

/** The acl benchmark's case a (test/bench/acl.ts): 1,000,000 hosts, exact and .suffix. */
function writeListAcl(dir: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 1_000_000; i++)
    lines.push(i % 2 ? `host${i}.blocked.test` : `.zone${i}.test`);
  writeFileSync(join(dir, 'blocked.txt'), `${lines.join('\n')}\n`);
  const acl = join(dir, 'bench.acl');
  writeFileSync(
    acl,
    'policy blocked {\n  when host in file("blocked.txt")\n  action deny\n}\npolicy rest {\n  action allow\n}\n',
  );
  return acl;
}

async function aclCheck(runs: number, cli: string): Promise<void> {
  const acl = writeListAcl(tmpDir(undefined, 'portail-footprint-acl-'));
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...shebangFlags(cli), cli, 'check-acl-syntax', acl], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`check-acl-syntax exited ${code}:\n${out}`);
    times.push(ms);
    console.log(`run ${i + 1} check-acl-syntax (1,000,000-entry list) ${fmt(ms)} ms`);
  }
  const m = median(times) as number;
  console.log(
    `check-acl-syntax, process start included: median ${fmt(m)} ms of ${runs} ` +
      `(min ${fmt(Math.min(...times))}, max ${fmt(Math.max(...times))}); target < 1000 ms ${verdict(m < 1000)}`,
  );
}

async function main() {
  const args = process.argv.slice(2);
  const runs = numberOption(args, 'runs', 5);
  const modes = args.filter((a) => !a.startsWith('-'));
  const all = modes.length === 0;
  const cliArg = args.find((a) => a.startsWith('--cli='))?.slice('--cli='.length);
  const cli = cliArg === undefined ? BUILT_CLI : resolve(cliArg);
  if (all || modes.includes('idle'))
    await idle(runs, numberOption(args, 'settle', 3000), numberOption(args, 'window', 5000), cli);
  if (all || modes.includes('acl')) await aclCheck(runs, cli);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
