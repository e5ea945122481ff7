// SOCKS5 front-end against real clients: curl (--socks5, --socks5-hostname) and a raw
// socket client that checks every reply byte (RFC 1928; docs/reference/wire.md, "Refusal reasons").
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RejectReason } from '../../../proxy/types.js';
import {
  curl,
  domain,
  type EchoServer,
  ipv4,
  needCurl,
  type Origin,
  type ProxyUnderTest,
  RawClient,
  socksConnect,
  startEcho,
  startOrigin,
  startProxy,
} from './helpers.js';

let proxy: ProxyUnderTest;
let echo: EchoServer;
let echo6: EchoServer;
let origin: Origin;

before(async () => {
  proxy = await startProxy();
  echo = await startEcho();
  echo6 = await startEcho('::1');
  origin = await startOrigin();
});
after(async () => {
  await proxy.close();
  await echo.close();
  await echo6.close();
  await origin.close();
});

function reset() {
  proxy.pipeline.policy = () => undefined;
  proxy.pipeline.delayMs = 0;
  proxy.pipeline.tunnels.length = 0;
  proxy.errors.length = 0;
}

/** Greets with no-auth and checks the method reply. */
async function greeted(): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  c.write(Buffer.from([5, 1, 0]));
  assert.deepEqual(await c.read(2), Buffer.from([5, 0]));
  return c;
}

const FAILURE_REPLY = (code: number) => Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);

describe('SOCKS5 refusals, byte-exact', () => {
  const cases: [RejectReason, number][] = [
    ['denied', 0x02],
    ['dns', 0x04],
    ['unreachable', 0x04],
    ['refused', 0x05],
    ['timeout', 0x06],
    ['unsupported-command', 0x07],
    ['unsupported-address', 0x08],
    ['bad-request', 0x01],
    ['overloaded', 0x01],
    ['internal', 0x01],
  ];
  for (const [reason, code] of cases) {
    test(`${reason} → reply 0x0${code}, then close`, async () => {
      reset();
      proxy.pipeline.policy = () => ({ reason, message: `because ${reason}` });
      const c = await greeted();
      c.write(socksConnect(1, ipv4('127.0.0.1'), echo.port));
      assert.deepEqual(await c.read(10), FAILURE_REPLY(code));
      await c.waitClosed();
      assert.equal(proxy.pipeline.tunnels.length, 1);
    });
  }

  test('a pipeline that throws → 0x01 and the error is reported', async () => {
    reset();
    proxy.pipeline.policy = () => {
      throw new Error('pipeline bug');
    };
    const c = await greeted();
    c.write(socksConnect(1, ipv4('127.0.0.1'), echo.port));
    assert.deepEqual(await c.read(10), FAILURE_REPLY(0x01));
    await c.waitClosed();
    assert.match(proxy.errors.map((e) => e.message).join(), /pipeline bug/);
  });
});

