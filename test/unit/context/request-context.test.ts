import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { KNOWN_ATTRIBUTES } from '../../../acl-lang/attributes.js';
import {
  type ContextServices,
  localTime,
  PROVIDED_ATTRIBUTES,
  RequestContext,
  type RequestFacts,
} from '../../../proxy/context/request-context.js';
import { createSocketTable, type SocketTable } from '../../../proxy/context/socket-table.js';
import type { Resolver } from '../../../proxy/net/resolver.js';
import { ConnectError } from '../../../proxy/types.js';
import { peerAddressOf } from '../../harness/sockets.js';

/** Services that count every call, with canned answers. */
function counting(
  opts: { addresses?: string[]; failDns?: boolean; now?: Date; timeZone?: string } = {},
) {
  const calls = { lookup: 0, owner: 0, process: 0, userName: 0, now: 0 };
  const resolver: Resolver = {
    async lookup(host) {
      calls.lookup++;
      if (opts.failDns)
        throw new ConnectError('dns', `cannot resolve ${host}: no such host (ENOTFOUND)`);
      return opts.addresses ?? ['2001:db8::5', '192.0.2.5'];
    },
  };
  const socketTable: SocketTable = {
    async owner() {
      calls.owner++;
      return { uid: 1000, inode: 4242 };
    },
    async process() {
      calls.process++;
      return { pid: 77, exe: '/usr/bin/curl', name: 'curl' };
    },
    async userName() {
      calls.userName++;
      return 'alice';
    },
  };
  const services: ContextServices = {
    resolver,
    socketTable,
    now: () => {
      calls.now++;
      return opts.now ?? new Date('2024-03-04T10:30:00Z');
    },
    timeZone: opts.timeZone,
  };
  return { calls, services };
}

const loopbackClient = {
  ip: '127.0.0.1',
  port: 40000,
  localIp: '127.0.0.1',
  localPort: 1080,
  auth: 'none' as const,
};

function facts(over: Partial<RequestFacts> = {}): RequestFacts {
  return {
    target: { host: 'example.com', port: 443 },
    protocol: 'socks5',
    cmd: 'tcp_connect',
    client: loopbackClient,
    ...over,
  };
}

const noCalls = { lookup: 0, owner: 0, process: 0, userName: 0, now: 0 };

