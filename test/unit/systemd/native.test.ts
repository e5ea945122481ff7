// The native addon against real sockets: datagrams with passed fds (the sd_notify
// primitive), sealed memfds, the notify barrier, SO_PEERCRED and socket introspection.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { closeQuietly } from '../../../systemd/activation.js';
import { addon } from '../../../systemd/addon.js';
import { socketFd } from '../../../systemd/fdstore.js';
import { fakeSocket, isCloexec, udpFd } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'portail-native-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const thisFile = new URL(import.meta.url).pathname;
const once = <T>(emitter: NodeJS.EventEmitter, event: string) =>
  new Promise<T>((resolve) => emitter.once(event, resolve as (v: unknown) => void));

describe('sendDatagram / sdNotify', () => {
  test('refuses bad arguments before any system call', () => {
    const a = addon();
    assert.throws(() => a.sdNotify(42 as unknown as string, 'READY=1'), TypeError);
    assert.throws(() => a.sdNotify('/x', 42 as unknown as string), TypeError);
    assert.throws(() => a.sdNotify('', 'READY=1'), RangeError);
    assert.throws(() => a.sdNotify(`/${'x'.repeat(200)}`, 'READY=1'), RangeError);
    assert.throws(() => a.sdNotify('/x', 'READY=1', [-1]), RangeError);
    assert.throws(() => a.sdNotify('/x', 'READY=1', [1.5]), RangeError);
    assert.throws(() => a.sdNotify('/x', 'READY=1', 'nope' as unknown as number[]), TypeError);
    assert.throws(() => a.sdNotify('/x', 'READY=1', new Array(254).fill(0)), RangeError);
  });

  test('reports system errors with code, errno and syscall', () => {
    assert.throws(() => addon().sdNotify(join(dir, 'missing'), 'READY=1'), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'sendmsg',
    });
    // A socket file whose owner is gone: connection refused, not a silent loss.
    const s = fakeSocket();
    closeSync(s.fd);
    assert.throws(() => addon().sdNotify(s.path, 'READY=1'), { code: 'ECONNREFUSED' });
    s.close();
  });

  test('an invalid fd in SCM_RIGHTS is EBADF', () => {
    const s = fakeSocket();
    try {
      assert.throws(() => addon().sdNotify(s.path, 'FDSTORE=1', [987654]), { code: 'EBADF' });
      assert.equal(s.recv(0), null);
    } finally {
      s.close();
    }
  });

  test('delivers the message with our credentials to a path socket', () => {
    const s = fakeSocket();
    try {
      addon().sdNotify(s.path, 'READY=1\nSTATUS=up\n');
      const d = s.recv(1000);
      assert.ok(d);
      assert.equal(d.data.toString(), 'READY=1\nSTATUS=up\n');
      assert.deepEqual(d.fds, []);
      assert.equal(d.pid, process.pid);
      assert.equal(d.uid, process.getuid?.());
      assert.equal(d.truncated, false);
    } finally {
      s.close();
    }
  });

  test('reaches an abstract socket ("@name")', () => {
    const name = `@portail-test-${process.pid}-${Date.now()}`;
    const fd = addon().bindDatagram(name);
    try {
      addon().sendDatagram(name, Buffer.from([0, 1, 2, 255]));
      const d = addon().recvDatagram(fd, 1000);
      assert.deepEqual(d?.data, Buffer.from([0, 1, 2, 255]));
    } finally {
      closeSync(fd);
    }
  });

  test('passes file descriptors that the receiver can use', async () => {
    const s = fakeSocket();
    const file = join(dir, 'passed.txt');
    writeFileSync(file, 'through SCM_RIGHTS');
    const fd = openSync(file, 'r');
    try {
      addon().sdNotify(s.path, 'FDSTORE=1\nFDNAME=x\n', [fd, fd]);
      const d = s.recv(1000);
      assert.ok(d);
      assert.equal(d.fds.length, 2);
      for (const got of d.fds) {
        assert.notEqual(got, fd);
        assert.equal(fstatSync(got).ino, fstatSync(fd).ino);
        assert.equal(await isCloexec(got), true);
      }
      const buf = Buffer.alloc(64);
      const n = readSync(d.fds[0], buf, 0, 64, 0);
      assert.equal(buf.subarray(0, n).toString(), 'through SCM_RIGHTS');
      for (const got of d.fds) closeSync(got);
    } finally {
      closeSync(fd);
      s.close();
    }
  });

  test('never blocks with timeout 0, and gives up after the timeout when the receiver is full', () => {
    const s = fakeSocket();
    try {
      let sent = 0;
      assert.throws(
        () => {
          for (; sent < 100_000; sent++) addon().sendDatagram(s.path, 'x'.repeat(1000), [], 0);
        },
        { code: 'EAGAIN' },
      );
      assert.ok(sent > 0);
      const t0 = Date.now();
      assert.throws(() => addon().sendDatagram(s.path, 'x', [], 150), { code: 'EAGAIN' });
      const waited = Date.now() - t0;
      assert.ok(waited >= 100 && waited < 2000, `waited ${waited} ms`);
    } finally {
      s.close();
    }
  });
});

