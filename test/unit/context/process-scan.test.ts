import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MAX_PROBES, ProcessScanner } from '../../../proxy/context/process-scan.js';
import { createSocketTable, type PeerAddress } from '../../../proxy/context/socket-table.js';
import { peerAddressOf } from '../../harness/sockets.js';

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

/** A fake procfs: processes whose fd/N are symlinks like the kernel's. */
function fakeProc() {
  const root = mkdtempSync(join(os.tmpdir(), 'portail-fdproc-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const fdPath = (pid: number, fd: number) => join(root, String(pid), 'fd', String(fd));
  return {
    root,
    /** `fd` of `pid` now refers to `what` (a socket inode or a file path). */
    open(pid: number, fd: number, what: number | string) {
      mkdirSync(join(root, String(pid), 'fd'), { recursive: true });
      try {
        unlinkSync(fdPath(pid, fd));
      } catch {
        // was free
      }
      symlinkSync(typeof what === 'number' ? `socket:[${what}]` : what, fdPath(pid, fd));
    },
    close(pid: number, fd: number) {
      unlinkSync(fdPath(pid, fd));
    },
    exit(pid: number) {
      rmSync(join(root, String(pid)), { recursive: true, force: true });
    },
  };
}

describe('process scan: hints order the work, only a readlink names the process', () => {
  test('a new socket at a descriptor that was free is found by a probe, without a full scan', async () => {
    const p = fakeProc();
    for (let fd = 0; fd < 500; fd++) if (fd !== 40) p.open(100, fd, `/dev/file${fd}`);
    p.open(100, 7, 1001);
    const s = new ProcessScanner(p.root, 1000);
    assert.equal(await s.holder(1001, undefined), 100);
    assert.deepEqual(s.stats, { probed: 0, scans: 1 });
    p.open(100, 40, 1002); // the hole the kernel hands out next
    assert.equal(await s.holder(1002, undefined), 100);
    // The first socket closes; the next one gets its descriptor.
    p.close(100, 7);
    p.open(100, 7, 1003);
    assert.equal(await s.holder(1003, undefined), 100);
    // A new descriptor above the highest one.
    p.open(100, 500, 1004);
    assert.equal(await s.holder(1004, undefined), 100);
    // The probes for 1004 saw 1003 still open at 7: it stays a hint, for when it closes.
    p.close(100, 7);
    p.open(100, 7, 1005);
    assert.equal(await s.holder(1005, undefined), 100);
    assert.deepEqual(s.stats, { probed: 4, scans: 1 });
  });

  test('a hint that has gone stale never names a process: the full scan finds the holder', async () => {
    const p = fakeProc();
    p.open(100, 3, 2001);
    p.open(200, 3, '/dev/null');
    const s = new ProcessScanner(p.root, 1000);
    assert.equal(await s.holder(2001, undefined), 100);
    // Process 100 closes the socket and opens something else there; 200 now holds 2001
    // (a descriptor passed on).
    p.open(100, 3, '/dev/zero');
    p.open(200, 4, 2001);
    assert.equal(await s.holder(2001, undefined), 200);
    assert.equal(s.stats.scans, 2);
    // A socket nobody holds: not found, whatever the hints say.
    assert.equal(await s.holder(2999, undefined), undefined);
  });

  test('a process that exited loses its hints; a pid reused by another process is judged by its own descriptors', async () => {
    const p = fakeProc();
    p.open(100, 3, 3001);
    const s = new ProcessScanner(p.root, 1000);
    assert.equal(await s.holder(3001, undefined), 100);
    p.exit(100);
    p.open(300, 3, 3002);
    assert.equal(await s.holder(3002, undefined), 300);
    // pid 100 comes back as another program holding other sockets at the hinted numbers.
    p.open(100, 3, 3003);
    p.open(100, 4, 3004);
    assert.equal(await s.holder(3004, undefined), 100);
    assert.equal(await s.holder(3001, undefined), undefined);
  });

  test('a socket outside every hint (more holes than probes, all still free): the full scan finds it', async () => {
    const p = fakeProc();
    // More holes than probes, all still free when the socket turns up elsewhere.
    for (let fd = 0; fd < 2 * MAX_PROBES + 100; fd += 2) p.open(100, fd, '/dev/null');
    p.open(100, 1, 4001);
    const s = new ProcessScanner(p.root, 1000);
    assert.equal(await s.holder(4001, undefined), 100);
    p.open(100, 4 * MAX_PROBES, 4002); // far above every hinted number
    const before = s.stats.scans;
    assert.equal(await s.holder(4002, undefined), 100);
    assert.equal(s.stats.scans, before + 1);
  });
});

describe('process scan on the real /proc', () => {
  test('sequential connections from one client process: one full scan, then probes', async () => {
    const served: net.Socket[] = [];
    const srv = net.createServer((sock) => {
      sock.on('error', () => {});
      served.push(sock);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => srv.close());
    const port = (srv.address() as net.AddressInfo).port;
    // This process as the client, holding a few hundred other descriptors.
    const ballast: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      ballast.push(c);
    }
    await Promise.all(ballast.map((c) => new Promise((r) => c.once('connect', r))));
    cleanups.push(() => {
      for (const c of [...ballast, ...served]) c.destroy();
    });
    // Connected is not accepted yet: the next 'connection' must be the connection under test.
    while (served.length < ballast.length) await new Promise((r) => setTimeout(r, 5));
    const table = createSocketTable();
    let fullScans = 0;
    for (let i = 0; i < 20; i++) {
      const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      const s = await accepted;
      const peer: PeerAddress = peerAddressOf(s);
      const owner = await table.owner(peer);
      assert.ok(owner, `connection ${i}: no owner`);
      const info = await table.process(owner.inode, owner.uid);
      assert.equal(info?.pid, process.pid, `connection ${i}`);
      fullScans = table.scanStats.scans;
      c.destroy();
      s.destroy();
      await new Promise((r) => c.once('close', r));
    }
    // Without hints every lookup is a full scan (20).
    assert.ok(fullScans >= 1 && fullScans <= 3, `full scans: ${fullScans}`);
  });
});
