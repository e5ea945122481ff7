// Socket activation: the LISTEN_* parsing rules, and a child process that really
// inherits listening sockets at fd 3.. exactly as systemd passes them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkSocket, parseListenEnv, serverFromFd } from '../../../systemd/activation.js';
import { socketFd } from '../../../systemd/fdstore.js';
import { udpFd } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'portail-act-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('parseListenEnv', () => {
  test('absent, or meant for another process: nothing', () => {
    assert.deepEqual(parseListenEnv({}, 42), []);
    assert.deepEqual(parseListenEnv({ LISTEN_FDS: '2' }, 42), []);
    assert.deepEqual(
      parseListenEnv({ LISTEN_PID: '41', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' }, 42),
      [],
    );
  });

  test('malformed variables are errors', () => {
    assert.throws(() => parseListenEnv({ LISTEN_PID: 'me', LISTEN_FDS: '1' }, 42), /LISTEN_PID/);
    assert.throws(() => parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '-1' }, 42), /LISTEN_FDS/);
    assert.throws(() => parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '1x' }, 42), /LISTEN_FDS/);
    assert.throws(
      () => parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '99999999' }, 42),
      /LISTEN_FDS/,
    );
    assert.throws(
      () => parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'proxy' }, 42),
      /1 names for LISTEN_FDS=2/,
    );
  });

  test('fds from 3 in order, with their names; unknown when unnamed', () => {
    assert.deepEqual(
      parseListenEnv(
        { LISTEN_PID: '42', LISTEN_FDS: '3', LISTEN_FDNAMES: 'proxy:control:proxy' },
        42,
      ),
      [
        { fd: 3, name: 'proxy' },
        { fd: 4, name: 'control' },
        { fd: 5, name: 'proxy' },
      ],
    );
    assert.deepEqual(parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '2' }, 42), [
      { fd: 3, name: 'unknown' },
      { fd: 4, name: 'unknown' },
    ]);
    assert.deepEqual(
      parseListenEnv({ LISTEN_PID: '42', LISTEN_FDS: '0', LISTEN_FDNAMES: '' }, 42),
      [],
    );
  });
});

/** Runs a child that calls listenFds() and serves each name on its sockets; resolves
 * with its report once it is serving. */
async function activatedChild(env: string, fds: number[]) {
  const script = join(dir, `child-${Date.now()}.mjs`);
  const act = new URL('../../../systemd/activation.js', import.meta.url).href;
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs';
     import { listenFds, serverFromFd } from ${JSON.stringify(act)};
     const map = listenFds();
     const cloexec = {};
     for (const fds of map.values()) for (const fd of fds) {
       const flags = /flags:\\s+([0-7]+)/.exec(readFileSync('/proc/self/fdinfo/' + fd, 'utf8'))[1];
       cloexec[fd] = (parseInt(flags, 8) & 0o2000000) !== 0;
     }
     let fd5 = 'open';
     try { readFileSync('/proc/self/fdinfo/5'); } catch { fd5 = 'closed'; }
     const env = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'].filter((k) => k in process.env);
     for (const [name, fds] of map) for (const fd of fds) {
       const s = await serverFromFd(fd);
       s.on('connection', (c) => c.end(name));
     }
     console.log(JSON.stringify({ map: [...map], cloexec, env, fd5 }));
     setInterval(() => {}, 1000);`,
  );
  const child = spawn(
    '/bin/sh',
    ['-c', `export ${env}; exec "$0" "$1"`, process.execPath, script],
    {
      stdio: ['ignore', 'pipe', 'inherit', ...fds],
    },
  );
  const stdout = child.stdout;
  if (!stdout) throw new Error('no stdout pipe');
  const report = await new Promise<string>((resolve, reject) => {
    let out = '';
    stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) resolve(out);
    });
    child.on('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
  return {
    child,
    report: JSON.parse(report) as {
      map: [string, number[]][];
      cloexec: Record<string, boolean>;
      env: string[];
      fd5: string;
    },
  };
}

const reply = (opts: net.NetConnectOpts) =>
  new Promise<string>((resolve, reject) => {
    let data = '';
    net
      .connect(opts)
      .on('data', (c) => {
        data += c;
      })
      .on('end', () => resolve(data))
      .on('error', reject);
  });

describe('listenFds in an activated process', () => {
  test('serves the inherited sockets by name, close-on-exec, env cleared, duplicates dropped', async () => {
    const tcp = net.createServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as net.AddressInfo).port;
    // Abstract name: closing our copy below must not unlink anything.
    const control = `\0portail-act-${process.pid}-${Date.now()}`;
    const unix = net.createServer();
    await new Promise<void>((r) => unix.listen(control, r));
    const { child, report } = await activatedChild(
      'LISTEN_PID=$$ LISTEN_FDS=3 LISTEN_FDNAMES=proxy:control:proxy',
      [socketFd(tcp), socketFd(unix), socketFd(tcp)],
    );
    // Only the child may answer now.
    tcp.close();
    unix.close();
    try {
      assert.deepEqual(report.map, [
        ['proxy', [3]],
        ['control', [4]],
      ]);
      assert.equal(report.fd5, 'closed', 'the duplicate of fd 3 is closed');
      assert.deepEqual(report.cloexec, { 3: true, 4: true });
      assert.deepEqual(report.env, []);
      assert.equal(await reply({ port, host: '127.0.0.1' }), 'proxy');
      assert.equal(await reply({ path: control }), 'control');
    } finally {
      child.kill();
    }
  });

  test('LISTEN_PID of another process: nothing is taken, the variables are cleared', async () => {
    const tcp = net.createServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const { child, report } = await activatedChild(
      'LISTEN_PID=1 LISTEN_FDS=1 LISTEN_FDNAMES=proxy',
      [socketFd(tcp)],
    );
    try {
      assert.deepEqual(report.map, []);
      assert.deepEqual(report.env, []);
    } finally {
      child.kill();
      tcp.close();
    }
  });
});

describe('checking what an fd is', () => {
  test('serverFromFd refuses connections, datagram sockets and the wrong family', async () => {
    const tcp = net.createServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const unix = net.createServer();
    await new Promise<void>((r) => unix.listen(join(dir, 'u.sock'), r));
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => tcp.once('connection', r));
    const client = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
    const conn = await accepted;
    try {
      await assert.rejects(
        serverFromFd(socketFd(conn)),
        /inet stream socket, expected a stream-listener/,
      );
      const udpSocketFd = udpFd(udp);
      await assert.rejects(
        serverFromFd(udpSocketFd),
        /inet dgram socket, expected a stream-listener/,
      );
      await assert.rejects(
        serverFromFd(socketFd(unix), { kind: 'tcp-listener' }),
        /unix stream socket \(listening\)/,
      );
      await assert.rejects(
        serverFromFd(socketFd(tcp), { kind: 'unix-listener' }),
        /expected a unix-listener/,
      );
      assert.throws(
        () => checkSocket(socketFd(tcp), 'stream-connection'),
        /expected a stream-connection/,
      );
      assert.throws(
        () => checkSocket(0xfffff, 'stream-listener'),
        /fd 1048575 is not a usable socket/,
      );
      assert.equal(checkSocket(socketFd(conn), 'stream-connection').family, 'inet');
    } finally {
      client.destroy();
      conn.destroy();
      tcp.close();
      unix.close();
      udp.close();
    }
  });
});
