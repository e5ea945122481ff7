import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import {
  CONNECTION_ATTEMPT_DELAY_MS,
  createDirectConnector,
} from '../../../proxy/connect/direct.js';
import type { Resolver } from '../../../proxy/net/resolver.js';
import { createResolver } from '../../../proxy/net/resolver.js';
import { ConnectError } from '../../../proxy/types.js';

const cleanups: (() => void | Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A TCP server on `host` that records its peers' addresses and answers "hi". */
async function server(host: string) {
  const peers: string[] = [];
  const srv = net.createServer((s) => {
    peers.push(s.remoteAddress ?? '');
    s.on('error', () => {}); // a test may reset the connection
    s.end('hi');
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, peers };
}

/** A port on `host` with nothing listening. */
async function deadPort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * A port on `host` where a connect hangs: a listener in a stopped child process (it
 * never accepts) whose backlog we fill, so that the kernel drops further SYNs.
 */
async function blackholePort(host: string, wanted = 0): Promise<number> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const s=require('net').createServer();s.on('error',()=>process.exit(1));s.listen({port:${wanted},host:${JSON.stringify(host)},backlog:1},()=>console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', () => reject(new Error('listener child exited')));
  });
  child.kill('SIGSTOP');
  for (let i = 0; i < 16; i++) {
    const filler = net.connect({ host, port });
    filler.on('error', () => {});
    cleanups.push(() => {
      filler.destroy();
    });
    const connected = await new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), 200);
      filler.once('connect', () => {
        clearTimeout(t);
        r(true);
      });
    });
    if (!connected) return port;
  }
  throw new Error('could not fill the listen backlog');
}

/** A resolver that answers from a table and counts its calls. */
function fakeResolver(table: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async lookup(host) {
      calls.push(host);
      const found = table[host];
      if (!found) throw new ConnectError('dns', `cannot resolve ${host}: no such host`);
      return found;
    },
  };
}

function reasonIs(reason: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  };
}

async function readAll(sock: net.Socket): Promise<string> {
  let data = '';
  for await (const chunk of sock) data += chunk;
  return data;
}

const system = createResolver({ servers: [], timeoutMs: 2000 });

