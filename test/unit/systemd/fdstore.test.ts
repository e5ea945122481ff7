// The fd store as the daemon uses it, against a fake NOTIFY_SOCKET: what is sent when
// storing, what is recovered (and closed, and removed) on start, and a real TCP
// connection detached from one owner and adopted by another without losing a byte.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import {
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { closeQuietly } from '../../../systemd/activation.js';
import {
  adoptSocket,
  detachSockets,
  METADATA_FILE,
  recoverConnections,
  socketFd,
  storeConnections,
  storeListeners,
} from '../../../systemd/fdstore.js';
import { dupFd, type FakeSocket, fakeSocket, udpFd } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'portail-fdstore-'));
after(() => rmSync(root, { recursive: true, force: true }));
let sock: FakeSocket;
let dir: string;
let n = 0;
beforeEach(() => {
  sock = fakeSocket();
  process.env.NOTIFY_SOCKET = sock.path;
  dir = join(root, String(n++));
  mkdirSync(dir, { recursive: true });
});
afterEach(() => {
  delete process.env.NOTIFY_SOCKET;
  sock.close();
});

const isOpen = (fd: number) => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

async function tcpPair(server: net.Server) {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  return { client, conn: await accepted };
}

describe('storeListeners', () => {
  test('replaces what is stored under the name', () => {
    const fd = openSync(new URL(import.meta.url).pathname, 'r');
    try {
      assert.equal(storeListeners('proxy', [fd]), true);
      const kept: number[][] = [];
      assert.deepEqual(sock.drainText(kept), [
        'FDSTOREREMOVE=1\nFDNAME=proxy\n',
        'FDSTORE=1\nFDNAME=proxy\n',
      ]);
      assert.deepEqual(
        kept.map((f) => f.length),
        [0, 1],
      );
      for (const f of kept.flat()) closeQuietly(f);
    } finally {
      closeQuietly(fd);
    }
  });
});

