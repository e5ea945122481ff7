// Chaining benchmark: a workstation portail chained to a portail gateway over mutual
// TLS, HTTP/1.1 tunnel (one TLS connection per tunnel) against HTTP/2 (streams pooled
// on one TLS connection), and `ssh -D` to the same nginx origin on loopback.
//
//   node scripts/bench.mjs chain           (build first: node scripts/build.mjs)
//   node dist/test/bench/chain.js --quick  smaller sizes, a smoke run
//
// Figures: single-stream throughput of a 1 GiB download (curl --socks5-hostname to the
// workstation portail, or to ssh -D) and set-up time p50/p99 over 300 sequential
// connections (Node SOCKS5 client: handshake + CONNECT + first byte of the answer).
// The HTTP/1.1 row's workstation has `http2 = false` on its backend: it offers only
// `http/1.1` by ALPN, so the gateway serves HTTP/1.1 CONNECT on a mutual-TLS connection
// of its own per tunnel (no extra hop). See docs/performance.md, "Chaining".
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  type Owner,
  startNginx,
  startProcess,
  stopAll,
  type TestCa,
  tmpDir,
  which,
} from '../harness/index.js';
import { startPortail } from '../integration/daemon/portail.js';
import { startGateway } from '../integration/gateway/gateway.js';
import { curlDownload, median, percentile } from './lib/measure.js';
import { type Endpoint, timeFirstByte } from './lib/socks5-client.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const quick = process.argv.includes('--quick');
const S = quick
  ? { streamBytes: 128 * MiB, rounds: 1, setups: 50, warmup: 5 }
  : { streamBytes: GiB, rounds: 2, setups: 300, warmup: 20 };

/** Resources started here are stopped by stopAll() at the end; owner hooks run then too. */
const hooks: (() => void | Promise<void>)[] = [];
const owner: Owner = { after: (fn) => void hooks.push(fn) };
const log = (m: string) => console.error(`[chain] ${m}`);

/** One curl download through a SOCKS5 proxy; MB/s (10^6), the size checked. */
async function download(proxy: Endpoint, url: string, expect: number): Promise<number> {
  const { bytes, secs } = await curlDownload(proxy, url, expect);
  return bytes / 1e6 / secs;
}

/** A workstation portail whose only route is an identity-aware `http` backend at `port`. */
async function workstation(ca: TestCa, port: number, http2: boolean): Promise<Endpoint> {
  const p = await startPortail(owner, {
    acl: 'route all { use ["gw"] }\npolicy all { action allow }\n',
    config: [
      'fallback-to-direct = false',
      'max-connections = 10000',
      '[escaper]',
      `cacert-file = "${ca.caCert}"`,
      `tls-certificate = "${ca.clientCert}"`,
      `tls-privkey = "${ca.clientKey}"`,
      '[backends.gw]',
      'type = "http"',
      `target-address = "127.0.0.1:${port}"`,
      'identity-aware = true',
      'tls-server-name = "localhost"',
      `http2 = ${http2}`,
      '',
    ].join('\n'),
  });
  return { host: '127.0.0.1', port: p.port };
}

/** A throw-away sshd on loopback and `ssh -D` to it; the SOCKS5 endpoint. */
async function sshDynamic(): Promise<Endpoint | string> {
  const sshd = which('sshd');
  const ssh = which('ssh');
  if (!sshd || !ssh || !which('ssh-keygen')) return 'needs openssh-server, openssh-client';
  const dir = tmpDir(undefined, 'portail-bench-sshd-');
  chmodSync(dir, 0o700);
  const keygen = (f: string) =>
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, f)]);
  keygen('host_key');
  keygen('client_key');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshdPort = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'AllowTcpForwarding yes',
      '',
    ].join('\n'),
  );
  await startProcess(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    readyWhen: { port: sshdPort, host: '127.0.0.1' },
    name: 'sshd',
  });
  const socksPort = await freePort();
  await startProcess(
    ssh,
    [
      '-N',
      '-D',
      `127.0.0.1:${socksPort}`,
      '-i',
      join(dir, 'client_key'),
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      `UserKnownHostsFile=${dir}/known_hosts`,
      '-p',
      String(sshdPort),
      `${userInfo().username}@127.0.0.1`,
    ],
    { readyWhen: { port: socksPort, host: '127.0.0.1' }, name: 'ssh -D' },
  );
  return { host: '127.0.0.1', port: socksPort };
}

interface Row {
  name: string;
  endpoint: Endpoint;
  mbps: number[];
  setup: number[];
}