describe('direct connector', () => {
  test('refused port → refused', async () => {
    const port = await deadPort('127.0.0.1');
    const c = createDirectConnector({
      resolver: system,
      connectTimeoutMs: 1000,
      tcpNoDelay: false,
    });
    await assert.rejects(c.connect({ host: '127.0.0.1', port }), reasonIs('refused'));
  });

  test('DNS failure → dns', async () => {
    const c = createDirectConnector({
      resolver: fakeResolver({}),
      connectTimeoutMs: 1000,
      tcpNoDelay: false,
    });
    await assert.rejects(c.connect({ host: 'nowhere.test', port: 80 }), reasonIs('dns'));
  });

  test('never throws synchronously: every failure is a rejected promise', async () => {
    const r = fakeResolver({});
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    const aborted = AbortSignal.abort(new Error('client gone'));
    // A synchronous throw here would escape a caller that only handles rejections.
    const calls = [
      () => c.connect({ host: '127.0.0.1', port: 70000 }),
      () => c.connect({ host: '127.0.0.1', port: 80 }, { signal: aborted }),
      () => c.connect({ host: 'x.test', port: 80 }, { addresses: ['not an address'] }),
    ];
    for (const call of calls) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = call();
      });
      await assert.rejects(p as Promise<unknown>, (err) => err instanceof ConnectError);
    }
    assert.equal(r.calls.length, 0);
  });

  test('an IP literal is connected to without asking the resolver', async () => {
    const srv = net.createServer((s) => s.end('hi'));
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
    const r = fakeResolver({});
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    const sock = await c.connect({
      host: '127.0.0.1',
      port: (srv.address() as net.AddressInfo).port,
    });
    assert.equal(await readAll(sock), 'hi');
    srv.close();
    assert.equal(r.calls.length, 0);
  });

  // A server that speaks first and half-closes at once (a banner, then FIN), then
  // still reads what the client sends: with halfOpen, the exit stays writable after
  // that FIN, whenever it was read; without it, Node ends our side as soon as it reads
  // the FIN, before any relay could set allowHalfOpen.
  for (const halfOpen of [true, false]) {
    test(`a server's early FIN ${halfOpen ? 'leaves the exit writable (halfOpen)' : 'ends the exit (backends)'}`, async () => {
      const got: Promise<string>[] = [];
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        s.end('banner');
        got.push(
          (async () => {
            let data = '';
            for await (const chunk of s) data += chunk;
            return data;
          })(),
        );
      });
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
      cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
      const c = createDirectConnector({
        resolver: fakeResolver({}),
        connectTimeoutMs: 1000,
        tcpNoDelay: true,
        halfOpen,
      });
      const sock = await c.connect({
        host: '127.0.0.1',
        port: (srv.address() as net.AddressInfo).port,
      });
      sock.on('error', () => {});
      // The FIN is read (and 'end' emitted) before anyone writes. (Not readAll: an
      // async iterator destroys the socket when it is done.)
      let banner = '';
      sock.on('data', (chunk: Buffer) => {
        banner += chunk;
      });
      await new Promise((r) => sock.once('end', r));
      assert.equal(banner, 'banner');
      await new Promise((r) => setImmediate(r));
      if (halfOpen) {
        assert.equal(sock.writable, true, 'the exit was ended by the server FIN');
        sock.end('request after the banner');
        assert.equal(await got[0], 'request after the banner');
      } else {
        assert.equal(sock.writable, false);
        assert.equal(await got[0], '');
      }
      sock.destroy();
    });
  }

  test('invalid port → internal, without any attempt', async () => {
    const r = fakeResolver({});
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    await assert.rejects(c.connect({ host: 'x.test', port: 0 }), reasonIs('internal'));
    assert.equal(r.calls.length, 0);
  });

  test('connects to 127.0.0.1 and to ::1, socket connected with noDelay per config', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const s = await server(host);
      const c = createDirectConnector({
        resolver: system,
        connectTimeoutMs: 1000,
        tcpNoDelay: true,
      });
      const sock = await c.connect({ host, port: s.port });
      assert.equal(sock.remoteAddress, host);
      assert.equal(sock.remotePort, s.port);
      assert.equal(sock.readyState, 'open');
      assert.equal(await readAll(sock), 'hi');
    }
  });

  test('a name goes through the resolver', async () => {
    const s = await server('127.0.0.1');
    const r = fakeResolver({ 'svc.test': ['127.0.0.1'] });
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    const sock = await c.connect({ host: 'svc.test', port: s.port });
    assert.equal(await readAll(sock), 'hi');
    assert.deepEqual(r.calls, ['svc.test']);
  });

  test('pinned addresses: connect there only, never resolve again', async () => {
    const s = await server('127.0.0.1');
    const elsewhere = await server('::1');
    // The name now resolves elsewhere (rebinding): the pinned address must win.
    const r = fakeResolver({ 'rebind.test': ['::1'] });
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    const sock = await c.connect(
      { host: 'rebind.test', port: s.port },
      { addresses: ['127.0.0.1'] },
    );
    assert.equal(sock.remoteAddress, '127.0.0.1');
    assert.equal(await readAll(sock), 'hi');
    assert.deepEqual(r.calls, []);
    assert.deepEqual(elsewhere.peers, []);
    // An empty pin is a failure, not a licence to resolve.
    await assert.rejects(
      c.connect({ host: 'rebind.test', port: s.port }, { addresses: [] }),
      reasonIs('dns'),
    );
    assert.deepEqual(r.calls, []);
  });

  test('outgoingAddress = 127.0.0.2 is the source the server sees', async () => {
    const s = await server('127.0.0.1');
    const c = createDirectConnector({
      resolver: system,
      connectTimeoutMs: 1000,
      outgoingAddress: '127.0.0.2',
      tcpNoDelay: false,
    });
    const sock = await c.connect({ host: '127.0.0.1', port: s.port });
    assert.equal(await readAll(sock), 'hi');
    assert.deepEqual(s.peers, ['127.0.0.2']);
  });

  test('outgoingAddress skips addresses of the other family', async () => {
    const s4 = await server('127.0.0.1');
    const r = fakeResolver({ 'dual.test': ['::1', '127.0.0.1'], 'v6.test': ['::1'] });
    const c = createDirectConnector({
      resolver: r,
      connectTimeoutMs: 1000,
      outgoingAddress: '127.0.0.2',
      tcpNoDelay: false,
    });
    const started = Date.now();
    const sock = await c.connect({ host: 'dual.test', port: s4.port });
    assert.equal(sock.remoteAddress, '127.0.0.1');
    assert.ok(Date.now() - started < CONNECTION_ATTEMPT_DELAY_MS, 'the IPv6 address was tried');
    sock.destroy();
    await assert.rejects(c.connect({ host: 'v6.test', port: s4.port }), reasonIs('unreachable'));
  });

  test('an unusable outgoingAddress is reported, not hidden', async () => {
    assert.throws(
      () =>
        createDirectConnector({
          resolver: system,
          connectTimeoutMs: 1000,
          outgoingAddress: 'eth0',
          tcpNoDelay: false,
        }),
      TypeError,
    );
    const s = await server('127.0.0.1');
    // 192.0.2.1 (TEST-NET) is not an address of this machine: bind fails, no packet leaves.
    const c = createDirectConnector({
      resolver: system,
      connectTimeoutMs: 1000,
      outgoingAddress: '192.0.2.1',
      tcpNoDelay: false,
    });
    await assert.rejects(c.connect({ host: '127.0.0.1', port: s.port }), reasonIs('internal'));
  });

  test('per-attempt timeout → timeout', async () => {
    const port = await blackholePort('127.0.0.1');
    const c = createDirectConnector({ resolver: system, connectTimeoutMs: 300, tcpNoDelay: false });
    const started = Date.now();
    await assert.rejects(c.connect({ host: '127.0.0.1', port }), reasonIs('timeout'));
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 1500, `took ${took} ms`);
  });

  test('the signal aborts every attempt', async () => {
    const port = await blackholePort('127.0.0.1');
    const c = createDirectConnector({
      resolver: system,
      connectTimeoutMs: 10_000,
      tcpNoDelay: false,
    });
    const started = Date.now();
    await assert.rejects(
      c.connect({ host: '127.0.0.1', port }, { signal: AbortSignal.timeout(150) }),
      reasonIs('timeout'),
    );
    assert.ok(Date.now() - started < 1000);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      c.connect({ host: '127.0.0.1', port }, { signal: ac.signal }),
      ConnectError,
    );
  });

  test('Happy Eyeballs: a refused ::1 falls back to 127.0.0.1 at once', async () => {
    const s4 = await server('127.0.0.1');
    // Same port number, nothing on ::1 (bind a v6-only dead port is not guaranteed: check it).
    const probe = net.connect({ host: '::1', port: s4.port });
    const v6Refused = await new Promise<boolean>((r) => {
      probe.once('error', () => r(true));
      probe.once('connect', () => r(false));
    });
    probe.destroy();
    assert.ok(v6Refused, 'something listens on ::1 at the same port; rerun');
    const r = fakeResolver({ 'dual.test': ['::1', '127.0.0.1'] });
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 2000, tcpNoDelay: false });
    const started = Date.now();
    const sock = await c.connect({ host: 'dual.test', port: s4.port });
    assert.equal(sock.remoteAddress, '127.0.0.1');
    assert.ok(
      Date.now() - started < CONNECTION_ATTEMPT_DELAY_MS,
      'waited for the attempt delay after a refusal',
    );
    assert.equal(await readAll(sock), 'hi');
  });

  test('Happy Eyeballs: a hanging ::1 gives way to 127.0.0.1 after the attempt delay; loser destroyed', async () => {
    // The same port number: a live server on 127.0.0.1, a black hole on ::1.
    let port = 0;
    for (let i = 0; i < 5 && port === 0; i++) {
      const s4 = await server('127.0.0.1');
      port = await blackholePort('::1', s4.port).catch(() => 0);
    }
    assert.ok(port > 0, 'could not set up the same port on 127.0.0.1 and ::1');
    const pendingBefore = synSentTo6(port);
    const c = createDirectConnector({
      resolver: system,
      connectTimeoutMs: 3000,
      tcpNoDelay: false,
    });
    const started = Date.now();
    const sock = await c.connect({ host: 'dual.test', port }, { addresses: ['::1', '127.0.0.1'] });
    const took = Date.now() - started;
    assert.equal(sock.remoteAddress, '127.0.0.1');
    assert.ok(took >= CONNECTION_ATTEMPT_DELAY_MS - 20 && took < 1500, `took ${took} ms`);
    assert.equal(synSentTo6(port), pendingBefore, 'the losing IPv6 attempt is still pending');
    assert.equal(await readAll(sock), 'hi');
  });

  test('all attempts fail → the most telling reason, with the count', async () => {
    const port = await deadPort('127.0.0.1');
    const r = fakeResolver({ 'dead.test': ['::1', '127.0.0.1'] });
    const c = createDirectConnector({ resolver: r, connectTimeoutMs: 1000, tcpNoDelay: false });
    await assert.rejects(c.connect({ host: 'dead.test', port }), (err: unknown) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.reason, 'refused');
      assert.match(err.message, /2 addresses tried/);
      return true;
    });
  });
});

/** Sockets in SYN_SENT towards [::1]:port, from the kernel's table. */
function synSentTo6(port: number): number {
  const remote = ` 00000000000000000000000001000000:${port.toString(16).toUpperCase().padStart(4, '0')} 02 `;
  return readFileSync('/proc/net/tcp6', 'latin1')
    .split('\n')
    .filter((l) => l.includes(remote)).length;
}
