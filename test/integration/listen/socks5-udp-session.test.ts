// SOCKS5 UDP ASSOCIATE with a pipeline that offers associations (settings, close
// record): outgoing-address, the reply address (local address / public-address),
// idle-timeout, the close record's counters and reasons, the client's source address,
// bounds on the decision cache, and what the pipeline may do to an open association.
// Real UDP and TCP sockets on loopback; the pipeline is the recording fake.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { DEFAULT_LIMITS, type FrontEndContext } from '../../../proxy/listen/frontend.js';
import { createProxyListener, type ProxyListener } from '../../../proxy/listen/listener.js';
import { startUdpAssociation } from '../../../proxy/listen/socks5-udp.js';
import type {
  AssociationHandle,
  AssociationStats,
  DatagramRequest,
  DatagramSession,
  DatagramVerdict,
} from '../../../proxy/listen/socks5-udp-session.js';
import type { Refusal, Target } from '../../../proxy/types.js';
import { FakePipeline, sleep } from './fake-pipeline.js';
import { ipv4, RawClient } from './helpers.js';

interface Settings {
  idleTimeoutMs: number;
  outgoingAddress?: string;
  publicAddress?: string;
}

/** The fake pipeline plus associations: records every call, answers as told. */
class AssociatingFake extends FakePipeline {
  settings: Settings = { idleTimeoutMs: 0 };
  verdict: (t: Target) => DatagramVerdict = () => ({ send: true });
  decideDelayMs = 0;
  refuse: Refusal | undefined;
  associateDelayMs = 0;
  names = new Map<string, string[]>();
  readonly associations: DatagramRequest[] = [];
  readonly decided: Target[] = [];
  readonly undeliverable: { target: Target; why: string }[] = [];
  readonly closes: AssociationStats[] = [];
  readonly handles: AssociationHandle[] = [];
  /** Sessions handed out (each must be closed once). */
  opened = 0;

  /** Waits for every association so far to have its close record, then forgets everything. */
  async reset() {
    await until('earlier associations closed', () => this.closes.length >= this.opened);
    this.opened = 0;
    this.settings = { idleTimeoutMs: 0 };
    this.verdict = () => ({ send: true });
    this.decideDelayMs = 0;
    this.refuse = undefined;
    this.associateDelayMs = 0;
    for (const a of [
      this.associations,
      this.decided,
      this.undeliverable,
      this.closes,
      this.handles,
    ])
      a.length = 0;
  }

  override async associate(
    req: DatagramRequest,
    handle: AssociationHandle,
  ): Promise<DatagramSession | Refusal> {
    this.associations.push(req);
    this.handles.push(handle);
    if (this.associateDelayMs) await sleep(this.associateDelayMs);
    if (this.refuse) return this.refuse;
    this.opened++;
    const session: DatagramSession = {
      ...this.settings,
      decide: async (target) => {
        this.decided.push(target);
        if (this.decideDelayMs) await sleep(this.decideDelayMs);
        return this.verdict(target);
      },
      resolve: async (host) => {
        const known = this.names.get(host);
        if (known) return known;
        throw new Error(`no such name ${host}`);
      },
      undeliverable: (target, why) => {
        this.undeliverable.push({ target, why });
      },
      closed: (stats) => {
        this.closes.push(stats);
      },
    };
    return session;
  }
}

const fake = new AssociatingFake();
let listener: ProxyListener;
const servers: net.Server[] = [];
let port4: number; // listener on 127.0.0.1
let portAny: number; // listener on :: (dual stack)

async function listen(host: string): Promise<number> {
  const server = net.createServer((s) => listener.handleSocket(s));
  await new Promise<void>((r) => server.listen(0, host, r));
  servers.push(server);
  return (server.address() as net.AddressInfo).port;
}

