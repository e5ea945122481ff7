import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { happyEyeballsOrder } from '../../../proxy/net/address-order.js';
import { createResolver, parseDnsServer } from '../../../proxy/net/resolver.js';
import { ConnectError } from '../../../proxy/types.js';
import { tmpDir } from '../../harness/index.js';

/** A tiny authoritative DNS server on loopback: answers A/AAAA from `zone`, NXDOMAIN otherwise. */
async function dnsServer(zone: Record<string, { a?: string[]; aaaa?: string[] }>, silent = false) {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', (msg, rinfo) => {
    queries++;
    if (silent) return;
    // Question: QNAME labels, QTYPE, QCLASS after the 12-byte header.
    let off = 12;
    const labels: string[] = [];
    while (msg[off] !== 0) {
      labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString('ascii'));
      off += msg[off] + 1;
    }
    const qtype = msg.readUInt16BE(off + 1);
    const question = msg.subarray(12, off + 5);
    const entry = zone[labels.join('.').toLowerCase()];
    const answers = !entry
      ? []
      : qtype === 1
        ? (entry.a ?? [])
        : qtype === 28
          ? (entry.aaaa ?? [])
          : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8180 | (entry ? 0 : 3), 2); // response, RD+RA, NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const rrs = answers.map((ip) => {
      const rdata =
        qtype === 1
          ? Buffer.from(ip.split('.').map(Number))
          : Buffer.from(expand6(ip).flatMap((g) => [g >> 8, g & 0xff]));
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    sock.send(Buffer.concat([header, question, ...rrs]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return {
    server: `127.0.0.1:${sock.address().port}`,
    queries: () => queries,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

function expand6(ip: string): number[] {
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':').map((x) => Number.parseInt(x, 16)) : [];
  const t = tail ? tail.split(':').map((x) => Number.parseInt(x, 16)) : [];
  return [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

/** A UDP port with nothing behind it. */
async function closedUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function isDnsError(err: unknown): boolean {
  return err instanceof ConnectError && err.reason === 'dns';
}

describe('parseDnsServer', () => {
  test('accepts HOST and HOST:PORT, IPv6 bracketed', () => {
    assert.equal(parseDnsServer('192.0.2.1'), '192.0.2.1');
    assert.equal(parseDnsServer('192.0.2.1:5353'), '192.0.2.1:5353');
    assert.equal(parseDnsServer('2001:db8::1'), '[2001:db8::1]');
    assert.equal(parseDnsServer('[2001:db8::1]'), '[2001:db8::1]');
    assert.equal(parseDnsServer('[2001:db8::1]:53'), '[2001:db8::1]:53');
  });
  test('rejects host names, bad ports and garbage, naming the entry', () => {
    for (const bad of [
      'dns.example.com',
      '192.0.2.1:0',
      '192.0.2.1:70000',
      '[::1]:x',
      '',
      '[nope]',
    ]) {
      assert.throws(
        () => parseDnsServer(bad),
        (e: Error) => e instanceof TypeError && e.message.includes(`"${bad}"`),
      );
    }
  });
  test('createResolver refuses an invalid server or timeout at creation', () => {
    assert.throws(
      () => createResolver({ servers: ['resolver.example'], timeoutMs: 1000 }),
      TypeError,
    );
    assert.throws(() => createResolver({ servers: [], timeoutMs: 0 }), TypeError);
  });
});

describe('happyEyeballsOrder', () => {
  test('keeps the first family first and interleaves, dropping duplicates', () => {
    assert.deepEqual(happyEyeballsOrder(['::1', '::2', '::3', '10.0.0.1', '10.0.0.2', '::1']), [
      '::1',
      '10.0.0.1',
      '::2',
      '10.0.0.2',
      '::3',
    ]);
    assert.deepEqual(happyEyeballsOrder(['10.0.0.1', '::1']), ['10.0.0.1', '::1']);
    assert.deepEqual(happyEyeballsOrder([]), []);
  });
});

describe('resolver', () => {
  test('IP literals come back as is, canonical, without any query', async () => {
    const dns = await dnsServer({}, true);
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 500 });
      assert.deepEqual(await r.lookup('192.0.2.7'), ['192.0.2.7']);
      assert.deepEqual(await r.lookup('2001:DB8:0:0::1'), ['2001:db8::1']);
      assert.deepEqual(await r.lookup('[::1]'), ['::1']);
      // The mapped spelling is the IPv4 destination: the ACL must see it as such.
      assert.deepEqual(await r.lookup('::ffff:10.1.2.3'), ['10.1.2.3']);
      assert.equal(dns.queries(), 0);
    } finally {
      await dns.close();
    }
  });

  test('system resolver: localhost is loopback', async (t) => {
    // A private resolv.conf whose server is a closed port: the machine's is never asked.
    const dir = tmpDir(t);
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 127.0.0.1\n');
    const r = createResolver({
      servers: [],
      timeoutMs: 2000,
      system: { resolvConf, hosts: join(dir, 'no-hosts') },
    });
    const addrs = await r.lookup('localhost');
    assert.ok(addrs.length > 0);
    for (const a of addrs) assert.ok(a === '::1' || a.startsWith('127.'), `unexpected ${a}`);
  });

  test('system resolver: an unknown name fails with reason dns', async (t) => {
    const dir = tmpDir(t);
    const resolvConf = join(dir, 'resolv.conf');
    // 127.0.0.1:53: nothing listens there on the test machines (refused at once, or
    // silent until the timeout): either way a dns error, and nothing leaves loopback.
    writeFileSync(resolvConf, 'nameserver 127.0.0.1\n');
    const r = createResolver({
      servers: [],
      timeoutMs: 1000,
      system: { resolvConf, hosts: join(dir, 'no-hosts') },
    });
    await assert.rejects(r.lookup('no-such-host.invalid'), isDnsError);
  });

  test('configured server: AAAA and A, IPv6 first, interleaved', async () => {
    const dns = await dnsServer({
      'dual.test': { a: ['192.0.2.1', '192.0.2.2'], aaaa: ['2001:db8::1'] },
      'v4only.test': { a: ['192.0.2.9'] },
    });
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 2000 });
      assert.deepEqual(await r.lookup('dual.test'), ['2001:db8::1', '192.0.2.1', '192.0.2.2']);
      assert.deepEqual(await r.lookup('v4only.test'), ['192.0.2.9']);
    } finally {
      await dns.close();
    }
  });

  test('configured server: NXDOMAIN is a dns error saying so', async () => {
    const dns = await dnsServer({});
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 2000 });
      await assert.rejects(
        r.lookup('missing.test'),
        (e: unknown) => isDnsError(e) && /no such host/.test((e as Error).message),
      );
    } finally {
      await dns.close();
    }
  });

  test('a closed UDP port on 127.0.0.1 fails with reason dns within the timeout', async () => {
    const port = await closedUdpPort();
    const r = createResolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 800 });
    const started = Date.now();
    await assert.rejects(r.lookup('example.test'), isDnsError);
    assert.ok(Date.now() - started < 1200, `took ${Date.now() - started} ms`);
  });

  test('a server that never answers fails with reason dns at the timeout', async () => {
    const dns = await dnsServer({}, true);
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 400 });
      const started = Date.now();
      await assert.rejects(r.lookup('example.test'), isDnsError);
      const took = Date.now() - started;
      assert.ok(took >= 350 && took < 900, `took ${took} ms`);
      assert.ok(dns.queries() > 0);
    } finally {
      await dns.close();
    }
  });

  test('the signal aborts a pending lookup', async () => {
    const dns = await dnsServer({}, true);
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 5000 });
      const started = Date.now();
      await assert.rejects(r.lookup('example.test', AbortSignal.timeout(100)), ConnectError);
      assert.ok(Date.now() - started < 1000);
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(r.lookup('example.test', ac.signal), ConnectError);
    } finally {
      await dns.close();
    }
  });

  test('localhost never goes to the configured server', async () => {
    const dns = await dnsServer({}, true);
    try {
      const r = createResolver({ servers: [dns.server], timeoutMs: 500 });
      assert.deepEqual(await r.lookup('localhost'), ['::1', '127.0.0.1']);
      assert.equal(dns.queries(), 0);
    } finally {
      await dns.close();
    }
  });
});
