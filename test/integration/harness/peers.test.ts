// The real peers, each proven end to end with curl on loopback: nginx serves a file
// byte-exact; microsocks and dante relay SOCKS5 (socks5h) to it; tinyproxy and squid
// forward plain HTTP and CONNECT; each proxy's outgoing side is bound to its own
// 127.0.0.x, which nginx's /__peer reports. Unhappy paths first.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Owner } from '../../harness/cleanup.js';
import {
  curl,
  freePort,
  groupAlive,
  type Nginx,
  requireTool,
  sha256File,
  sleep,
  startDante,
  startMicrosocks,
  startNginx,
  startSquid,
  startTinyproxy,
  tmpDir,
} from '../../harness/index.js';

/** nginx serving a 2 MiB random file; returns it with the file's hash. */
async function origin(t: Owner) {
  const root = tmpDir(t);
  mkdirSync(join(root, 'd'));
  const file = join(root, 'd', 'blob.bin');
  writeFileSync(file, randomBytes(2 * 1024 * 1024));
  const nginx = await startNginx({ root, t });
  return { nginx, file, hash: await sha256File(file) };
}

/** Downloads through curl `proxyArgs` and checks the bytes and the origin's view of the peer. */
async function throughProxy(
  t: Owner,
  nginx: Nginx,
  hash: string,
  proxyArgs: string[],
  expectPeer: string,
) {
  const out = join(tmpDir(t), 'out.bin');
  const r = await curl([...proxyArgs, '-o', out, '-w', '%{http_code}', nginx.url('/d/blob.bin')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '200');
  assert.equal(await sha256File(out), hash);
  const peer = await curl([...proxyArgs, nginx.url('/__peer')]);
  assert.equal(peer.code, 0, peer.stderr);
  assert.equal(peer.stdout.trim(), expectPeer);
}

async function stoppedLeavesNothing(p: { pid: number; stop(): Promise<void> }) {
  await p.stop();
  for (let i = 0; i < 100 && groupAlive(p.pid); i++) await sleep(20);
  assert.equal(groupAlive(p.pid), false, 'a worker outlived stop()');
}

describe('nginx', () => {
  test('missing file: 404; a bad root setting fails at start with nginx’s message', async (t) => {
    if (!requireTool(t, 'nginx') || !requireTool(t, 'curl')) return;
    const { nginx } = await origin(t);
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', nginx.url('/nope')]);
    assert.equal(r.stdout, '404');
    await assert.rejects(
      startNginx({ root: tmpDir(t), t, serverExtra: 'this_is_not_a_directive on;' }),
      /nginx exited[\s\S]*unknown directive "this_is_not_a_directive"/,
    );
  });

  test('serves a file byte-exact; /__peer names the client; stop() leaves nothing', async (t) => {
    if (!requireTool(t, 'nginx') || !requireTool(t, 'curl')) return;
    const { nginx, hash } = await origin(t);
    await throughProxy(t, nginx, hash, [], '127.0.0.1');
    const fromOther = await curl(['--interface', '127.0.0.9', nginx.url('/__peer')]);
    assert.equal(fromOther.stdout.trim(), '127.0.0.9');
    await stoppedLeavesNothing(nginx);
  });
});

describe('microsocks', () => {
  test('a destination with nothing listening: SOCKS failure (curl 97), not a hang', async (t) => {
    if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
    const socks = await startMicrosocks({ t });
    const dead = await freePort();
    const r = await curl([
      '--socks5-hostname',
      `127.0.0.1:${socks.port}`,
      `http://127.0.0.1:${dead}/`,
    ]);
    assert.equal(r.code, 97, r.stderr);
  });

  test('curl → microsocks → nginx, outgoing from bindOutgoing', async (t) => {
    if (!requireTool(t, 'microsocks') || !requireTool(t, 'nginx') || !requireTool(t, 'curl'))
      return;
    const { nginx, hash } = await origin(t);
    const socks = await startMicrosocks({ t, bindOutgoing: '127.0.0.11' });
    const args = ['--socks5-hostname', `127.0.0.1:${socks.port}`];
    await throughProxy(t, nginx, hash, args, '127.0.0.11');
    await stoppedLeavesNothing(socks);
  });
});

describe('dante', () => {
  test('an outgoing address that is not local: danted refuses to start, the error says why', async (t) => {
    if (!requireTool(t, 'danted')) return;
    // 192.0.2.1 (TEST-NET-1) is on no interface: nothing is ever sent there.
    await assert.rejects(
      startDante({ t, outgoingAddress: '192.0.2.1' }),
      /danted (exited|not ready)[\s\S]*192\.0\.2\.1/,
    );
  });

  test('curl → danted → nginx, outgoing from outgoingAddress; stop() kills its workers', async (t) => {
    if (!requireTool(t, 'danted') || !requireTool(t, 'nginx') || !requireTool(t, 'curl')) return;
    const { nginx, hash } = await origin(t);
    const dante = await startDante({ t, outgoingAddress: '127.0.0.12' });
    const args = ['--socks5-hostname', `127.0.0.1:${dante.port}`];
    await throughProxy(t, nginx, hash, args, '127.0.0.12');
    const dead = await freePort();
    const r = await curl([...args, `http://127.0.0.1:${dead}/`]);
    assert.equal(r.code, 97, r.stderr);
    await stoppedLeavesNothing(dante);
  });
});

describe('tinyproxy', () => {
  test('upstream refused: 5xx answer, not a hang', async (t) => {
    if (!requireTool(t, 'tinyproxy') || !requireTool(t, 'curl')) return;
    const proxy = await startTinyproxy({ t });
    const dead = await freePort();
    const r = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      `http://127.0.0.1:${dead}/`,
    ]);
    assert.match(r.stdout, /^5\d\d$/);
  });

  test('plain forward and CONNECT to nginx, outgoing from bind', async (t) => {
    if (!requireTool(t, 'tinyproxy') || !requireTool(t, 'nginx') || !requireTool(t, 'curl')) return;
    const { nginx, hash } = await origin(t);
    const proxy = await startTinyproxy({ t, bind: '127.0.0.13' });
    const x = ['-x', `http://127.0.0.1:${proxy.port}`];
    await throughProxy(t, nginx, hash, x, '127.0.0.13');
    await throughProxy(t, nginx, hash, ['--proxytunnel', ...x], '127.0.0.13');
    await stoppedLeavesNothing(proxy);
  });
});