before(async () => {
  listener = createProxyListener({
    pipeline: fake,
    handshakeTimeoutMs: 5000,
    maxConnections: 1000,
    limits: { maxUdpDestinations: 3 },
  });
  port4 = await listen('127.0.0.1');
  portAny = await listen('::');
});
after(async () => {
  listener.closeAll();
  fake.close();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/**
 * Everything a test opens (echo servers, UDP clients, control connections) is closed
 * after it, whatever happened: no try/finally in every test.
 */
const opened: Array<() => void> = [];
function closeAfterTest(close: () => void): void {
  opened.push(close);
}
afterEach(() => {
  for (const close of opened.splice(0).reverse()) {
    try {
      close();
    } catch {
      // already closed by the test itself
    }
  }
});

interface Echo {
  port: number;
  /** Source address of every datagram received. */
  from: string[];
  close(): void;
}

async function udpEcho(host = '127.0.0.1'): Promise<Echo> {
  const sock = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  const from: string[] = [];
  sock.on('message', (msg, r) => {
    from.push(r.address);
    sock.send(Buffer.concat([Buffer.from('echo:'), msg]), r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, host, r));
  closeAfterTest(() => sock.close());
  return { port: sock.address().port, from, close: () => sock.close() };
}

function header(host: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  if (net.isIP(host) === 4) return Buffer.concat([Buffer.from([0, 0, 0, 1]), ipv4(host), p]);
  if (net.isIP(host) === 6)
    return Buffer.concat([
      Buffer.from([0, 0, 0, 4]),
      Buffer.from(ipaddr.parse(host).toByteArray()),
      p,
    ]);
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([0, 0, 0, 3, name.length]), name, p]);
}

interface Association {
  control: RawClient;
  /** BND.ADDR and BND.PORT of the reply. */
  address: string;
  port: number;
}

/** Greeting + UDP ASSOCIATE (DST 0.0.0.0:requestedPort); the reply parsed. */
async function associate(
  opts: { port?: number; host?: string; requestedPort?: number } = {},
): Promise<Association> {
  const control = await RawClient.connect(opts.port ?? port4, opts.host ?? '127.0.0.1');
  closeAfterTest(() => control.destroy());
  const p = Buffer.alloc(2);
  p.writeUInt16BE(opts.requestedPort ?? 0);
  control.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0]), p]));
  assert.deepEqual(await control.read(2), Buffer.from([5, 0]));
  const head = await control.read(4);
  assert.equal(head[1], 0, `ASSOCIATE refused with 0x${head[1].toString(16)}`);
  const atyp = head[3];
  const rest = await control.read(atyp === 1 ? 6 : 18);
  const address = ipaddr.fromByteArray([...rest.subarray(0, rest.length - 2)]).toString();
  return { control, address, port: rest.readUInt16BE(rest.length - 2) };
}