describe('SOCKS5 handshake bounds (the pipeline is never asked)', () => {
  const cases: [string, Buffer, Buffer][] = [
    ['BIND → 0x07', Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0, 80]), FAILURE_REPLY(0x07)],
    [
      'unknown command 0x09 → 0x07',
      Buffer.from([5, 9, 0, 1, 127, 0, 0, 1, 0, 80]),
      FAILURE_REPLY(0x07),
    ],
    [
      'unknown ATYP 0x02 → 0x08',
      Buffer.from([5, 1, 0, 2, 127, 0, 0, 1, 0, 80]),
      FAILURE_REPLY(0x08),
    ],
    ['unknown ATYP 0xff → 0x08', Buffer.from([5, 1, 0, 0xff]), FAILURE_REPLY(0x08)],
    ['non-zero RSV → 0x01', Buffer.from([5, 1, 1, 1, 127, 0, 0, 1, 0, 80]), FAILURE_REPLY(0x01)],
    [
      'version 4 in the request → 0x01',
      Buffer.from([4, 1, 0, 1, 127, 0, 0, 1, 0, 80]),
      FAILURE_REPLY(0x01),
    ],
    ['empty domain → 0x01', Buffer.from([5, 1, 0, 3, 0, 0, 80]), FAILURE_REPLY(0x01)],
    ['port 0 → 0x01', socksConnect(1, ipv4('127.0.0.1'), 0), FAILURE_REPLY(0x01)],
    [
      'domain with a space → 0x01',
      socksConnect(3, domain('exa mple.com'), 80),
      FAILURE_REPLY(0x01),
    ],
    ['domain with a NUL → 0x01', socksConnect(3, domain('a\0.com'), 80), FAILURE_REPLY(0x01)],
    [
      'domain with an empty label → 0x01',
      socksConnect(3, domain('a..com'), 80),
      FAILURE_REPLY(0x01),
    ],
    [
      'domain that is not UTF-8 → 0x01',
      socksConnect(3, Buffer.from([2, 0xc3, 0x28]), 80),
      FAILURE_REPLY(0x01),
    ],
    [
      'numeric name that is no IPv4 address → 0x01',
      socksConnect(3, domain('1.2.3.4.5'), 80),
      FAILURE_REPLY(0x01),
    ],
  ];
  for (const [name, request, reply] of cases) {
    test(name, async () => {
      reset();
      const c = await greeted();
      c.write(request);
      assert.deepEqual(await c.read(reply.length), reply);
      await c.waitClosed();
      assert.equal(proxy.pipeline.tunnels.length, 0);
    });
  }

  test('no acceptable method (username/password only) → 05 FF, then close', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.from([5, 1, 2]));
    assert.deepEqual(await c.read(2), Buffer.from([5, 0xff]));
    await c.waitClosed();
  });

  test('zero methods → 05 FF, then close', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.from([5, 0]));
    assert.deepEqual(await c.read(2), Buffer.from([5, 0xff]));
    await c.waitClosed();
  });

  test('a client that leaves mid-handshake is closed, nothing asked', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.from([5, 1, 0, 5, 1, 0, 3, 20, 0x61]));
    c.socket.end();
    await c.waitClosed();
    assert.equal(proxy.pipeline.tunnels.length, 0);
  });
});