describe('squid', () => {
  test('upstream refused: 503 from squid, CONNECT refused too', async (t) => {
    if (!requireTool(t, 'squid') || !requireTool(t, 'curl')) return;
    const proxy = await startSquid({ t });
    const dead = await freePort();
    const x = ['-x', `http://127.0.0.1:${proxy.port}`];
    const r = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      ...x,
      `http://127.0.0.1:${dead}/`,
    ]);
    assert.equal(r.stdout, '503');
    const c = await curl(['--proxytunnel', ...x, `http://127.0.0.1:${dead}/`]);
    assert.equal(c.code, 56, c.stderr); // CONNECT answered with an error status
  });

  test('plain forward and CONNECT to nginx, outgoing from outgoingAddress', async (t) => {
    if (!requireTool(t, 'squid') || !requireTool(t, 'nginx') || !requireTool(t, 'curl')) return;
    const { nginx, hash } = await origin(t);
    const proxy = await startSquid({ t, outgoingAddress: '127.0.0.14' });
    const x = ['-x', `http://127.0.0.1:${proxy.port}`];
    await throughProxy(t, nginx, hash, x, '127.0.0.14');
    await throughProxy(t, nginx, hash, ['--proxytunnel', ...x], '127.0.0.14');
    await stoppedLeavesNothing(proxy);
  });
});
