// SOCKS5 UDP ASSOCIATE with real UDP sockets on loopback: per-destination decisions
// (asked once), denied datagrams dropped, and the association's lifetime tied to its
// TCP control connection.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { sleep } from './fake-pipeline.js';
import {
  domain,
  ipv4,
  type ProxyUnderTest,
  RawClient,
  startProxy,
  startUdpEcho,
  type UdpEcho,
} from './helpers.js';

let proxy: ProxyUnderTest;
let allowedEcho: UdpEcho;
let deniedEcho: UdpEcho;

before(async () => {
  proxy = await startProxy();
  allowedEcho = await startUdpEcho();
  deniedEcho = await startUdpEcho();
  proxy.pipeline.policy = (req) =>
    req.target.port === deniedEcho.port ? { reason: 'denied', message: 'no' } : undefined;
});
after(async () => {
  await proxy.close();
  allowedEcho.close();
  deniedEcho.close();
});

function header(atyp: number, address: Buffer, port: number, frag = 0): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0, 0, frag, atyp]), address, p]);
}

/** Opens the control connection and returns the relay's address. */
async function associate(requestedPort = 0): Promise<{ control: RawClient; relayPort: number }> {
  const control = await RawClient.connect(proxy.port);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(requestedPort);
  control.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0]), p]));
  assert.deepEqual(await control.read(2), Buffer.from([5, 0]));
  const reply = await control.read(10);
  assert.deepEqual(reply.subarray(0, 8), Buffer.from([5, 0, 0, 1, 127, 0, 0, 1]));
  return { control, relayPort: reply.readUInt16BE(8) };
}

class UdpClient {
  readonly sock = dgram.createSocket('udp4');
  readonly inbox: Buffer[] = [];
  async open(): Promise<this> {
    this.sock.on('message', (m) => this.inbox.push(m));
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', r));
    return this;
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(data: Buffer, port: number) {
    this.sock.send(data, port, '127.0.0.1');
  }
  async next(timeoutMs = 1000): Promise<Buffer | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.inbox.length === 0 && Date.now() < end) await sleep(10);
    return this.inbox.shift();
  }
  close() {
    this.sock.close();
  }
}

async function portIsFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => {
      s.close();
      resolve(true);
    });
  });
}

