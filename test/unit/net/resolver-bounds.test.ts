// The resolver's bounds (docs/security.md "Name resolution"): one query per name however
// many wait for it, cancelled when the last waiter leaves; a capped queue refused at
// once; answers cached for their TTL, "no such name" briefly; no lookup outlives its
// timeout; one abort listener per signal. DNS goes to a server of the test's own on
// loopback (test/harness/dns-server.ts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createResolver } from '../../../proxy/net/resolver.js';
import { parseHosts, parseResolvConf, searchNames } from '../../../proxy/net/system-dns.js';
import { ConnectError } from '../../../proxy/types.js';
import { startDnsServer } from '../../harness/dns-server.js';
import { sleep, tmpDir } from '../../harness/index.js';

const isDns = (re: RegExp) => (e: unknown) =>
  e instanceof ConnectError && e.reason === 'dns' && re.test(e.message);

describe('resolver bounds', () => {
  test('concurrent lookups of one name share one query', async (t) => {
    const dns = await startDnsServer(t, {
      mode: { kind: 'slow', delayMs: 150 },
      zone: { 'one.test': { a: ['192.0.2.1'], aaaa: ['2001:db8::1'] } },
    });
    const r = createResolver({ servers: [dns.address], timeoutMs: 3000 });
    const all = await Promise.all(Array.from({ length: 50 }, () => r.lookup('one.test')));
    for (const a of all) assert.deepEqual(a, ['2001:db8::1', '192.0.2.1']);
    assert.equal(dns.queries, 2, 'one AAAA and one A question');
    assert.equal(r.stats.coalesced, 49);
    assert.equal(r.stats.queries, 1);
    // Each waiter has its own copy.
    all[0].pop();
    assert.deepEqual(all[1], ['2001:db8::1', '192.0.2.1']);
  });

  test('the query is cancelled when its last waiter leaves, not before', async (t) => {
    const dns = await startDnsServer(t, {
      mode: { kind: 'slow', delayMs: 300 },
      zone: { 'c.test': { a: ['192.0.2.3'] } },
    });
    const r = createResolver({ servers: [dns.address], timeoutMs: 3000 });
    const a = new AbortController();
    const b = new AbortController();
    const pa = r.lookup('c.test', a.signal);
    const pb = r.lookup('c.test', b.signal);
    await sleep(50);
    a.abort();
    await assert.rejects(pa, ConnectError);
    assert.equal(r.stats.running, 1, 'one waiter left: the query goes on');
    b.abort();
    await assert.rejects(pb, ConnectError);
    assert.equal(r.stats.running, 0);
    assert.equal(r.stats.cancelled, 1);
    // The late answer is not taken: nothing cached, the next lookup asks again.
    await sleep(400);
    assert.equal(r.stats.cached, 0);
    assert.deepEqual(await r.lookup('c.test'), ['192.0.2.3']);
    assert.equal(r.stats.queries, 2);
  });

  test('a waiting lookup abandoned before its turn never reaches the server', async (t) => {
    const dns = await startDnsServer(t, { mode: { kind: 'silent' } });
    const r = createResolver({
      servers: [dns.address],
      timeoutMs: 600,
      limits: { maxRunning: 1, maxWaiting: 4 },
    });
    const first = r.lookup('first.test');
    const ac = new AbortController();
    const queued = r.lookup('queued.test', ac.signal);
    assert.equal(r.stats.waiting, 1);
    ac.abort();
    await assert.rejects(queued, ConnectError);
    assert.equal(r.stats.waiting, 0);
    // Our deadline or c-ares' own (the same 600 ms): either way a timeout.
    await assert.rejects(first, isDns(/timed out after 600 ms|did not answer in time/));
    await sleep(50);
    assert.ok(!dns.names.includes('queued.test'), `asked: ${dns.names.join(', ')}`);
  });

  test('beyond running + waiting, distinct names are refused at once; none outlives the timeout', async (t) => {
    const dns = await startDnsServer(t, { mode: { kind: 'silent' } });
    const r = createResolver({
      servers: [dns.address],
      timeoutMs: 500,
      limits: { maxRunning: 2, maxWaiting: 3 },
    });
    const started = performance.now();
    const accepted = Array.from({ length: 5 }, (_, i) =>
      r.lookup(`n${i}.test`).then(
        () => 'resolved',
        (e: Error) => e.message,
      ),
    );
    assert.deepEqual([r.stats.running, r.stats.waiting], [2, 3]);
    await assert.rejects(r.lookup('n5.test'), isDns(/resolver overloaded/));
    assert.ok(performance.now() - started < 100, 'refused at once');
    assert.equal(r.stats.refused, 1);
    // A name already asked for joins its query, full or not.
    const joined = r.lookup('n4.test').then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    assert.equal(r.stats.coalesced, 1);
    const results = await Promise.all([...accepted, joined]);
    const took = performance.now() - started;
    for (const m of results) assert.match(m, /timed out after 500 ms|did not answer in time/);
    assert.ok(took < 700, `every lookup ended by its timeout (queued ones too): ${took} ms`);
    assert.equal(r.stats.timedOut, 5);
    assert.deepEqual([r.stats.running, r.stats.waiting], [0, 0]);
    // Room again: a new name is accepted.
    dns.setMode({ kind: 'answer' });
    dns.zone['back.test'] = { a: ['192.0.2.9'] };
    assert.deepEqual(await r.lookup('back.test'), ['192.0.2.9']);
  });

  test('answers are cached for their TTL, clamped', async (t) => {
    const dns = await startDnsServer(t, {
      zone: {
        'short.test': { a: ['192.0.2.4'], ttl: 1 },
        'long.test': { a: ['192.0.2.5'], ttl: 3600 },
      },
    });
    const r = createResolver({
      servers: [dns.address],
      timeoutMs: 2000,
      limits: { maxTtlMs: 1500 },
    });
    assert.deepEqual(await r.lookup('short.test'), ['192.0.2.4']);
    assert.deepEqual(await r.lookup('SHORT.test'), ['192.0.2.4']);
    assert.deepEqual(await r.lookup('long.test'), ['192.0.2.5']);
    assert.equal(dns.queries, 4);
    assert.equal(r.stats.cacheHits, 1);
    await sleep(1100);
    await r.lookup('short.test');
    assert.equal(dns.queries, 6, 'the TTL of 1 s expired');
    await r.lookup('long.test');
    assert.equal(dns.queries, 6, 'the hour (clamped to 1.5 s) is not over');
    await sleep(500);
    await r.lookup('long.test');
    assert.equal(dns.queries, 8, 'the hour was clamped to 1.5 s');
  });

  test('"no such name" is cached briefly; a server failure is not', async (t) => {
    const dns = await startDnsServer(t, {
      rules: [{ match: /^broken/, mode: { kind: 'servfail' } }],
    });
    const r = createResolver({
      servers: [dns.address],
      timeoutMs: 2000,
      limits: { negativeTtlMs: 300 },
    });
    await assert.rejects(r.lookup('missing.test'), isDns(/no such host/));
    await assert.rejects(r.lookup('missing.test'), isDns(/no such host/));
    assert.equal(dns.queries, 2);
    assert.equal(r.stats.negativeHits, 1);
    await sleep(350);
    await assert.rejects(r.lookup('missing.test'), isDns(/no such host/));
    assert.equal(dns.queries, 4);
    await assert.rejects(r.lookup('broken.test'), isDns(/SERVFAIL/));
    await assert.rejects(r.lookup('broken.test'), isDns(/SERVFAIL/));
    assert.equal(dns.queries, 8, 'SERVFAIL asked again');
  });

  test('many lookups sharing one signal add one abort listener (no MaxListenersExceededWarning)', async (t) => {
    const dns = await startDnsServer(t, { mode: { kind: 'silent' } });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const r = createResolver({ servers: [dns.address], timeoutMs: 300 });
    // The pipeline's one signal, as every request passes it.
    const shared = new AbortController();
    await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => r.lookup(`m${i}.test`, shared.signal)),
    );
    await sleep(20);
    assert.deepEqual(
      warnings.filter((w) => w.includes('MaxListeners')),
      [],
    );
  });
});

