import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import {
  addonSockDiag,
  createSocketTable,
  isLoopback,
  type PeerAddress,
  type SockDiagLookup,
} from '../../../proxy/context/socket-table.js';
import { addon } from '../../../systemd/addon.js';
import { peerAddressOf } from '../../harness/sockets.js';

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
    server: srv,
    port: (srv.address() as net.AddressInfo).port,
    next: () =>
      new Promise<PeerAddress>((resolve) =>
        srv.once('connection', (s: net.Socket) => {
          cleanups.push(() => {
            s.destroy();
          });
          resolve(peerAddressOf(s));
        }),
      ),
  };
}

/**
 * A loopback client in a child Node process (as user `uid` when given: root only),
 * connected to a fresh listener; its peer address as the server sees it.
 */
async function clientInChild(uid?: number) {
  const l = await listener('127.0.0.1');
  const accepted = l.next();
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('net').connect(${l.port},'127.0.0.1').on('error',()=>{});setTimeout(()=>{},30000)`,
    ],
    { stdio: 'ignore', ...(uid === undefined ? {} : { uid, gid: uid }) },
  );
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return { child, peer: await accepted };
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

for (const [source, options] of [
  ['sock_diag', {}],
  ['/proc only', { sockDiag: false }],
] as const) {
  describe(`socket table (${source})`, () => {
    const table = createSocketTable(options);

    test('a socket of this process: our uid, our pid, our exe', async () => {
      for (const [listenHost, connectHost] of [
        ['127.0.0.1', '127.0.0.1'],
        ['::1', '::1'],
        ['::', '127.0.0.1'], // dual-stack listener: the peer shows as ::ffff:127.0.0.1
        ['127.0.0.1', '::ffff:127.0.0.1'], // an AF_INET6 client socket talking IPv4
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
      const { child, peer } = await clientInChild();
      const owner = await table.owner(peer);
      assert.ok(owner);
      const p = await table.process(owner.inode, owner.uid);
      assert.equal(p?.pid, child.pid);
      assert.equal(p?.exe, myExe);
    });

    test('a client running as another user: its uid and user name', async (t) => {
      // Deliberate: only root can start a process under another uid. CI runs as root
      // (where a skip fails the run), so this is skipped on developers' accounts only.
      if (process.getuid?.() !== 0) return t.skip('needs root to run a client as another uid');
      const nobody = 65534;
      const { child, peer } = await clientInChild(nobody);
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
      const broken = createSocketTable({
        ...options,
        procRoot: '/nonexistent',
        passwdFile: '/nonexistent',
      });
      const peer = await ownConnection('127.0.0.1', '127.0.0.1');
      // Netlink does not need /proc for the owner; the process scan does.
      if (source === '/proc only') assert.equal(await broken.owner(peer), undefined);
      else assert.equal((await broken.owner(peer))?.uid, process.getuid?.());
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
      const t2 = createSocketTable({ ...options, passwdFile: file });
      assert.equal(await t2.userName(4000123), 'alice');
      assert.equal(await t2.userName(4000124), undefined);
      assert.equal(await table.userName(0), 'root');
    });
  });
}

describe('sockDiagOwner (the addon, NETLINK_SOCK_DIAG)', () => {
  const procTable = createSocketTable({ sockDiag: false });
  const ask = (p: PeerAddress, reuse?: boolean) =>
    addon().sockDiagOwner(p.ip, p.port, p.localIp, p.localPort, 100, reuse);

  test('IPv4, IPv6, IPv4-mapped: our uid and the inode /proc/net/tcp shows', async () => {
    for (const [listenHost, connectHost] of [
      ['127.0.0.1', '127.0.0.1'],
      ['::1', '::1'],
      ['::', '127.0.0.1'],
      ['127.0.0.1', '::ffff:127.0.0.1'],
      ['127.0.0.2', '127.0.0.2'], // any 127/8 address
    ]) {
      const peer = await ownConnection(listenHost, connectHost);
      const fromProc = await procTable.owner(peer);
      assert.ok(fromProc, `/proc has no ${JSON.stringify(peer)}`);
      for (const reuse of [true, false]) {
        const found = ask(peer, reuse);
        assert.deepEqual(found, { uid: process.getuid?.(), inode: fromProc.inode });
      }
    }
  });

  test('the client end, not our accepted end of the same connection', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    const client = ask(peer);
    const ours = ask({
      ip: peer.localIp,
      port: peer.localPort,
      localIp: peer.ip,
      localPort: peer.port,
    });
    assert.ok(client && ours);
    assert.notEqual(client.inode, ours.inode);
    const p = await procTable.process(client.inode, client.uid);
    assert.equal(p?.pid, process.pid);
  });

  test('a client running as another user (65534)', async (t) => {
    // Deliberate: see the same test above (root only; CI runs as root).
    if (process.getuid?.() !== 0) return t.skip('needs root to run a client as another uid');
    const { peer } = await clientInChild(65534);
    assert.equal(ask(peer)?.uid, 65534);
    assert.equal((await procTable.owner(peer))?.uid, 65534);
  });

  test('unknown 4-tuples, listeners and TIME_WAIT sockets: null', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    assert.equal(ask({ ...peer, port: peer.port === 1 ? 2 : 1 }), null);
    assert.equal(ask({ ...peer, localPort: peer.localPort === 1 ? 2 : 1 }), null);
    assert.equal(ask({ ...peer, ip: '127.0.0.9' }), null);
    assert.equal(ask({ ...peer, ip: '::1', localIp: '::1' }), null);
    // The kernel's exact lookup falls back to a listener on the asked-for local port:
    // a client whose port is gone must not be attributed to whoever listens there.
    const l = await listener('127.0.0.1');
    assert.equal(ask({ ip: '127.0.0.1', port: l.port, localIp: '127.0.0.1', localPort: 1 }), null);
    const wild = await listener('::');
    assert.equal(ask({ ip: '::1', port: wild.port, localIp: '::1', localPort: 1 }), null);

    // The client closes first: its end lingers in TIME_WAIT, owned by nobody.
    const l2 = await listener('127.0.0.1');
    const accepted = new Promise<net.Socket>((r) => l2.server.once('connection', r));
    const c = net.connect(l2.port, '127.0.0.1');
    const s = await accepted;
    const p: PeerAddress = peerAddressOf(s);
    assert.ok(ask(p));
    c.end();
    await new Promise((r) => s.once('end', r));
    s.end();
    await new Promise((r) => c.once('close', r));
    assert.equal(ask(p), null);
    assert.equal(await procTable.owner(p), undefined);
  });

  test('bad arguments throw before any system call', () => {
    const a = addon();
    assert.throws(() => a.sockDiagOwner('x', 1, '127.0.0.1', 2), RangeError);
    assert.throws(() => a.sockDiagOwner('fe80::1%eth0', 1, '::1', 2), RangeError);
    assert.throws(() => a.sockDiagOwner('127.0.0.1', 65536, '127.0.0.1', 2), RangeError);
    assert.throws(() => a.sockDiagOwner('127.0.0.1', 1.5, '127.0.0.1', 2), RangeError);
    assert.throws(() => a.sockDiagOwner('127.0.0.1', 1, '127.0.0.1', 2, -1), RangeError);
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed
    const untyped = a as any;
    assert.throws(() => untyped.sockDiagOwner(1, 1, '127.0.0.1', 2), TypeError);
    assert.throws(() => untyped.sockDiagOwner('127.0.0.1', '1', '127.0.0.1', 2), TypeError);
    assert.throws(() => untyped.sockDiagOwner('127.0.0.1', 1, '127.0.0.1'), TypeError);
  });

  test('10,000 lookups in well under a second (no /proc walk)', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) assert.ok(ask(peer));
    const took = performance.now() - t0;
    assert.ok(took < 1000, `10,000 lookups took ${took.toFixed(0)} ms`);
  });
});

describe('socket table: netlink first, /proc as the fallback', () => {
  /** A fake procfs whose net/tcp holds one line for `peer`, owned by `uid`. */
  function fakeProc(peer: PeerAddress, uid: number, inode: number): string {
    const dir = mkdtempSync(join(os.tmpdir(), 'portail-proc-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'net'));
    const hex = (ip: string, port: number) => {
      const b = ip.split('.').map(Number);
      const word = os.endianness() === 'LE' ? b.reverse() : b;
      return `${word
        .map((x) => x.toString(16).padStart(2, '0'))
        .join('')
        .toUpperCase()}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
    };
    writeFileSync(
      join(dir, 'net', 'tcp'),
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n' +
        `   0: ${hex(peer.ip, peer.port)} ${hex(peer.localIp, peer.localPort)} 01 00000000:00000000 00:00000000 00000000 ${uid}        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`,
    );
    writeFileSync(join(dir, 'net', 'tcp6'), '');
    return dir;
  }
  const nowhere: PeerAddress = { ip: '127.0.0.1', port: 1, localIp: '127.0.0.1', localPort: 2 };

  test('the default asks the kernel: found with no /proc at all', async () => {
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    const t = createSocketTable({ procRoot: '/nonexistent' });
    assert.equal((await t.owner(peer))?.uid, process.getuid?.());
  });

  test('netlink unavailable for good (no addon, no protocol): /proc, and netlink is not asked again', async () => {
    for (const error of [
      new Error('addon not built'),
      Object.assign(new Error('socket EPROTONOSUPPORT'), { code: 'EPROTONOSUPPORT' }),
      Object.assign(new Error('socket EACCES'), { code: 'EACCES' }),
    ]) {
      let calls = 0;
      const failing: SockDiagLookup = () => {
        calls++;
        throw error;
      };
      const t = createSocketTable({ sockDiag: failing });
      for (let i = 0; i < 3; i++) {
        const peer = await ownConnection('127.0.0.1', '127.0.0.1');
        assert.equal((await t.owner(peer))?.uid, process.getuid?.(), error.message);
      }
      assert.equal(calls, 1, error.message);
    }
  });

  test('a passing failure (timeout): /proc for that lookup, netlink again for the next', async () => {
    let calls = 0;
    const flaky: SockDiagLookup = (p) => {
      if (calls++ === 0) throw Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
      return addonSockDiag(p);
    };
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    const t = createSocketTable({ sockDiag: flaky, procRoot: fakeProc(peer, 4242, 77) });
    assert.deepEqual(await t.owner(peer), { uid: 4242, inode: 77 }); // from the fake /proc
    assert.equal((await t.owner(peer))?.uid, process.getuid?.()); // from the kernel
    assert.equal(calls, 2);
  });

  test('until netlink has found a socket, its misses are checked in /proc', async () => {
    let calls = 0;
    const blind: SockDiagLookup = () => {
      calls++;
      return null; // what a kernel without inet_diag for TCP answers (ENOENT)
    };
    const peer = await ownConnection('127.0.0.1', '127.0.0.1');
    const t = createSocketTable({ sockDiag: blind, procRoot: fakeProc(peer, 4242, 77) });
    assert.equal(await t.owner(nowhere), undefined); // neither knows it: stays untested
    assert.deepEqual(await t.owner(peer), { uid: 4242, inode: 77 }); // /proc knows better
    assert.deepEqual(await t.owner(peer), { uid: 4242, inode: 77 });
    assert.equal(calls, 2, 'netlink is not asked once /proc has contradicted it');
  });

  test('once netlink has found a socket, its misses are final', async () => {
    const mine = await ownConnection('127.0.0.1', '127.0.0.1');
    const procRoot = fakeProc(nowhere, 4242, 77);
    // Untested, a miss is looked up in /proc (which here claims the socket exists)...
    assert.deepEqual(await createSocketTable({ procRoot }).owner(nowhere), {
      uid: 4242,
      inode: 77,
    });
    // ...but not after netlink has proven itself.
    const t = createSocketTable({ procRoot });
    assert.equal((await t.owner(mine))?.uid, process.getuid?.());
    assert.equal(await t.owner(nowhere), undefined);
  });
});
