import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  createSocketTable,
  isLoopback,
  type PeerAddress,
} from '../../../proxy/context/socket-table.js';

const cleanups: (() => void | Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A listener on `host`; returns the server side of the next accepted connection as a PeerAddress. */
async function listener(host: string) {
  const srv = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => srv.listen(0, host, r));
  cleanups.push(() => {
    srv.close();
  });
  return {
    port: (srv.address() as net.AddressInfo).port,
    next: () =>
      new Promise<PeerAddress>((resolve) =>
        srv.once('connection', (s: net.Socket) => {
          cleanups.push(() => {
            s.destroy();
          });
          resolve({
            ip: s.remoteAddress as string,
            port: s.remotePort as number,
            localIp: s.localAddress as string,
            localPort: s.localPort as number,
          });
        }),
      ),
  };
}

async function ownConnection(listenHost: string, connectHost: string) {
  const l = await listener(listenHost);
  const accepted = l.next();
  const client = net.connect({ host: connectHost, port: l.port });
  client.on('error', () => {});
  cleanups.push(() => {
    client.destroy();
  });
  return accepted;
}

const myExe = realpathSync(process.execPath);

describe('isLoopback', () => {
  test('127/8, ::1 and the mapped spelling; nothing else', () => {
    for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'])
      assert.ok(isLoopback(ip), ip);
    for (const ip of ['10.0.0.1', '::', '::ffff:10.0.0.1', 'fe80::1', 'localhost', ''])
      assert.ok(!isLoopback(ip), ip);
  });
});

describe('socket table', () => {
  const table = createSocketTable();

  test('a socket of this process: our uid, our pid, our exe', async () => {
    for (const [listenHost, connectHost] of [
      ['127.0.0.1', '127.0.0.1'],
      ['::1', '::1'],
      ['::', '127.0.0.1'], // dual-stack listener: the peer shows as ::ffff:127.0.0.1
    ]) {
      const peer = await ownConnection(listenHost, connectHost);
      const owner = await table.owner(peer);
      assert.ok(owner, `no owner for ${JSON.stringify(peer)}`);
      assert.equal(owner.uid, process.getuid?.());
      const p = await table.process(owner.inode, owner.uid);
      assert.ok(p, 'no process');
      assert.equal(p.pid, process.pid);
      assert.equal(p.exe, myExe);
      assert.equal(typeof p.name, 'string');
      assert.ok(p.name && p.name.length > 0 && p.name.length <= 15);
    }
  });

  test('a client in another process is attributed to that process', async () => {
    const l = await listener('127.0.0.1');
    const accepted = l.next();
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('net').connect(${l.port},'127.0.0.1').on('error',()=>{});setTimeout(()=>{},30000)`,
      ],
      { stdio: 'ignore' },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    const peer = await accepted;
    const owner = await table.owner(peer);
    assert.ok(owner);
    const p = await table.process(owner.inode, owner.uid);
    assert.equal(p?.pid, child.pid);
    assert.equal(p?.exe, myExe);
  });

  test('a client running as another user: its uid and user name', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to run a client as another uid');
    const nobody = 65534;
    const l = await listener('127.0.0.1');
    const accepted = l.next();
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('net').connect(${l.port},'127.0.0.1').on('error',()=>{});setTimeout(()=>{},30000)`,
      ],
      { stdio: 'ignore', uid: nobody, gid: nobody },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    const peer = await accepted;
    const owner = await table.owner(peer);
    assert.equal(owner?.uid, nobody);
    assert.equal(await table.userName(nobody), 'nobody');
    const p = await table.process(owner?.inode ?? 0, owner?.uid);
    assert.equal(p?.pid, child.pid);
  });

  test('concurrent lookups (shared table passes) each find their own socket', async () => {
    const l = await listener('127.0.0.1');
    const peers: Promise<PeerAddress>[] = [];
    for (let i = 0; i < 20; i++) {
      peers.push(l.next());
      const c = net.connect(l.port, '127.0.0.1');
      c.on('error', () => {});
      cleanups.push(() => {
        c.destroy();
      });
      await new Promise((r) => c.once('connect', r));
      await peers[i];
    }
    const all = await Promise.all(peers);
    const owners = await Promise.all(all.map((p) => table.owner(p)));
    for (const o of owners) assert.equal(o?.uid, process.getuid?.());
    assert.equal(new Set(owners.map((o) => o?.inode)).size, all.length);
  });

  test('non-loopback peers are never looked up', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    assert.equal(await table.owner({ ...peer, ip: '192.0.2.1' }), undefined);
  });

  test('no such connection → undefined', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    // Wrong peer port, wrong local port.
    assert.equal(await table.owner({ ...peer, port: peer.port === 1 ? 2 : 1 }), undefined);
    assert.equal(
      await table.owner({ ...peer, localPort: peer.localPort === 1 ? 2 : 1 }),
      undefined,
    );
    assert.equal(await table.process(0x7ffffff0, 0), undefined);
  });

  test('an unreadable /proc or passwd file: undefined, never a throw', async () => {
    const broken = createSocketTable({ procRoot: '/nonexistent', passwdFile: '/nonexistent' });
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    assert.equal(await broken.owner(peer), undefined);
    assert.equal(await broken.process(1, 0), undefined);
    assert.equal(await broken.userName(4_000_000_000), undefined);
    assert.equal(
      await broken.owner({ ip: 'garbage', port: -1, localIp: 'x', localPort: 0 }),
      undefined,
    );
  });

  test('user names come from the passwd file', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'portail-passwd-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'passwd');
    writeFileSync(file, '# comment\nalice:x:4000123:4000123::/home/alice:/bin/sh\nbroken line\n');
    const t2 = createSocketTable({ passwdFile: file });
    assert.equal(await t2.userName(4000123), 'alice');
    assert.equal(await t2.userName(4000124), undefined);
    assert.equal(await table.userName(0), 'root');
  });
});
