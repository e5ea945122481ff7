// Running out of file descriptors is said loudly (the kernel and libuv drop the
// connections that cannot be accepted without a word), and a max-connections that the
// descriptor limit cannot honour is a warning (docs/security.md).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep } from '../../harness/index.js';
import { PORTAILCTL, runCli } from '../rpc/run-cli.js';
import { startPortail } from './portail.js';

async function waitOutput(p: { proc: { output(): string } }, re: RegExp, ms = 8000) {
  const deadline = Date.now() + ms;
  while (!re.test(p.proc.output())) {
    if (Date.now() > deadline) assert.fail(`no ${re} in:\n${p.proc.output().slice(-2000)}`);
    await sleep(50);
  }
}

test('out of file descriptors: an error line, then "back to normal" when they are freed', async (t) => {
  const p = await startPortail(t, { config: 'max-connections = 10000\nhandshake-timeout = 60\n' });
  const open = Number(execFileSync('sh', ['-c', `ls /proc/${p.proc.pid}/fd | wc -l`]).toString());
  const limit = open + 20;
  execFileSync('prlimit', ['--pid', String(p.proc.pid), `--nofile=${limit}:${limit}`]);
  const clients: net.Socket[] = [];
  for (let i = 0; i < 40; i++) {
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => {});
    clients.push(s);
  }
  await waitOutput(p, /out of file descriptors \(\d+ of \d+ file descriptors open\)/);
  for (const s of clients) s.destroy();
  await waitOutput(p, /file descriptors back to normal/);
});

test('a max-connections the descriptor limit cannot honour is a warning (reload)', async (t) => {
  let sock = '';
  const p = await startPortail(t, {
    config: 'watch-acl = false\nmax-connections = 100\n',
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  execFileSync('prlimit', ['--pid', String(p.proc.pid), '--nofile=1024:1024']);
  const text = readFileSync(p.configPath, 'utf8');
  writeFileSync(p.configPath, text.replace('max-connections = 100', 'max-connections = 5000'));
  const r = await runCli(PORTAILCTL, ['--socket', sock, 'reload']);
  assert.equal(r.code, 0, r.stderr);
  await waitOutput(
    p,
    /max-connections = 5000 may need ~10064 file descriptors, but the limit is 1024/,
  );
});