const fmt = (x: number | undefined, d = 0) => (x === undefined ? '—' : x.toFixed(d));

async function main() {
  for (const tool of ['nginx', 'curl', 'openssl']) {
    if (!which(tool)) {
      console.error(`chain: needs ${tool} (sudo .ci/install-packages.sh installs everything)`);
      process.exit(1);
    }
  }
  // The origin: nginx serving a sparse file (page cache, never the disk) and /__peer.
  const root = tmpDir(undefined, 'portail-bench-www-');
  const fd = openSync(join(root, 'stream.bin'), 'w');
  ftruncateSync(fd, S.streamBytes);
  closeSync(fd);
  const nginx = await startNginx({ root, workers: 'auto' });
  const origin = { host: '127.0.0.1', port: nginx.port };
  const url = nginx.url('/stream.bin');

  const gw = await startGateway(owner, {
    acl: 'policy all { action allow }\n',
    top: 'max-connections = 10000',
  });
  const h1 = await workstation(gw.ca, gw.port, false);
  const h2 = await workstation(gw.ca, gw.port, true);
  const rows: Row[] = [
    { name: '(a) mTLS chain, HTTP/1.1 tunnel (new TLS per request)', endpoint: h1 },
    { name: '(b) mTLS chain, HTTP/2 pooled', endpoint: h2 },
  ].map((r) => ({ ...r, mbps: [], setup: [] }));
  const ssh = await sshDynamic();
  if (typeof ssh === 'string') log(`no ssh -D row: ${ssh}`);
  else rows.push({ name: '(c) ssh -D', endpoint: ssh, mbps: [], setup: [] });
  log(`origin nginx on ${origin.port}; rows: ${rows.map((r) => r.name).join(', ')}`);

  // Page-cache warm-up through the fastest path, then interleaved rounds (rotated order).
  await download(rows[1]?.endpoint as Endpoint, url, S.streamBytes);
  for (let round = 0; round < S.rounds; round++) {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[(i + round) % rows.length] as Row;
      const mbps = await download(r.endpoint, url, S.streamBytes);
      r.mbps.push(mbps);
      log(`round ${round + 1} ${r.name}: ${mbps.toFixed(0)} MB/s`);
    }
  }
  // Set-up: sequential connections, interleaved in slices of 50.
  for (const r of rows) for (let i = 0; i < S.warmup; i++) await timeFirstByte(r.endpoint, origin);
  const slice = Math.min(50, S.setups);
  for (let done = 0; done < S.setups; done += slice)
    for (const r of rows)
      for (let i = 0; i < slice; i++) r.setup.push(await timeFirstByte(r.endpoint, origin));

  const out = rows.map((r) => ({
    name: r.name,
    mbps: median(r.mbps),
    p50: percentile(r.setup, 50),
    p99: percentile(r.setup, 99),
  }));
  console.log(
    `\nChaining (${quick ? 'quick' : 'full'}: 1 stream of ${S.streamBytes / MiB} MiB, median of ${S.rounds}; ${S.setups} set-ups), Node ${process.version}\n`,
  );
  console.log('| path | 1 stream MB/s | Gbit/s | set-up p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|');
  for (const o of out)
    console.log(
      `| ${o.name} | ${fmt(o.mbps)} | ${fmt(o.mbps === undefined ? undefined : (o.mbps * 8) / 1000, 2)} | ${fmt(o.p50, 3)} | ${fmt(o.p99, 3)} |`,
    );
  const [a, b, c] = out;
  const checks: [string, boolean | undefined][] = [];
  const ge = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : x >= y);
  for (const r of [a, b]) {
    checks.push([`${r?.name.slice(0, 3)} throughput ≥ 312 MB/s (2.5 Gbit/s)`, ge(r?.mbps, 312)]);
    if (c) checks.push([`${r?.name.slice(0, 3)} throughput ≥ ssh -D`, ge(r?.mbps, c.mbps)]);
  }
  checks.push([
    'HTTP/2 pooled set-up p50 ≤ ½ of a new TLS connection per request',
    ge((a?.p50 ?? 0) / 2, b?.p50),
  ]);
  checks.push([
    'HTTP/2 stream throughput ≥ 0.8× the HTTP/1.1 tunnel',
    ge(b?.mbps, (a?.mbps ?? 0) * 0.8),
  ]);
  console.log('\nTargets:');
  for (const [k, ok] of checks)
    console.log(`  ${k}: ${ok === undefined ? 'n/a' : ok ? 'ok' : 'MISSED'}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const h of hooks.reverse()) await h();
    await stopAll();
  });
