// PROXY protocol parsing: strict, bounded, incremental (docs/configuration.md,
// "[listener]": proxy-protocol).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  parseProxyHeader,
  readProxyHeader,
  V1_MAX_BYTES,
  V2_MAX_BYTES,
  V2_SIGNATURE,
} from '../../../proxy/listen/proxy-protocol.js';

const v1 = (s: string) => Buffer.from(s, 'latin1');

/** A v2 header: command 0 (LOCAL) or 1 (PROXY), family/protocol byte, address block. */
function v2(cmd: number, fam: number, body: Buffer, version = 2): Buffer {
  const h = Buffer.alloc(16);
  V2_SIGNATURE.copy(h);
  h[12] = (version << 4) | cmd;
  h[13] = fam;
  h.writeUInt16BE(body.length, 14);
  return Buffer.concat([h, body]);
}

function v4Body(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function v6Body(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(36);
  const put = (ip: string, at: number) => {
    b.set(ipaddr.IPv6.parse(ip).toByteArray(), at);
  };
  put(src, 0);
  put(dst, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

describe('PROXY v1', () => {
  test('unhappy: malformed, wrong family, bad ports, oversized', () => {
    const bad = [
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', // LF only
      'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
      'PROXY TCP4 ::1 5.6.7.8 1 2\r\n',
      'PROXY TCP6 1.2.3.4 ::1 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n',
      'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n',
      'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n',
      'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n',
      'GET / HTTP/1.1\r\n',
      '\x05\x01\x00',
      `PROXY UNKNOWN ${'x'.repeat(V1_MAX_BYTES)}\r\n`,
    ];
    for (const s of bad) assert.equal(parseProxyHeader(v1(s)).status, 'error', JSON.stringify(s));
    assert.equal(parseProxyHeader(v1(`PROXY TCP4 ${'1'.repeat(V1_MAX_BYTES)}`)).status, 'error');
  });

  test('incomplete while the line could still be valid', () => {
    for (const s of ['P', 'PROXY', 'PROXY TCP4 1.2.3.4', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) {
      assert.deepEqual(parseProxyHeader(v1(s)), { status: 'incomplete' }, s);
    }
  });

  test('TCP4, TCP6 (unmapped, canonical), UNKNOWN', () => {
    assert.deepEqual(parseProxyHeader(v1('PROXY TCP4 81.2.69.142 10.0.0.1 40000 443\r\nrest')), {
      status: 'ok',
      kind: 'proxy',
      length: 43,
      ip: '81.2.69.142',
      port: 40000,
    });
    const six = parseProxyHeader(v1('PROXY TCP6 2001:DB8:0:0::1 ::1 1 2\r\n'));
    assert.equal(six.status === 'ok' && six.kind === 'proxy' && six.ip, '2001:db8::1');
    const mapped = parseProxyHeader(v1('PROXY TCP6 ::ffff:81.2.69.142 ::1 1 2\r\n'));
    assert.equal(mapped.status === 'ok' && mapped.kind === 'proxy' && mapped.ip, '81.2.69.142');
    assert.deepEqual(parseProxyHeader(v1('PROXY UNKNOWN\r\n')), {
      status: 'ok',
      kind: 'local',
      length: 15,
    });
  });
});

describe('PROXY v2', () => {
  test('unhappy: version, command, family, short blocks, oversized, UDP', () => {
    const body4 = v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    assert.equal(parseProxyHeader(v2(1, 0x11, body4, 1)).status, 'error');
    assert.equal(parseProxyHeader(v2(2, 0x11, body4)).status, 'error');
    assert.equal(parseProxyHeader(v2(1, 0x41, body4)).status, 'error');
    assert.equal(parseProxyHeader(v2(1, 0x13, body4)).status, 'error');
    assert.equal(parseProxyHeader(v2(1, 0x12, body4)).status, 'error'); // UDP
    assert.equal(parseProxyHeader(v2(1, 0x11, body4.subarray(0, 11))).status, 'error');
    assert.equal(parseProxyHeader(v2(1, 0x21, Buffer.alloc(35))).status, 'error');
    const huge = v2(1, 0x11, Buffer.alloc(V2_MAX_BYTES));
    assert.equal(parseProxyHeader(huge.subarray(0, 16)).status, 'error');
    const badSig = Buffer.from(v2(1, 0x11, body4));
    badSig[7] = 0;
    assert.equal(parseProxyHeader(badSig).status, 'error');
  });

  test('incomplete until the announced length arrived', () => {
    const h = v2(1, 0x11, v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for (let n = 1; n < h.length; n++) {
      assert.deepEqual(parseProxyHeader(h.subarray(0, n)), { status: 'incomplete' }, `at ${n}`);
    }
  });

  test('PROXY TCP4 / TCP6 with TLVs; LOCAL and UNSPEC keep the peer', () => {
    const tlv = Buffer.from([0x04, 0x00, 0x01, 0x00]); // PP2_TYPE_NOOP
    const four = v2(
      1,
      0x11,
      Buffer.concat([v4Body([81, 2, 69, 142], [10, 0, 0, 1], 5555, 443), tlv]),
    );
    assert.deepEqual(parseProxyHeader(four), {
      status: 'ok',
      kind: 'proxy',
      length: 32,
      ip: '81.2.69.142',
      port: 5555,
    });
    const six = v2(1, 0x21, v6Body('2001:db8::7', '::1', 6, 443));
    const r6 = parseProxyHeader(Buffer.concat([six, Buffer.from('tail')]));
    assert.deepEqual(r6, { status: 'ok', kind: 'proxy', length: 52, ip: '2001:db8::7', port: 6 });
    const mapped = parseProxyHeader(v2(1, 0x21, v6Body('::ffff:81.2.69.142', '::1', 6, 443)));
    assert.equal(mapped.status === 'ok' && mapped.kind === 'proxy' && mapped.ip, '81.2.69.142');
    assert.deepEqual(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), {
      status: 'ok',
      kind: 'local',
      length: 16,
    });
    assert.equal(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))).status, 'ok');
  });

  test('any bytes: never throws, and an ok header never claims more than it read', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, sig) => {
        const buf = sig ? Buffer.concat([V2_SIGNATURE, bytes]) : Buffer.from(bytes);
        const r = parseProxyHeader(buf);
        if (r.status === 'ok') assert.ok(r.length <= buf.length);
      }),
    );
  });
});