describe('SOCKS5 CONNECT', () => {
  test('curl --socks5 (address resolved by curl) reaches the origin', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const r = await curl([
      '--socks5',
      `127.0.0.1:${proxy.port}`,
      `http://127.0.0.1:${origin.port}/a?b=c`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello from origin GET /a?b=c\n');
    const [req] = proxy.pipeline.tunnels;
    assert.deepEqual(req.target, { host: '127.0.0.1', port: origin.port });
    assert.equal(req.protocol, 'socks5');
    assert.equal(req.cmd, 'tcp_connect');
    assert.equal(req.client.ip, '127.0.0.1');
    assert.equal(req.client.localIp, '127.0.0.1');
    assert.equal(req.client.localPort, proxy.port);
    assert.equal(req.client.auth, 'none');
  });

  test('curl --socks5-hostname hands the name to the pipeline unresolved', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const r = await curl([
      '--socks5-hostname',
      `127.0.0.1:${proxy.port}`,
      `http://echo.portail.test:${origin.port}/x`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello from origin GET /x\n');
    assert.deepEqual(proxy.pipeline.tunnels[0].target, {
      host: 'echo.portail.test',
      port: origin.port,
    });
  });

  test('curl on denial: exit 97, "Can\'t complete SOCKS5 connection … (2)"', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    proxy.pipeline.policy = () => ({ reason: 'denied', message: 'denied by policy x' });
    const r = await curl([
      '--socks5-hostname',
      `127.0.0.1:${proxy.port}`,
      `http://echo.portail.test:${origin.port}/`,
    ]);
    assert.equal(r.code, 97, r.stderr);
    assert.match(r.stderr, /Can't complete SOCKS5 connection to .*\(2\)/);
  });

  test('success reply carries the bound address; bytes flow both ways', async () => {
    reset();
    const c = await greeted();
    c.write(socksConnect(1, ipv4('127.0.0.1'), echo.port));
    const reply = await c.read(10);
    assert.deepEqual(reply.subarray(0, 8), Buffer.from([5, 0, 0, 1, 127, 0, 0, 1]));
    assert.notEqual(reply.readUInt16BE(8), 0);
    c.write('ping');
    assert.equal((await c.read(4)).toString(), 'ping');
    c.destroy();
  });

  test('bytes pipelined after the request (and during the decision) are not lost', async () => {
    reset();
    proxy.pipeline.delayMs = 150;
    const c = await RawClient.connect(proxy.port);
    c.write(
      Buffer.concat([
        Buffer.from([5, 1, 0]),
        socksConnect(1, ipv4('127.0.0.1'), echo.port),
        Buffer.from('early|'),
      ]),
    );
    setTimeout(() => c.write('while-deciding|'), 50);
    assert.deepEqual(await c.read(2), Buffer.from([5, 0]));
    assert.equal((await c.read(10))[1], 0);
    c.write('after');
    assert.equal((await c.read(26)).toString(), 'early|while-deciding|after');
    c.destroy();
  });

  test('handshake split into single bytes still works', async () => {
    reset();
    const c = await RawClient.connect(proxy.port);
    const all = Buffer.concat([
      Buffer.from([5, 2, 2, 0]),
      socksConnect(3, domain('echo.portail.test'), echo.port),
      Buffer.from('x'),
    ]);
    for (const byte of all) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.deepEqual(await c.read(2), Buffer.from([5, 0]));
    assert.equal((await c.read(10))[1], 0);
    assert.equal((await c.read(1)).toString(), 'x');
    c.destroy();
  });

  test('IPv6 literal target (ATYP 4) reaches an origin on ::1', async () => {
    reset();
    const c = await greeted();
    const addr = Buffer.alloc(16);
    addr[15] = 1;
    c.write(socksConnect(4, addr, echo6.port));
    const reply = await c.read(22);
    assert.deepEqual(reply.subarray(0, 4), Buffer.from([5, 0, 0, 4]));
    assert.deepEqual(reply.subarray(4, 20), addr);
    c.write('six');
    assert.equal((await c.read(3)).toString(), 'six');
    assert.deepEqual(proxy.pipeline.tunnels[0].target, { host: '::1', port: echo6.port });
    c.destroy();
  });

  test('curl --socks5 to an IPv6 literal URL', async (t) => {
    if (!(await needCurl(t))) return;
    reset();
    const origin6 = await startOrigin('::1');
    try {
      const r = await curl([
        '--socks5',
        `127.0.0.1:${proxy.port}`,
        `http://[::1]:${origin6.port}/v6`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello from origin GET /v6\n');
      assert.deepEqual(proxy.pipeline.tunnels[0].target, { host: '::1', port: origin6.port });
    } finally {
      await origin6.close();
    }
  });

  test('destinations are normalised: case, trailing dot, IDNA, IPv4-mapped, numeric IPv4', async () => {
    const cases: [Buffer, string][] = [
      [socksConnect(3, domain('ECHO.Portail.TEST.'), echo.port), 'echo.portail.test'],
      [socksConnect(3, domain('bücher.portail.test'), echo.port), 'xn--bcher-kva.portail.test'],
      [socksConnect(3, domain('2130706433'), echo.port), '127.0.0.1'],
      [socksConnect(3, domain('[::1]'), echo6.port), '::1'],
      [
        socksConnect(
          4,
          Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]),
          echo.port,
        ),
        '127.0.0.1',
      ],
    ];
    for (const [request, host] of cases) {
      reset();
      const c = await greeted();
      c.write(request);
      const head = await c.read(4);
      assert.equal(head[1], 0, `${host}: reply ${head.toString('hex')}`);
      c.destroy();
      assert.equal(proxy.pipeline.tunnels[0].target.host, host);
    }
  });
});
