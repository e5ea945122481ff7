// A reload applies every configuration key, or refuses naming the keys that need a
// restart — never "ok" with the old value silently kept (docs/configuration.md, "Reload").
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep } from '../../harness/index.js';
import { PORTAILCTL, runCli } from '../rpc/run-cli.js';
import { type Portail, startPortail } from './portail.js';

async function withControl(t: Parameters<typeof startPortail>[0], config: string) {
  let sock = '';
  const p = await startPortail(t, {
    config: `watch-acl = false\n${config}`,
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const ctl = (...args: string[]) => runCli(PORTAILCTL, ['--socket', sock, ...args]);
  return { p, ctl };
}

/** Replaces the top-level `key = value` line of the daemon's configuration. */
function setKey(p: Portail, key: string, value: string) {
  const text = readFileSync(p.configPath, 'utf8');
  const line = new RegExp(`^${key} = .*$`, 'm');
  assert.match(text, line);
  writeFileSync(p.configPath, text.replace(line, `${key} = ${value}`));
}

async function connected(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  return s;
}

/** How long the daemon keeps a silent client, at most `limitMs`. */
async function heldFor(port: number, limitMs: number): Promise<number> {
  const s = await connected(port);
  const start = Date.now();
  const closed = await Promise.race([
    new Promise<boolean>((r) => s.once('close', () => r(true))),
    sleep(limitMs).then(() => false),
  ]);
  s.destroy();
  return closed ? Date.now() - start : Number.POSITIVE_INFINITY;
}

test('reload: a new handshake-timeout applies to the next connections', async (t) => {
  const { p, ctl } = await withControl(t, 'handshake-timeout = 30\n');
  setKey(p, 'handshake-timeout', '"300ms"');
  const r = await ctl('reload');
  assert.equal(r.code, 0, r.stderr);
  const held = await heldFor(p.port, 5000);
  assert.ok(held < 2000, `a silent client was held ${held} ms after the reload to 300 ms`);
});

test('reload: a lower max-connections refuses the next connection; a higher one admits again', async (t) => {
  const { p, ctl } = await withControl(t, 'max-connections = 100\nhandshake-timeout = 30\n');
  const held = await Promise.all([0, 1, 2].map(() => connected(p.port)));
  setKey(p, 'max-connections', '3');
  assert.equal((await ctl('reload')).code, 0);
  // Over the limit: answered in its own protocol (SOCKS5 general failure) and closed.
  const s = await connected(p.port);
  s.write(Buffer.from([5, 1, 0]));
  const answer = await new Promise<Buffer>((r) => s.once('data', r));
  assert.deepEqual([...answer.subarray(0, 4)], [5, 0, 5, 1]);
  assert.match(p.proc.output(), /max-connections \(3\) reached: refused/);
  setKey(p, 'max-connections', '10');
  assert.equal((await ctl('reload')).code, 0);
  const admitted = await connected(p.port);
  admitted.write(Buffer.from([5, 1, 0]));
  const greeting = await new Promise<Buffer>((r) => admitted.once('data', r));
  assert.deepEqual([...greeting], [5, 0]);
  for (const c of [...held, s, admitted]) c.destroy();
});

test('reload: changing [log] audit is refused, naming the key; nothing changes', async (t) => {
  const { p, ctl } = await withControl(t, '');
  const text = readFileSync(p.configPath, 'utf8');
  writeFileSync(p.configPath, text.replace(/audit = "file:[^"]*"/, 'audit = "stdout"'));
  const r = await ctl('reload');
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /a reload cannot apply \[log\] audit \(file:.* -> stdout\); restart portail/,
  );
  const status = JSON.parse((await ctl('status', '--json')).stdout);
  assert.equal(status.last_reload.ok, false);
  // Still writing to the file.
  await p.waitRecord((x) => x.event === 'reload' && x.result === 'failed');
});

test('reload: [log] level applies at once', async (t) => {
  const { p, ctl } = await withControl(t, '');
  const text = readFileSync(p.configPath, 'utf8');
  writeFileSync(p.configPath, text.replace('[log]\n', '[log]\nlevel = "error"\n'));
  assert.equal((await ctl('reload')).code, 0);
  // The reload's own "reloaded" line is an info: no longer written.
  const before = p.proc.output().length;
  assert.equal((await ctl('reload')).code, 0);
  await sleep(100);
  assert.doesNotMatch(p.proc.output().slice(before), /reloaded/);
});