describe('SOCKS5 UDP ASSOCIATE', () => {
  test('allowed destination echoes with the header; denied one is dropped; decisions cached', async () => {
    proxy.pipeline.datagrams.length = 0;
    const { control, relayPort } = await associate();
    const udp = await new UdpClient().open();
    try {
      const toAllowed = header(1, ipv4('127.0.0.1'), allowedEcho.port);
      udp.send(Buffer.concat([toAllowed, Buffer.from('one')]), relayPort);
      const reply = await udp.next();
      assert.ok(reply, 'no reply from the allowed destination');
      assert.deepEqual(reply, Buffer.concat([toAllowed, Buffer.from('echo:one')]));

      const toDenied = header(1, ipv4('127.0.0.1'), deniedEcho.port);
      udp.send(Buffer.concat([toDenied, Buffer.from('x')]), relayPort);
      udp.send(Buffer.concat([toDenied, Buffer.from('y')]), relayPort);
      udp.send(Buffer.concat([toAllowed, Buffer.from('two')]), relayPort);
      assert.deepEqual(await udp.next(), Buffer.concat([toAllowed, Buffer.from('echo:two')]));
      assert.equal(await udp.next(300), undefined, 'a denied datagram came back');

      const asked = proxy.pipeline.datagrams.map((d) => d.target.port);
      assert.deepEqual(asked.sort(), [allowedEcho.port, deniedEcho.port].sort());
      assert.equal(proxy.pipeline.datagrams[0].cmd, 'udp_associate');
      assert.equal(proxy.pipeline.datagrams[0].protocol, 'socks5');
    } finally {
      udp.close();
      control.destroy();
    }
  });

  test('fragments, malformed headers and other sources are dropped', async () => {
    const { control, relayPort } = await associate();
    const udp = await new UdpClient().open();
    const other = await new UdpClient().open();
    try {
      const toAllowed = header(1, ipv4('127.0.0.1'), allowedEcho.port);
      udp.send(
        Buffer.concat([header(1, ipv4('127.0.0.1'), allowedEcho.port, 1), Buffer.from('frag')]),
        relayPort,
      );
      udp.send(Buffer.from([0, 0, 0, 9, 1, 2, 3]), relayPort); // unknown ATYP
      udp.send(Buffer.from([0, 1, 0, 1, 127, 0, 0, 1, 0, 1]), relayPort); // RSV ≠ 0
      udp.send(Buffer.concat([header(3, domain(''), allowedEcho.port)]), relayPort);
      assert.equal(await udp.next(200), undefined);
      // The first valid datagram fixes the client's port: another port is refused.
      udp.send(Buffer.concat([toAllowed, Buffer.from('mine')]), relayPort);
      assert.deepEqual(await udp.next(), Buffer.concat([toAllowed, Buffer.from('echo:mine')]));
      other.send(Buffer.concat([toAllowed, Buffer.from('theirs')]), relayPort);
      assert.equal(await other.next(200), undefined);
    } finally {
      udp.close();
      other.close();
      control.destroy();
    }
  });

  test('a port announced in the request is the only one accepted', async () => {
    const udp = await new UdpClient().open();
    const other = await new UdpClient().open();
    const { control, relayPort } = await associate(udp.port);
    try {
      const toAllowed = header(1, ipv4('127.0.0.1'), allowedEcho.port);
      other.send(Buffer.concat([toAllowed, Buffer.from('early')]), relayPort);
      assert.equal(await other.next(200), undefined);
      udp.send(Buffer.concat([toAllowed, Buffer.from('ok')]), relayPort);
      assert.deepEqual(await udp.next(), Buffer.concat([toAllowed, Buffer.from('echo:ok')]));
    } finally {
      udp.close();
      other.close();
      control.destroy();
    }
  });

  test('domain destinations are resolved (localhost)', async () => {
    const { control, relayPort } = await associate();
    // localhost may resolve to ::1 first: an echo on both families, same port.
    const v6 = dgram.createSocket('udp6');
    v6.on('message', (m, r) =>
      v6.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address),
    );
    const v6ok = await new Promise<boolean>((resolve) => {
      v6.once('error', () => resolve(false));
      v6.bind(allowedEcho.port, '::1', () => resolve(true));
    });
    const udp = await new UdpClient().open();
    try {
      udp.send(
        Buffer.concat([header(3, domain('LocalHost.'), allowedEcho.port), Buffer.from('name')]),
        relayPort,
      );
      const reply = await udp.next();
      assert.ok(reply, 'no reply through a name');
      assert.ok(reply.subarray(reply.length - 9).equals(Buffer.from('echo:name')));
      const last = proxy.pipeline.datagrams.at(-1);
      assert.deepEqual(last?.target, { host: 'localhost', port: allowedEcho.port });
    } finally {
      udp.close();
      if (v6ok) v6.close();
      control.destroy();
    }
  });

  test('the association ends with its TCP control connection', async () => {
    const { control, relayPort } = await associate();
    assert.equal(await portIsFree(relayPort), false);
    control.destroy();
    const end = Date.now() + 2000;
    while (!(await portIsFree(relayPort))) {
      assert.ok(
        Date.now() < end,
        'the relay port is still bound after the control connection closed',
      );
      await sleep(20);
    }
  });

  test('the TCP control connection closed by the client with a FIN also ends it', async () => {
    const { control, relayPort } = await associate();
    control.socket.end();
    await control.waitClosed();
    const end = Date.now() + 2000;
    while (!(await portIsFree(relayPort))) {
      assert.ok(Date.now() < end, 'relay port still bound');
      await sleep(20);
    }
  });
});