describe('system configuration', () => {
  test('resolv.conf: nameservers (3 at most), the last search/domain line, ndots', () => {
    const c = parseResolvConf(
      '# comment\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\nsearch a.test b.test.\n' +
        'options ndots:2 timeout:1\nnameserver 127.0.0.2\nnameserver 127.0.0.3\n',
    );
    assert.deepEqual(c.servers, ['127.0.0.53', '[::1]', '127.0.0.2']);
    assert.deepEqual(c.search, ['a.test', 'b.test']);
    assert.equal(c.ndots, 2);
    assert.deepEqual(parseResolvConf('').servers, ['127.0.0.1']);
    assert.deepEqual(parseResolvConf('search x.test\ndomain y.test\n').search, ['y.test']);
  });

  test('hosts: names and aliases, lower case, comments ignored', () => {
    const h = parseHosts(
      '127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.0.2.1 Web.Test web # x\nnot-an-ip foo\n',
    );
    assert.deepEqual(h.get('localhost'), ['127.0.0.1', '::1']);
    assert.deepEqual(h.get('web.test'), ['192.0.2.1']);
    assert.deepEqual(h.get('web'), ['192.0.2.1']);
    assert.equal(h.get('foo'), undefined);
  });

  test('search list: before the name when it has fewer dots than ndots; none with a trailing dot', () => {
    const sys = { search: ['corp.test', 'lab.test'], ndots: 1 };
    assert.deepEqual(searchNames('intranet', sys), [
      'intranet.corp.test',
      'intranet.lab.test',
      'intranet',
    ]);
    assert.deepEqual(searchNames('www.example.test', sys), [
      'www.example.test',
      'www.example.test.corp.test',
      'www.example.test.lab.test',
    ]);
    assert.deepEqual(searchNames('abs.', sys), ['abs']);
  });

  test('no [dns] resolvers: /etc/hosts first, then the resolv.conf servers with the search list', async (t) => {
    // resolv.conf names no port: our server takes 53 on an address of its own (needs root).
    const host = `127.54.${(process.pid % 250) + 1}.${1 + Math.floor(Math.random() * 250)}`;
    let dns: Awaited<ReturnType<typeof startDnsServer>>;
    try {
      dns = await startDnsServer(t, {
        host,
        port: 53,
        zone: {
          'intranet.corp.test': { a: ['192.0.2.20'] },
          'www.example.test': { aaaa: ['2001:db8::20'] },
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') return t.skip('port 53 needs root');
      throw err;
    }
    const dir = tmpDir(t);
    const resolvConf = join(dir, 'resolv.conf');
    const hosts = join(dir, 'hosts');
    writeFileSync(resolvConf, `nameserver ${host}\nsearch corp.test\n`);
    writeFileSync(hosts, '192.0.2.30 pinned.test\n::1 localhost\n');
    const r = createResolver({ servers: [], timeoutMs: 2000, system: { resolvConf, hosts } });
    assert.deepEqual(await r.lookup('pinned.test'), ['192.0.2.30']);
    assert.deepEqual(await r.lookup('localhost'), ['::1']);
    assert.deepEqual(await r.lookup('app.localhost'), ['::1', '127.0.0.1']);
    assert.equal(dns.queries, 0, 'hosts entries and localhost need no query');
    assert.deepEqual(await r.lookup('intranet'), ['192.0.2.20']);
    assert.deepEqual(await r.lookup('www.example.test'), ['2001:db8::20']);
    await assert.rejects(r.lookup('missing.test'), isDns(/no such host/));
    assert.ok(dns.names.includes('missing.test.corp.test'));
  });
});