describe('request context', () => {
  test('prepare with no names does no I/O at all', async () => {
    const { calls, services } = counting();
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(new Set());
    await ctx.prepare(new Set(['host', 'port', 'proxy.cmd', 'client.ip', 'no.such.attribute']));
    assert.deepEqual(calls, noCalls);
    assert.equal(ctx.get('host'), 'example.com');
    assert.equal(ctx.get('port'), 443);
    assert.equal(ctx.get('proxy.protocol'), 'socks5');
    assert.equal(ctx.get('proxy.cmd'), 'tcp_connect');
    assert.equal(ctx.get('client.ip'), '127.0.0.1');
    assert.equal(ctx.get('client.port'), 40000);
    assert.equal(ctx.get('client.auth'), 'none');
    // Not prepared: missing, and still no I/O behind the synchronous get.
    for (const n of [
      'dst.ip',
      'client.uid',
      'client.user',
      'client.process.exe',
      'no.such.attribute',
    ]) {
      assert.equal(ctx.get(n), undefined, n);
    }
    assert.deepEqual(calls, noCalls);
    assert.equal(ctx.resolvedAddresses, undefined);
  });

  test('dst.ip: resolved once, first address, all addresses kept for the connector', async () => {
    const { calls, services } = counting();
    const ctx = new RequestContext(facts(), services);
    await Promise.all([ctx.prepare(new Set(['dst.ip'])), ctx.prepare(new Set(['dst.ip']))]);
    await ctx.prepare(new Set(['dst.ip']));
    assert.equal(calls.lookup, 1);
    assert.equal(ctx.get('dst.ip'), '2001:db8::5');
    assert.deepEqual(ctx.resolvedAddresses, ['2001:db8::5', '192.0.2.5']);
    assert.equal(calls.owner, 0);
    // Each resolved address can be checked on its own.
    assert.equal(ctx.withDstIp('192.0.2.5').get('dst.ip'), '192.0.2.5');
    assert.equal(ctx.withDstIp('192.0.2.5').get('host'), 'example.com');
  });

  test('dst.ip of an IP literal needs no DNS; the mapped spelling is the IPv4 address', async () => {
    const { calls, services } = counting();
    const ctx = new RequestContext(
      facts({ target: { host: '::ffff:10.0.0.1', port: 22 } }),
      services,
    );
    await ctx.prepare(new Set(['dst.ip']));
    assert.equal(calls.lookup, 0);
    assert.equal(ctx.get('dst.ip'), '10.0.0.1');
    assert.deepEqual(ctx.resolvedAddresses, ['10.0.0.1']);
  });

  test('a DNS failure is a missing dst.ip, never a throw; the error is kept', async () => {
    const { services } = counting({ failDns: true });
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(new Set(['dst.ip']));
    assert.equal(ctx.get('dst.ip'), undefined);
    assert.equal(ctx.resolvedAddresses, undefined);
    assert.equal(ctx.dnsError?.reason, 'dns');
  });

  test('client.uid alone does not scan processes nor read passwd', async () => {
    const { calls, services } = counting();
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(new Set(['client.uid']));
    assert.deepEqual(calls, { ...noCalls, owner: 1 });
    assert.equal(ctx.get('client.uid'), 1000);
    assert.equal(ctx.get('client.user'), undefined);
    assert.equal(ctx.get('client.process.exe'), undefined);
  });

  test('everything at once: one owner lookup shared by user and process', async () => {
    const { calls, services } = counting();
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(
      new Set(['dst.ip', 'client.user', 'client.process.exe', 'client.process.name', 'time.hour']),
    );
    assert.deepEqual(calls, { lookup: 1, owner: 1, process: 1, userName: 1, now: 1 });
    assert.equal(ctx.get('client.uid'), 1000);
    assert.equal(ctx.get('client.user'), 'alice');
    assert.equal(ctx.get('client.process.exe'), '/usr/bin/curl');
    assert.equal(ctx.get('client.process.name'), 'curl');
  });

  test('client.* lookups only for loopback peers', async () => {
    const { calls, services } = counting();
    const remote = { ...loopbackClient, ip: '198.51.100.7' };
    const ctx = new RequestContext(facts({ client: remote }), services);
    await ctx.prepare(new Set(['client.uid', 'client.user', 'client.process.exe']));
    assert.deepEqual(calls, noCalls);
    assert.equal(ctx.get('client.uid'), undefined);
    // A dual-stack listener reports loopback as ::ffff:127.0.0.1: still loopback, shown as IPv4.
    const mapped = new RequestContext(
      facts({ client: { ...loopbackClient, ip: '::ffff:127.0.0.1' } }),
      services,
    );
    await mapped.prepare(new Set(['client.uid']));
    assert.equal(mapped.get('client.uid'), 1000);
    assert.equal(mapped.get('client.ip'), '127.0.0.1');
  });

  test('method/scheme/path/query only for HTTP forward requests', () => {
    const { services } = counting();
    const http = { method: 'GET', scheme: 'http', path: '/a', query: 'b=1' };
    const fwd = new RequestContext(facts({ protocol: 'http', cmd: 'forward', http }), services);
    assert.equal(fwd.get('method'), 'GET');
    assert.equal(fwd.get('scheme'), 'http');
    assert.equal(fwd.get('path'), '/a');
    assert.equal(fwd.get('query'), 'b=1');
    const tunnel = new RequestContext(facts({ protocol: 'http', cmd: 'connect', http }), services);
    for (const n of ['method', 'scheme', 'path', 'query']) assert.equal(tunnel.get(n), undefined);
  });

  test('client certificate attributes only when a certificate was verified', () => {
    const { services } = counting();
    const cert = { subjectCn: 'laptop-42', san: ['laptop-42.corp'], fingerprint: 'AB:CD' };
    const ctx = new RequestContext(
      facts({ client: { ...loopbackClient, auth: 'tls' }, cert }),
      services,
    );
    assert.equal(ctx.get('client.auth'), 'tls');
    assert.equal(ctx.get('client.cert.subject.cn'), 'laptop-42');
    assert.deepEqual(ctx.get('client.cert.san'), ['laptop-42.corp']);
    assert.equal(ctx.get('client.cert.fingerprint'), 'AB:CD');
    const none = new RequestContext(facts(), services);
    assert.equal(none.get('client.cert.subject.cn'), undefined);
    assert.equal(none.get('client.cert.san'), undefined);
  });

  test('time attributes from a fixed clock, in a given zone, read once', () => {
    // Monday 2024-03-04 23:30 UTC = Tuesday 00:30 in Paris (UTC+1).
    const now = new Date('2024-03-04T23:30:00Z');
    const utc = counting({ now, timeZone: 'UTC' });
    const a = new RequestContext(facts(), utc.services);
    assert.equal(a.get('time.hour'), 23);
    assert.equal(a.get('time.weekday'), 'mon');
    const paris = counting({ now, timeZone: 'Europe/Paris' });
    const b = new RequestContext(facts(), paris.services);
    assert.equal(b.get('time.weekday'), 'tue');
    assert.equal(b.get('time.hour'), 0);
    assert.equal(paris.calls.now, 1);
    // An unknown zone is a missing attribute, not a crash.
    const bad = counting({ now, timeZone: 'Mars/Olympus' });
    assert.equal(new RequestContext(facts(), bad.services).get('time.hour'), undefined);
    // Local time when no zone is given.
    const local = new RequestContext(facts(), counting({ now }).services);
    assert.equal(local.get('time.hour'), now.getHours());
    assert.equal(
      local.get('time.weekday'),
      ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][now.getDay()],
    );
  });

  test('localTime covers every weekday and hour', () => {
    const days = new Set<string>();
    for (let h = 0; h < 24 * 7; h++) {
      const t = localTime(new Date(Date.UTC(2024, 0, 1, h)), 'UTC');
      assert.ok(t);
      assert.equal(t.hour, h % 24);
      days.add(t.weekday);
    }
    assert.deepEqual([...days], ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);
    assert.equal(localTime(new Date(Number.NaN)), null);
  });

  test('computedValues: only what I/O or the clock computed; nothing allocated otherwise', async () => {
    const { services } = counting();
    const plain = new RequestContext(facts(), services);
    plain.prepare(new Set(['host', 'port']));
    const none = plain.computedValues();
    assert.deepEqual(none, {});
    assert.ok(Object.isFrozen(none));
    assert.equal(new RequestContext(facts(), services).computedValues(), none);
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(new Set(['dst.ip', 'client.user', 'host']));
    const v = ctx.computedValues();
    assert.deepEqual(Object.keys(v).sort(), ['client.uid', 'client.user', 'dst.ip']);
    assert.equal(v['dst.ip'], '2001:db8::5');
    assert.equal(v.host, undefined); // a fact: read again from the request on reload
  });

  test('computed values replayed (reload): plain data, time.* from the reload clock', async () => {
    const { services } = counting();
    const ctx = new RequestContext(facts(), services);
    await ctx.prepare(new Set(['dst.ip', 'client.user', 'time.weekday']));
    const values = ctx.computedValues();
    const clock = localTime(new Date('2024-03-04T10:30:00Z'));
    assert.deepEqual(values, {
      'dst.ip': '2001:db8::5',
      'client.uid': 1000,
      'client.user': 'alice',
      'time.hour': clock?.hour,
      'time.weekday': clock?.weekday,
    });
    // The record is plain data: JSON round trip, then replay.
    const replay = RequestContext.fromSnapshot(JSON.parse(JSON.stringify(values)));
    for (const [k, v] of Object.entries(values)) assert.deepEqual(replay.get(k), v, k);
    assert.equal(replay.get('client.process.exe'), undefined);
    assert.equal(replay.get('toString'), undefined);
    // With a clock, time.* are those of the re-evaluation.
    const live = RequestContext.fromSnapshot(values, {
      now: () => new Date('2024-03-09T15:00:00Z'),
      timeZone: 'UTC',
    });
    assert.equal(live.get('time.weekday'), 'sat');
    assert.equal(live.get('time.hour'), 15);
  });

  test('PROVIDED_ATTRIBUTES agree with the language and are all served', async () => {
    for (const [name, type] of PROVIDED_ATTRIBUTES) {
      assert.equal(KNOWN_ATTRIBUTES.get(name), type, name);
    }
    const { services } = counting();
    const ctx = new RequestContext(
      facts({
        protocol: 'http',
        cmd: 'forward',
        http: { method: 'GET', scheme: 'http', path: '/', query: '' },
        cert: { subjectCn: 'a', san: ['b'], fingerprint: 'c' },
      }),
      services,
    );
    await ctx.prepare(new Set(PROVIDED_ATTRIBUTES.keys()));
    for (const name of PROVIDED_ATTRIBUTES.keys()) assert.notEqual(ctx.get(name), undefined, name);
  });
});

describe('request context with the real socket table', () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  test('client.uid and client.process.exe of a real loopback client', async () => {
    const srv = net.createServer();
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    const s = await accepted;
    try {
      const ctx = new RequestContext(
        facts({
          client: { ...peerAddressOf(s), auth: 'none' },
        }),
        { ...counting().services, socketTable: createSocketTable() },
      );
      await ctx.prepare(new Set(['client.uid', 'client.user', 'client.process.exe']));
      assert.equal(ctx.get('client.uid'), process.getuid?.());
      assert.equal(typeof ctx.get('client.user'), 'string');
      assert.equal(ctx.get('client.process.exe'), realpathSync(process.execPath));
    } finally {
      client.destroy();
      s.destroy();
    }
  });
});