describe('storeConnections', () => {
  test('refuses bad entries before storing anything', () => {
    const bad = [
      [{ name: 'a b', fds: [0], meta: {} }],
      [{ name: 'x'.repeat(201), fds: [0], meta: {} }],
      [{ name: 'a', fds: [], meta: {} }],
      [
        { name: 'a', fds: [0], meta: {} },
        { name: 'a', fds: [1], meta: {} },
      ],
    ];
    for (const entries of bad) assert.throws(() => storeConnections(entries, { dir }), TypeError);
    assert.equal(sock.recv(0), null);
    assert.equal(existsSync(join(dir, METADATA_FILE)), false);
  });

  test('outside systemd nothing is stored; without a runtime directory it is an error', () => {
    delete process.env.NOTIFY_SOCKET;
    assert.equal(storeConnections([{ name: 'a', fds: [0], meta: {} }], { dir }), false);
    assert.equal(existsSync(join(dir, METADATA_FILE)), false);
    process.env.NOTIFY_SOCKET = sock.path;
    const saved = process.env.RUNTIME_DIRECTORY;
    delete process.env.RUNTIME_DIRECTORY;
    assert.throws(
      () => storeConnections([{ name: 'a', fds: [0], meta: {} }]),
      /no runtime directory/,
    );
    if (saved !== undefined) process.env.RUNTIME_DIRECTORY = saved;
  });

  test('writes the metadata, one fd per FDNAME, then a barrier (false when unconfirmed)', () => {
    const fd = openSync(new URL(import.meta.url).pathname, 'r');
    try {
      const ok = storeConnections(
        [
          { name: 't-1', fds: [fd, fd], meta: { unread: 'YWJj', n: 1 } },
          { name: 't-2', fds: [fd], meta: {} },
        ],
        { dir, barrierTimeoutMs: 50 },
      );
      assert.equal(ok, false, 'nobody confirmed the barrier');
      const kept: number[][] = [];
      assert.deepEqual(sock.drainText(kept), [
        'FDSTORE=1\nFDNAME=conn.t-1.0\n',
        'FDSTORE=1\nFDNAME=conn.t-1.1\n',
        'FDSTORE=1\nFDNAME=conn.t-2.0\n',
        'BARRIER=1',
      ]);
      assert.deepEqual(
        kept.map((f) => f.length),
        [1, 1, 1, 1],
      );
      for (const f of kept.flat()) closeQuietly(f);
      const file = JSON.parse(readFileSync(join(dir, METADATA_FILE), 'utf8'));
      assert.equal(file.version, 1);
      assert.equal(file.pid, process.pid);
      assert.deepEqual(file.entries, [
        { name: 't-1', fdCount: 2, meta: { unread: 'YWJj', n: 1 } },
        { name: 't-2', fdCount: 1, meta: {} },
      ]);
    } finally {
      closeQuietly(fd);
    }
  });

  test('returns true once systemd (here: the test) processed the messages', async () => {
    const fdstore = new URL('../../../systemd/fdstore.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { storeConnections } = await import(${JSON.stringify(fdstore)});
         console.log(storeConnections([{ name: 'c', fds: [0], meta: {} }]));`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, RUNTIME_DIRECTORY: dir } },
    );
    let out = '';
    child.stdout?.on('data', (c) => {
      out += c;
    });
    try {
      const seen: string[] = [];
      while (!seen.includes('BARRIER=1')) {
        const d = sock.recv(5000);
        assert.ok(d, `received ${seen.join(', ')}`);
        seen.push(d.data.toString());
        for (const f of d.fds) closeQuietly(f);
      }
      assert.deepEqual(seen, ['FDSTORE=1\nFDNAME=conn.c.0\n', 'BARRIER=1']);
      await new Promise((r) => child.once('exit', r));
      assert.equal(out.trim(), 'true');
    } finally {
      child.kill();
    }
  });
});

describe('recoverConnections', () => {
  test('returns matched connections, closes and removes everything else', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const pairs = [await tcpPair(server), await tcpPair(server), await tcpPair(server)];
    // Raw copies of the accepted sides, owned by no Node handle, as a new process gets them.
    const [a0, a1, b0] = pairs.map((p) => dupFd(socketFd(p.conn)));
    for (const p of pairs) p.conn.destroy();
    const c0 = dupFd(udpFd(udp));
    const listener = dupFd(socketFd(server));
    writeFileSync(
      join(dir, METADATA_FILE),
      JSON.stringify({
        version: 1,
        pid: 1,
        storedAt: '',
        entries: [
          { name: 'a', fdCount: 2, meta: { unread: ['', 'eA=='] } },
          { name: 'c', fdCount: 1, meta: {} },
          { name: 'd', fdCount: 1, meta: {} },
        ],
      }),
    );
    const listened = new Map([
      ['proxy', [listener]],
      ['conn.a.0', [a0]],
      ['conn.a.1', [a1]],
      ['conn.b.0', [b0]],
      ['conn.c.0', [c0]],
    ]);
    const stale: string[] = [];
    try {
      const got = recoverConnections(listened, {
        dir,
        onStale: (name, why) => stale.push(`${name}: ${why}`),
      });
      assert.deepEqual(got, [{ name: 'a', fds: [a0, a1], meta: { unread: ['', 'eA=='] } }]);
      assert.deepEqual([...listened], [['proxy', [listener]]]);
      assert.deepEqual(stale.sort(), ['c: not a connected stream socket', 'conn.b.0: no metadata']);
      assert.equal(isOpen(b0), false);
      assert.equal(isOpen(c0), false);
      assert.equal(existsSync(join(dir, METADATA_FILE)), false);
      assert.deepEqual(sock.drainText().sort(), [
        'FDSTOREREMOVE=1\nFDNAME=conn.a.0\n',
        'FDSTOREREMOVE=1\nFDNAME=conn.a.1\n',
        'FDSTOREREMOVE=1\nFDNAME=conn.b.0\n',
        'FDSTOREREMOVE=1\nFDNAME=conn.c.0\n',
      ]);
      // The recovered descriptors are the live connections.
      const adopted = adoptSocket(a0);
      const received = new Promise<string>((r) =>
        pairs[0].client.once('data', (c) => r(String(c))),
      );
      adopted.write('still here');
      assert.equal(await received, 'still here');
      adopted.destroy();
      closeQuietly(a1);
    } finally {
      for (const p of pairs) p.client.destroy();
      closeQuietly(listener);
      server.close();
      udp.close();
    }
  });

  test('without metadata every stored connection is closed', () => {
    const fd = openSync(new URL(import.meta.url).pathname, 'r');
    const listened = new Map([['conn.x.0', [fd]]]);
    assert.deepEqual(recoverConnections(listened, { dir }), []);
    assert.equal(listened.size, 0);
    assert.equal(isOpen(fd), false);
    assert.deepEqual(sock.drainText(), ['FDSTOREREMOVE=1\nFDNAME=conn.x.0\n']);
  });
});

describe('detachSockets and adoptSocket', () => {
  test('a connection changes owner without a lost, duplicated or reordered byte', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { client, conn } = await tcpPair(server);
    let clientGot = Buffer.alloc(0);
    let clientEnded = false;
    client.on('data', (c) => {
      clientGot = Buffer.concat([clientGot, c]);
    });
    client.on('end', () => {
      clientEnded = true;
    });
    try {
      // Bytes read by the old owner but not consumed, and a large write in flight.
      conn.pause();
      client.write('abc');
      while (conn.readableLength < 3) await new Promise((r) => setTimeout(r, 2));
      const big = Buffer.alloc(512 * 1024, 'z');
      conn.write(big);
      let oldOwnerSawClose = false;
      conn.on('close', () => {
        oldOwnerSawClose = true;
      });
      const [d] = await detachSockets([conn]);
      assert.equal(d.unread.toString(), 'abc');
      assert.equal(conn.writableLength, 0);
      // Another owner gets the descriptor; the old one closes its copy (no FIN: still shared).
      const fd = dupFd(d.fd);
      conn.destroy();
      await new Promise((r) => conn.once('close', r));
      assert.equal(oldOwnerSawClose, false, "the previous owner's listeners are gone");
      client.write('def');
      const next = adoptSocket(fd);
      let nextGot = '';
      next.on('data', (c) => {
        nextGot += c;
      });
      next.write(d.unread);
      while (clientGot.length < big.length + 3 || nextGot.length < 3)
        await new Promise((r) => setTimeout(r, 5));
      assert.ok(clientGot.equals(Buffer.concat([big, Buffer.from('abc')])));
      assert.equal(nextGot, 'def');
      assert.equal(clientEnded, false);
      next.end();
      await new Promise((r) => client.once('end', r));
      next.destroy();
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });

  test('gives up when a peer does not read what is pending', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { client, conn } = await tcpPair(server);
    try {
      client.pause();
      conn.write(Buffer.alloc(32 * 1024 * 1024));
      await assert.rejects(detachSockets([conn], 100), /not flushed in time/);
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });

  test('a socket without a descriptor cannot be detached or stored', async () => {
    const s = new net.Socket();
    assert.throws(() => socketFd(s), /no file descriptor/);
    await assert.rejects(detachSockets([s]), /no file descriptor/);
    assert.throws(() => adoptSocket(0xfffff), /not a usable socket/);
  });
});
