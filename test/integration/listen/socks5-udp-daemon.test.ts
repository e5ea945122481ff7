// SOCKS5 UDP ASSOCIATE through the real daemon (real pipeline, ACL and audit file):
// what the ACL allows echoes, what it denies or routes to a backend is dropped, with one
// decision record per destination, not per datagram; idle-timeout, outgoing-address,
// public-address and the association's close record.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { type TestContext, test } from 'node:test';
import { type Portail, startPortail } from '../daemon/portail.js';
import { sleep } from './fake-pipeline.js';
import { ipv4, RawClient } from './helpers.js';

interface Echo {
  port: number;
  from: string[];
}

async function udpEcho(t: TestContext): Promise<Echo> {
  const sock = dgram.createSocket('udp4');
  const from: string[] = [];
  sock.on('message', (msg, r) => {
    from.push(r.address);
    sock.send(Buffer.concat([Buffer.from('echo:'), msg]), r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  t.after(() => sock.close());
  return { port: sock.address().port, from };
}

function header(port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0, 0, 0, 1]), ipv4('127.0.0.1'), p]);
}

/** The control connection, the reply's BND.ADDR/PORT and a UDP client socket. */
async function associate(t: TestContext, p: Portail) {
  const control = await RawClient.connect(p.port);
  t.after(() => control.destroy());
  control.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(await control.read(2), Buffer.from([5, 0]));
  const reply = await control.read(10);
  assert.deepEqual(reply.subarray(0, 4), Buffer.from([5, 0, 0, 1]));
  const udp = dgram.createSocket('udp4');
  const inbox: Buffer[] = [];
  udp.on('message', (m) => inbox.push(m));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  t.after(() => udp.close());
  const relayPort = reply.readUInt16BE(8);
  return {
    control,
    address: [...reply.subarray(4, 8)].join('.'),
    send: (port: number, data: string) =>
      udp.send(Buffer.concat([header(port), Buffer.from(data)]), relayPort, '127.0.0.1'),
    async next(timeoutMs = 1000): Promise<string | undefined> {
      const end = Date.now() + timeoutMs;
      while (inbox.length === 0 && Date.now() < end) await sleep(5);
      return inbox.shift()?.subarray(10).toString();
    },
  };
}

const decisionsFor = (p: Portail, port: number) =>
  p.records().filter((r) => r.event === 'decision' && r.port === port);

test('allowed echoes, denied dropped; one decision record per destination', async (t) => {
  const ok = await udpEcho(t);
  const no = await udpEcho(t);
  const p = await startPortail(t, {
    acl: `policy no_udp_here { when port == ${no.port} action deny }\npolicy all { action allow }\n`,
  });
  const a = await associate(t, p);
  for (const i of [1, 2, 3]) {
    a.send(no.port, `x${i}`);
    a.send(ok.port, `y${i}`);
    assert.equal(await a.next(), `echo:y${i}`);
  }
  assert.equal(await a.next(200), undefined);
  assert.deepEqual(no.from, [], 'a denied datagram left the proxy');
  const allowed = decisionsFor(p, ok.port);
  const denied = decisionsFor(p, no.port);
  assert.equal(allowed.length, 1, JSON.stringify(allowed));
  assert.equal(denied.length, 1, JSON.stringify(denied));
  assert.equal(allowed[0].action, 'allow');
  assert.equal(denied[0].action, 'deny');
  assert.equal(denied[0].policy, 'no_udp_here');
  assert.equal(denied[0].protocol, 'socks5');
});

test('a destination routed to a backend is dropped (UDP has only the direct exit), decided once', async (t) => {
  const routed = await udpEcho(t);
  const p = await startPortail(t, {
    acl: `route via_b { when port == ${routed.port} use ["b"] }\npolicy all { action allow }\n`,
    config:
      'fallback-to-direct = false\n[backends.b]\ntype = "socks5"\ntarget-address = "127.0.0.1:9"\n',
  });
  const a = await associate(t, p);
  for (const i of [1, 2, 3]) a.send(routed.port, `r${i}`);
  assert.equal(await a.next(300), undefined);
  assert.deepEqual(routed.from, [], 'a datagram routed to a backend left directly');
  assert.equal(decisionsFor(p, routed.port).length, 1);
});

test('idle-timeout ends the association; its close record has both byte counters', async (t) => {
  const echo = await udpEcho(t);
  const p = await startPortail(t, { config: 'idle-timeout = "300ms"\n' });
  const a = await associate(t, p);
  a.send(echo.port, 'hello');
  assert.equal(await a.next(), 'echo:hello');
  await a.control.waitClosed(2000);
  const close = await p.waitRecord((r) => r.event === 'close', 2000);
  assert.equal(close.close_reason, 'idle_timeout');
  assert.equal(close.bytes_up, 5);
  assert.equal(close.bytes_down, 10);
  assert.equal(close.protocol, 'socks5');
});

test('outgoing-address is the source of direct datagrams', async (t) => {
  const echo = await udpEcho(t);
  const p = await startPortail(t, { config: 'outgoing-address = "127.0.0.2"\n' });
  const a = await associate(t, p);
  a.send(echo.port, 'src');
  assert.equal(await a.next(), 'echo:src');
  assert.deepEqual(echo.from, ['127.0.0.2']);
});

test('public-address is the address in the ASSOCIATE reply', async (t) => {
  const p = await startPortail(t, { config: 'public-address = "192.0.2.7"\n' });
  const a = await associate(t, p);
  assert.equal(a.address, '192.0.2.7');
  assert.equal(net.isIP(a.address), 4);
});

test('a reload decides every destination again: one now denied stops, the association stays', async (t) => {
  const echo = await udpEcho(t);
  const other = await udpEcho(t);
  const p = await startPortail(t, { acl: 'policy all { action allow }\n' });
  const a = await associate(t, p);
  a.send(echo.port, 'before');
  assert.equal(await a.next(), 'echo:before');
  p.writeAcl(
    `policy no_more { when port == ${echo.port} action deny }\npolicy all { action allow }\n`,
  );
  p.signal('SIGHUP');
  await p.waitRecord((r) => r.event === 'reload' && r.result === 'ok', 5000);
  a.send(echo.port, 'after');
  assert.equal(await a.next(500), undefined, 'a destination the new rules deny still got through');
  a.send(other.port, 'other');
  assert.equal(await a.next(), 'echo:other', 'the association itself was closed by the reload');
  assert.deepEqual(echo.from, ['127.0.0.1'], 'the denied datagram reached the destination');
  const denied = await p.waitRecord(
    (r) => r.event === 'decision' && r.port === echo.port && r.action === 'deny',
  );
  assert.equal(denied.policy, 'no_more');
  assert.equal(
    p.records().filter((r) => r.event === 'close').length,
    0,
    'the association is still open',
  );
});