class UdpClient {
  readonly sock: dgram.Socket;
  readonly inbox: Buffer[] = [];
  constructor(readonly host = '127.0.0.1') {
    this.sock = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  }
  async open(): Promise<this> {
    this.sock.on('message', (m) => this.inbox.push(m));
    await new Promise<void>((r) => this.sock.bind(0, this.host, r));
    closeAfterTest(() => this.sock.close());
    return this;
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(data: Buffer, port: number, host = this.host) {
    this.sock.send(data, port, host);
  }
  async next(timeoutMs = 1000): Promise<Buffer | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.inbox.length === 0 && Date.now() < end) await sleep(5);
    return this.inbox.shift();
  }
  close() {
    this.sock.close();
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 2000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    assert.ok(Date.now() < end, `timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  const s = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.bind(port, host, () => {
      s.close();
      resolve(true);
    });
  });
}

describe('SOCKS5 UDP ASSOCIATE: outgoing-address', () => {
  test('without it the datagram leaves from the usual source; with it, from outgoing-address', async () => {
    await fake.reset();
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    const h = header('127.0.0.1', echo.port);
    udp.send(Buffer.concat([h, Buffer.from('a')]), a.port);
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:a')]));
    assert.deepEqual(echo.from, ['127.0.0.1']);
    a.control.destroy();

    fake.settings = { idleTimeoutMs: 0, outgoingAddress: '127.0.0.2' };
    const b = await associate();
    udp.send(Buffer.concat([h, Buffer.from('b')]), b.port);
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:b')]));
    assert.deepEqual(echo.from, ['127.0.0.1', '127.0.0.2']);
    b.control.destroy();
  });

  test('IPv4 outgoing-address: an IPv6 destination is dropped and reported once; the association goes on', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 0, outgoingAddress: '127.0.0.2' };
    const echo6 = await udpEcho('::1');
    const echo4 = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    const h6 = header('::1', echo6.port);
    for (const x of ['1', '2', '3']) udp.send(Buffer.concat([h6, Buffer.from(x)]), a.port);
    assert.equal(await udp.next(300), undefined, 'an IPv6 destination was reached');
    assert.deepEqual(echo6.from, []);
    assert.equal(fake.undeliverable.length, 1, 'reported once per destination');
    assert.deepEqual(fake.undeliverable[0].target, { host: '::1', port: echo6.port });
    assert.match(fake.undeliverable[0].why, /no IPv4 address .*outgoing-address is 127\.0\.0\.2/);
    const h4 = header('127.0.0.1', echo4.port);
    udp.send(Buffer.concat([h4, Buffer.from('v4')]), a.port);
    assert.deepEqual(await udp.next(), Buffer.concat([h4, Buffer.from('echo:v4')]));
    assert.deepEqual(echo4.from, ['127.0.0.2']);
  });

  test('a name with both families goes to the address of outgoing-address’s family', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 0, outgoingAddress: '127.0.0.2' };
    fake.names.set('dual.portail.test', ['::1', '127.0.0.1']);
    const echo4 = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    udp.send(Buffer.concat([header('dual.portail.test', echo4.port), Buffer.from('n')]), a.port);
    const reply = await udp.next();
    assert.ok(reply, 'no reply through the name');
    assert.ok(reply.subarray(-6).equals(Buffer.from('echo:n')));
    assert.deepEqual(echo4.from, ['127.0.0.2']);
    // The reply's header names the address that answered.
    assert.deepEqual(reply.subarray(0, 10), header('127.0.0.1', echo4.port));
  });

  test('an outgoing-address that is not ours ends the association (upstream_error), reported', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 0, outgoingAddress: '192.0.2.1' };
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    udp.send(Buffer.concat([header('127.0.0.1', echo.port), Buffer.from('x')]), a.port);
    await a.control.waitClosed();
    await until('close record', () => fake.closes.length === 1);
    assert.equal(fake.closes[0].closeReason, 'upstream_error');
    assert.match(fake.undeliverable[0]?.why ?? '', /EADDRNOTAVAIL|outbound UDP socket/);
    assert.deepEqual(echo.from, []);
  });
});

describe('SOCKS5 UDP ASSOCIATE: the reply address', () => {
  test('is the address the client connected to (dual-stack listener, IPv4-mapped shown as IPv4)', async () => {
    await fake.reset();
    const a = await associate({ port: portAny, host: '127.0.0.3' });
    const echo = await udpEcho();
    // The client's source is 127.0.0.1 (the kernel's choice for loopback): same for UDP.
    const udp = await new UdpClient().open();
    assert.equal(a.address, '127.0.0.3');
    assert.equal(await portIsFree(a.port, '127.0.0.3'), false);
    const h = header('127.0.0.1', echo.port);
    udp.send(Buffer.concat([h, Buffer.from('x')]), a.port, '127.0.0.3');
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:x')]));
  });

  test('over IPv6 (::1) the reply is an IPv6 address and datagrams flow', async () => {
    await fake.reset();
    const a = await associate({ port: portAny, host: '::1' });
    const echo = await udpEcho('::1');
    const udp = await new UdpClient('::1').open();
    assert.equal(a.address, '::1');
    const h = header('::1', echo.port);
    udp.send(Buffer.concat([h, Buffer.from('six')]), a.port);
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:six')]));
  });

  test('public-address is advertised instead; the relay still listens where the client connected', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 0, publicAddress: '192.0.2.7' };
    const a = await associate();
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    assert.equal(a.address, '192.0.2.7');
    const h = header('127.0.0.1', echo.port);
    udp.send(Buffer.concat([h, Buffer.from('nat')]), a.port, '127.0.0.1');
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:nat')]));
  });
});

describe('SOCKS5 UDP ASSOCIATE: lifetime and the close record', () => {
  test('idle-timeout: traffic keeps it open; silence closes control + relay, close_reason idle_timeout, counters both ways', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 300 };
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    const h = header('127.0.0.1', echo.port);
    const started = Date.now();
    let sent = 0;
    let lastEcho = Date.now();
    while (Date.now() - started < 700) {
      const payload = Buffer.from(`ping${sent}`);
      udp.send(Buffer.concat([h, payload]), a.port);
      assert.ok(await udp.next(), 'no echo while active');
      lastEcho = Date.now();
      sent++;
      await sleep(80);
    }
    assert.equal(a.control.closed || a.control.ended, false, 'closed while active');
    assert.equal(fake.closes.length, 0);
    await a.control.waitClosed(2000);
    const quiet = Date.now() - lastEcho;
    assert.ok(quiet >= 280 && quiet < 1000, `closed after ${quiet} ms of silence`);
    await until('close record', () => fake.closes.length === 1);
    const c = fake.closes[0];
    assert.equal(c.closeReason, 'idle_timeout');
    let up = 0;
    for (let i = 0; i < sent; i++) up += `ping${i}`.length;
    assert.equal(c.bytesUp, up);
    assert.equal(c.bytesDown, up + 5 * sent);
    assert.ok(c.durationMs >= 900, `duration ${c.durationMs}`);
    assert.equal(await portIsFree(a.port), true, 'relay socket still bound');
  });

  test('datagrams from others and denied ones do not keep it alive', async () => {
    await fake.reset();
    fake.settings = { idleTimeoutMs: 300 };
    fake.verdict = () => ({ send: false });
    const udp = await new UdpClient().open();
    const other = await new UdpClient().open();
    const a = await associate({ requestedPort: udp.port });
    const h = header('127.0.0.1', 9);
    const t0 = Date.now();
    const spam = setInterval(() => {
      udp.send(Buffer.concat([h, Buffer.from('denied')]), a.port);
      other.send(Buffer.concat([h, Buffer.from('stranger')]), a.port);
    }, 50);
    try {
      await a.control.waitClosed(2000);
    } finally {
      clearInterval(spam);
    }
    assert.ok(Date.now() - t0 < 1000);
    await until('close record', () => fake.closes.length === 1);
    assert.deepEqual(
      { ...fake.closes[0], durationMs: 0 },
      { bytesUp: 0, bytesDown: 0, durationMs: 0, closeReason: 'idle_timeout' },
    );
    assert.equal(fake.decided.length, 1, 'the denied destination was decided more than once');
  });

  test('client FIN = completed, reset = client_error; one close record each, with the bytes', async () => {
    await fake.reset();
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const h = header('127.0.0.1', echo.port);
    const ways = [
      { payload: '12345', close: (s: net.Socket) => s.end(), reason: 'completed' },
      { payload: 'abc', close: (s: net.Socket) => s.resetAndDestroy(), reason: 'client_error' },
    ];
    for (const [i, way] of ways.entries()) {
      const a = await associate();
      udp.send(Buffer.concat([h, Buffer.from(way.payload)]), a.port);
      assert.ok(await udp.next());
      way.close(a.control.socket);
      await until('close record', () => fake.closes.length === i + 1);
      assert.equal(fake.closes[i].closeReason, way.reason);
      assert.equal(fake.closes[i].bytesUp, way.payload.length);
      // The echo's answer, "echo:" + payload (SOCKS headers are not counted).
      assert.equal(fake.closes[i].bytesDown, 'echo:'.length + way.payload.length);
    }
    await sleep(100);
    assert.equal(fake.closes.length, 2, 'more than one close record');
  });

  test('a reply too big for a SOCKS header is dropped, the association goes on and does not count it', async () => {
    await fake.reset();
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    const h = header('127.0.0.1', echo.port);
    // 10 + 65497 = 65507 (the IPv4 maximum); the echo (+5) plus a header does not fit.
    udp.send(Buffer.concat([h, Buffer.alloc(65497, 1)]), a.port);
    assert.equal(await udp.next(300), undefined);
    assert.equal(echo.from.length, 1, 'the big datagram did not reach the echo');
    udp.send(Buffer.concat([h, Buffer.from('small')]), a.port);
    assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from('echo:small')]));
    a.control.socket.end();
    await until('close record', () => fake.closes.length === 1);
    assert.equal(fake.closes[0].bytesUp, 65497 + 5);
    assert.equal(fake.closes[0].bytesDown, 10);
  });

  test('the pipeline closes it (policy_changed) and can make it decide again (reload)', async () => {
    await fake.reset();
    const echo = await udpEcho();
    const udp = await new UdpClient().open();
    const a = await associate();
    const h = header('127.0.0.1', echo.port);
    udp.send(Buffer.concat([h, Buffer.from('1')]), a.port);
    assert.ok(await udp.next());
    udp.send(Buffer.concat([h, Buffer.from('2')]), a.port);
    assert.ok(await udp.next());
    assert.equal(fake.decided.length, 1);
    // A reload now denies it: decided again, dropped, and replies no longer accepted.
    fake.verdict = () => ({ send: false });
    fake.handles[0].forgetDecisions();
    udp.send(Buffer.concat([h, Buffer.from('3')]), a.port);
    assert.equal(await udp.next(300), undefined);
    assert.equal(fake.decided.length, 2);
    fake.handles[0].close('policy_changed');
    await a.control.waitClosed();
    await until('close record', () => fake.closes.length === 1);
    assert.equal(fake.closes[0].closeReason, 'policy_changed');
    assert.equal(await portIsFree(a.port), true);
  });

  test('an association the pipeline refuses gets its reply code and no close record', async () => {
    await fake.reset();
    fake.refuse = { reason: 'denied', message: 'no UDP for you' };
    const control = await RawClient.connect(port4);
    control.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(await control.read(2), Buffer.from([5, 0]));
    assert.deepEqual(await control.read(3), Buffer.from([5, 2, 0]));
    await control.waitClosed();
    await sleep(50);
    assert.equal(fake.closes.length, 0);
  });

  test('a client leaving before the pipeline answered still gets its one close record', async () => {
    await fake.reset();
    fake.associateDelayMs = 150;
    const control = await RawClient.connect(port4);
    control.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(await control.read(2), Buffer.from([5, 0]));
    control.socket.end();
    await until('close record', () => fake.closes.length === 1);
    assert.equal(fake.closes[0].closeReason, 'completed');
    await sleep(100);
    assert.equal(fake.closes.length, 1);
  });
});

describe('SOCKS5 UDP ASSOCIATE: bounds', () => {
  test('the decision cache holds maxUdpDestinations (3), least recently used evicted', async () => {
    await fake.reset();
    const echoes = await Promise.all([udpEcho(), udpEcho(), udpEcho(), udpEcho()]);
    const udp = await new UdpClient().open();
    const a = await associate();
    const to = async (i: number) => {
      const h = header('127.0.0.1', echoes[i].port);
      udp.send(Buffer.concat([h, Buffer.from(String(i))]), a.port);
      assert.deepEqual(await udp.next(), Buffer.concat([h, Buffer.from(`echo:${i}`)]));
    };
    for (const i of [0, 1, 2, 0, 3]) await to(i); // 3 evicts 1 (0 was used after 1)
    assert.equal(fake.decided.length, 4);
    await to(0);
    await to(2);
    assert.equal(fake.decided.length, 4, '0 or 2 was evicted instead of 1');
    await to(1);
    assert.equal(fake.decided.length, 5, '1 was not evicted');
    assert.deepEqual(
      fake.decided.map((t) => echoes.findIndex((e) => e.port === t.port)),
      [0, 1, 2, 3, 1],
    );
  });

  test('at most 64 destinations are decided at once; datagrams to further ones are dropped', async () => {
    await fake.reset();
    fake.decideDelayMs = 300;
    const udp = await new UdpClient().open();
    const a = await associate();
    for (let p = 1000; p < 1100; p++)
      udp.send(Buffer.concat([header('127.0.0.1', p), Buffer.from('x')]), a.port);
    await sleep(150);
    assert.equal(fake.decided.length, 64);
    await sleep(300);
    udp.send(Buffer.concat([header('127.0.0.1', 2000), Buffer.from('x')]), a.port);
    await until('a decision once the others are done', () => fake.decided.length === 65);
  });
});

describe('SOCKS5 UDP ASSOCIATE: the client’s source address', () => {
  /** A server calling startUdpAssociation with DST.ADDR/DST.PORT as socks5.ts would. */
  async function direct(requestedHost: string | null, requestedPort: number) {
    const errors: unknown[] = [];
    const server = net.createServer((s) => {
      const ctx: FrontEndContext = {
        pipeline: fake,
        client: {
          ip: '127.0.0.1',
          port: s.remotePort ?? 0,
          localIp: '127.0.0.1',
          localPort: s.localPort ?? 0,
          auth: 'none',
        },
        limits: DEFAULT_LIMITS,
        handshakeDone() {},
        handshakeStart() {},
        reportError: (e) => errors.push(e),
        reportMalformed() {},
      };
      s.on('error', () => {});
      startUdpAssociation(s, ctx, requestedPort, requestedHost);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const control = await RawClient.connect((server.address() as net.AddressInfo).port);
    closeAfterTest(() => control.destroy());
    const reply = await control.read(10);
    assert.equal(reply[1], 0);
    return { control, port: reply.readUInt16BE(8), errors };
  }

  test('DST.ADDR given: datagrams only from that address (not the TCP peer’s), replies sent there', async () => {
    await fake.reset();
    const echo = await udpEcho();
    const named = await new UdpClient('127.0.0.5').open();
    const peer = await new UdpClient('127.0.0.1').open();
    const a = await direct('127.0.0.5', named.port);
    const h = header('127.0.0.1', echo.port);
    peer.send(Buffer.concat([h, Buffer.from('peer')]), a.port);
    assert.equal(await peer.next(300), undefined);
    assert.deepEqual(echo.from, []);
    named.send(Buffer.concat([h, Buffer.from('named')]), a.port, '127.0.0.1');
    assert.deepEqual(await named.next(), Buffer.concat([h, Buffer.from('echo:named')]));
  });

  test('DST.ADDR 0.0.0.0 or a name: the TCP peer’s address; another local address is dropped', async () => {
    for (const host of ['0.0.0.0', '::', 'client.example']) {
      await fake.reset();
      const echo = await udpEcho();
      const peer = await new UdpClient('127.0.0.1').open();
      const stranger = await new UdpClient('127.0.0.6').open();
      const a = await direct(host, 0);
      const h = header('127.0.0.1', echo.port);
      stranger.send(Buffer.concat([h, Buffer.from('s')]), a.port, '127.0.0.1');
      assert.equal(await stranger.next(200), undefined, `${host}: a stranger got through`);
      peer.send(Buffer.concat([h, Buffer.from('p')]), a.port);
      assert.deepEqual(await peer.next(), Buffer.concat([h, Buffer.from('echo:p')]), host);
      assert.deepEqual(echo.from, ['127.0.0.1']);
      a.control.destroy(); // the next round's reset waits for this association to end
    }
  });
});