describe('readProxyHeader on a socket', () => {
  async function pair(): Promise<{ client: net.Socket; server: net.Socket; close(): void }> {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    const [server] = (await once(srv, 'connection')) as [net.Socket];
    return {
      client,
      server,
      close() {
        client.destroy();
        server.destroy();
        srv.close();
      },
    };
  }

  test('byte by byte, then the rest of the stream is intact', async () => {
    const p = await pair();
    try {
      const got = new Promise<unknown>((resolve) => readProxyHeader(p.server, resolve));
      const msg = Buffer.concat([v1('PROXY TCP4 1.2.3.4 5.6.7.8 10 20\r\n'), Buffer.from('hello')]);
      for (const b of msg) {
        p.client.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      assert.deepEqual(await got, { kind: 'proxy', length: 34, ip: '1.2.3.4', port: 10 });
      const data: Buffer[] = [];
      p.server.on('data', (d: Buffer) => data.push(d));
      p.client.end();
      await once(p.server, 'end');
      assert.equal(Buffer.concat(data).toString(), 'hello');
    } finally {
      p.close();
    }
  });

  test('a client closing early or sending no header is an error', async () => {
    const p = await pair();
    try {
      const got = new Promise<unknown>((resolve) => readProxyHeader(p.server, resolve));
      p.client.end('PROXY TCP4');
      assert.match(String(((await got) as { error: string }).error), /closed/);
    } finally {
      p.close();
    }
    const q = await pair();
    try {
      const got = new Promise<unknown>((resolve) => readProxyHeader(q.server, resolve));
      q.client.write('\x05\x01\x00');
      assert.match(String(((await got) as { error: string }).error), /no PROXY/);
    } finally {
      q.close();
    }
  });
});
