// Not a benchmark run by scripts/bench.mjs (sub-folder): where a set-up's time goes, as
// the client sees it. Each connection is cut into its round trips — TCP connect, SOCKS5
// greeting → method, CONNECT → reply, GET → first byte, rest → end — and every proxy
// (microsocks, the two reference Node proxies, one or more portail builds) is timed the
// same way, interleaved, behind the same nginx origin. The difference between two rows, phase by
// phase, says which part of the proxy's work is on the client's path.
//
//   node dist/test/bench/tools/phases.js [DIST…] [--rounds=6] [--n=300] [--warmup=200]
//     [--gap=MS]  a pause after each connection: the proxy has finished with the previous
//                 one (close, audit) before the next starts
//   (DIST defaults to this build's dist/; a copy made before a change compares builds)

import net from 'node:net';
import { join, resolve } from 'node:path';
import { sleep, startMicrosocks, startNginx, stopAll, tmpDir } from '../../harness/index.js';
import { numberOption } from '../lib/args.js';
import {
  BUILT_CLI,
  REFERENCE_PROXIES,
  startPortailDaemon,
  startReferenceNode,
  writeBenchConfig,
} from '../lib/daemons.js';
import { percentile } from '../lib/measure.js';

const PHASES = ['tcp', 'greeting', 'connect', 'first byte', 'end'] as const;

const now = () => Number(process.hrtime.bigint()) / 1e3;

/** The next chunk (each step's answer fits in one on loopback). */
function nextChunk(s: net.Socket): Promise<Buffer> {
  return new Promise((res, rej) => {
    const onData = (d: Buffer) => {
      s.removeListener('error', rej);
      res(d);
    };
    s.once('data', onData);
    s.once('error', rej);
  });
}

/** One connection through `proxy` to `origin`, µs per phase. */
async function timed(proxy: number, origin: number): Promise<number[]> {
  const t = [now()];
  const s = net.connect(proxy, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise<void>((res, rej) => {
    s.once('connect', res);
    s.once('error', rej);
  });
  t.push(now());
  s.write(Buffer.from([5, 1, 0]));
  const method = await nextChunk(s);
  if (method[1] !== 0) throw new Error(`method refused: ${method.toString('hex')}`);
  t.push(now());
  s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, origin >> 8, origin & 255]));
  const reply = await nextChunk(s);
  if (reply[1] !== 0) throw new Error(`CONNECT refused: ${reply.toString('hex')}`);
  t.push(now());
  s.write('GET /__peer HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n');
  await nextChunk(s);
  t.push(now());
  s.on('data', () => {});
  await new Promise((res) => s.once('end', res));
  t.push(now());
  s.destroy();
  return t.slice(1).map((x, i) => x - (t[i] as number));
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (k: string, d: number) => numberOption(args, k, d);
  const rounds = opt('rounds', 6);
  const n = opt('n', 300);
  const builds = args.filter((a) => !a.startsWith('--'));

  const root = tmpDir(undefined, 'portail-phases-www-');
  const nginx = await startNginx({ root, workers: 'auto' });
  const config = writeBenchConfig(undefined, 'portail-phases-');
  const rows: Array<{ name: string; port: number; times: number[][] }> = [];
  const m = await startMicrosocks({});
  rows.push({ name: 'microsocks', port: m.port, times: [] });
  for (const which of ['bare', 'lean'] as const) {
    const ref = await startReferenceNode(which);
    rows.push({ name: REFERENCE_PROXIES[which].name, port: ref.proxy.port, times: [] });
  }
  // Without builds named: this one.
  for (const dist of builds.length ? builds : [undefined]) {
    const cli = dist === undefined ? BUILT_CLI : join(resolve(dist), 'proxy/cli/portail.js');
    const d = await startPortailDaemon(config, { cli, name: dist });
    rows.push({ name: `portail ${dist ?? '(this build)'}`, port: d.proxy.port, times: [] });
  }
  const warmup = opt('warmup', 200);
  const gap = opt('gap', 0);
  for (const r of rows) for (let i = 0; i < warmup; i++) await timed(r.port, nginx.port);
  for (let k = 0; k < rounds; k++)
    for (const r of rows)
      for (let i = 0; i < n; i++) {
        r.times.push(await timed(r.port, nginx.port));
        if (gap > 0) await sleep(gap);
      }

  console.log(`p50 / p90 in µs per phase, ${rounds}×${n} connections each, interleaved`);
  console.log(['proxy', ...PHASES, 'sum of p50'].join(' | '));
  for (const r of rows) {
    const cells = PHASES.map((_, j) => {
      const v = r.times.map((x) => x[j] as number);
      return { p50: percentile(v, 50) ?? 0, p90: percentile(v, 90) ?? 0 };
    });
    const sum = cells.reduce((a, c) => a + c.p50, 0);
    console.log(
      [
        r.name,
        ...cells.map((c) => `${c.p50.toFixed(0)} / ${c.p90.toFixed(0)}`),
        sum.toFixed(0),
      ].join(' | '),
    );
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