describe('sendMemfd', () => {
  test('ships the data in a sealed memfd alone in an empty datagram', () => {
    const s = fakeSocket();
    try {
      const data = Buffer.alloc(3 * 1024 * 1024, 'j');
      addon().sendMemfd(s.path, data);
      const d = s.recv(1000);
      assert.ok(d);
      assert.equal(d.data.length, 0);
      assert.equal(d.fds.length, 1);
      const buf = Buffer.alloc(data.length + 1);
      assert.equal(readSync(d.fds[0], buf, 0, buf.length, 0), data.length);
      assert.ok(buf.subarray(0, data.length).equals(data));
      // Sealed: journald may trust that nobody changes it under its feet.
      assert.throws(() => writeSync(d.fds[0], 'x', 0), { code: 'EPERM' });
      closeSync(d.fds[0]);
    } finally {
      s.close();
    }
  });

  test('fails like a datagram when nobody listens', () => {
    assert.throws(() => addon().sendMemfd(join(dir, 'none'), 'x'), { code: 'ENOENT' });
  });
});

describe('notifyBarrier', () => {
  test('times out when the receiver never processes the message', () => {
    const s = fakeSocket();
    try {
      const t0 = Date.now();
      assert.equal(addon().notifyBarrier(s.path, 100), false);
      assert.ok(Date.now() - t0 >= 90);
      const d = s.recv(0);
      assert.equal(d?.data.toString(), 'BARRIER=1');
      assert.equal(d?.fds.length, 1);
      for (const f of d?.fds ?? []) closeSync(f);
    } finally {
      s.close();
    }
  });

  test('returns true once the receiver closed the passed pipe', async () => {
    const s = fakeSocket();
    const addonUrl = new URL('../../../systemd/addon.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { addon } = await import(${JSON.stringify(addonUrl)});
         console.log(JSON.stringify(addon().notifyBarrier(${JSON.stringify(s.path)}, 5000)));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    try {
      const d = s.recv(5000);
      assert.equal(d?.data.toString(), 'BARRIER=1');
      assert.equal(d?.pid, child.pid);
      for (const f of d?.fds ?? []) closeSync(f);
      assert.equal(await once<number>(child, 'exit'), 0);
      assert.equal(out.trim(), 'true');
    } finally {
      child.kill();
      s.close();
    }
  });
});

describe('getPeerCred', () => {
  test('a unix socket peer in this process is us', async () => {
    const path = join(dir, 'cred.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(path, r));
    const accepted = once<net.Socket>(server, 'connection');
    const client = net.connect(path);
    const conn = await accepted;
    try {
      assert.deepEqual(addon().getPeerCred(socketFd(conn)), {
        pid: process.pid,
        uid: process.getuid?.(),
        gid: process.getgid?.(),
      });
      // And the client side sees the server's process: us too.
      await once(client, 'connect');
      assert.equal(addon().getPeerCred(socketFd(client)).pid, process.pid);
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });

  test('a peer in another process is that process', async () => {
    const path = join(dir, 'cred2.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(path, r));
    const accepted = once<net.Socket>(server, 'connection');
    const child = spawn(
      process.execPath,
      ['-e', `require('net').connect(${JSON.stringify(path)}); setTimeout(() => {}, 10000)`],
      { stdio: 'ignore' },
    );
    try {
      const conn = await accepted;
      assert.equal(addon().getPeerCred(socketFd(conn)).pid, child.pid);
      conn.destroy();
    } finally {
      child.kill();
      server.close();
    }
  });

  test('TCP and non-sockets have no credentials', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = once<net.Socket>(server, 'connection');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const conn = await accepted;
    try {
      assert.throws(() => addon().getPeerCred(socketFd(conn)), { code: 'ENODATA' });
      assert.throws(() => addon().getPeerCred(0xfffff), { code: 'EBADF' });
      const fd = openSync(thisFile, 'r');
      assert.throws(() => addon().getPeerCred(fd), { code: 'ENOTSOCK' });
      closeSync(fd);
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });
});

describe('getSocketInfo and setCloexec', () => {
  test('tells listening TCP/unix sockets from connections and datagram sockets', async () => {
    const tcp = net.createServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const unix = net.createServer();
    await new Promise<void>((r) => unix.listen(join(dir, 'info.sock'), r));
    const udp = dgram.createSocket('udp6');
    await new Promise<void>((r) => udp.bind(0, '::1', r));
    const accepted = once<net.Socket>(tcp, 'connection');
    const client = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
    const conn = await accepted;
    try {
      const a = addon();
      assert.deepEqual(a.getSocketInfo(socketFd(tcp)), {
        family: 'inet',
        type: 'stream',
        listening: true,
      });
      assert.deepEqual(a.getSocketInfo(socketFd(unix)), {
        family: 'unix',
        type: 'stream',
        listening: true,
      });
      assert.deepEqual(a.getSocketInfo(socketFd(conn)), {
        family: 'inet',
        type: 'stream',
        listening: false,
      });
      const udpSocketFd = udpFd(udp);
      assert.deepEqual(a.getSocketInfo(udpSocketFd), {
        family: 'inet6',
        type: 'dgram',
        listening: false,
      });
      const file = openSync(thisFile, 'r');
      assert.throws(() => a.getSocketInfo(file), { code: 'ENOTSOCK' });
      closeSync(file);
      assert.throws(() => a.getSocketInfo(0xfffff), { code: 'EBADF' });
    } finally {
      client.destroy();
      conn.destroy();
      tcp.close();
      unix.close();
      udp.close();
    }
  });

  test('setCloexec sets and clears FD_CLOEXEC', async () => {
    const fd = openSync(thisFile, 'r');
    try {
      addon().setCloexec(fd, false);
      assert.equal(await isCloexec(fd), false);
      addon().setCloexec(fd, true);
      assert.equal(await isCloexec(fd), true);
      assert.throws(() => addon().setCloexec(0xfffff, true), { code: 'EBADF' });
      assert.throws(() => addon().setCloexec(fd, 'yes' as unknown as boolean), TypeError);
    } finally {
      closeQuietly(fd);
    }
  });
});
