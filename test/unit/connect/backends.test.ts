// The backend registry and the candidate loop: back-off (5 s doubling to 60 s, reset on
// success), which failures count against a backend, dynamic addresses, health views,
// and connects against real loopback sockets (refused, no address, timeout).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import type { BackendConfig } from '../../../proxy/config/types.js';
import { type BackendSnapshot, createBackendRegistry } from '../../../proxy/connect/backends.js';
import { BackendError, describeFailures, tryCandidates } from '../../../proxy/connect/failover.js';
import { createResolver } from '../../../proxy/net/resolver.js';
import { ConnectError } from '../../../proxy/types.js';

function snapshot(backends: Partial<BackendConfig>[], connectTimeoutMs = 1000): BackendSnapshot {
  return {
    config: {
      connectTimeoutMs,
      tcpNodelay: true,
      escaper: {},
      listener: { proxyProtocol: false, requireTls: false },
    },
    backends: new Map(
      backends.map((b) => [
        b.name as string,
        { dynamic: false, identityAware: false, agent: false, ...b } as BackendConfig,
      ]),
    ),
    services: { resolver: createResolver({ servers: [], timeoutMs: 1000 }) },
  };
}

const fault = (name: string) => new BackendError('refused', `${name} refused`, name, true);

test('back-off: 5 s doubling to 60 s, reset by a success', () => {
  let now = 1_000_000;
  const r = createBackendRegistry({ now: () => now });
  r.update(snapshot([{ name: 'a' }]));
  assert.equal(r.backedOff('a'), false);
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    r.reportFailure('a', fault('a'));
    const retry = r.healthOf('a').retryAt?.getTime() as number;
    waits.push(retry - now);
    assert.equal(r.backedOff('a'), true);
    now = retry - 1;
    assert.equal(r.backedOff('a'), true);
    now = retry;
    assert.equal(r.backedOff('a'), false);
  }
  assert.deepEqual(waits, [5000, 10_000, 20_000, 40_000, 60_000, 60_000]);
  const h = r.healthOf('a');
  assert.equal(h.consecutiveFailures, 6);
  assert.equal(h.lastError, 'a refused');
  r.reportSuccess('a');
  assert.equal(r.healthOf('a').consecutiveFailures, 0);
  r.reportFailure('a', fault('a'));
  assert.equal((r.healthOf('a').retryAt?.getTime() as number) - now, 5000);
});

test('a destination failure reported by a healthy backend does not back it off', () => {
  const r = createBackendRegistry();
  r.update(snapshot([{ name: 'a' }]));
  r.reportFailure('a', new BackendError('unreachable', 'host unreachable', 'a', false));
  assert.equal(r.backedOff('a'), false);
  assert.equal(r.healthOf('a').healthy, true);
  assert.equal(r.healthOf('a').lastError, 'host unreachable');
  // Anything else (not classified) is the backend's fault.
  r.reportFailure('a', new ConnectError('internal', 'garbage'));
  assert.equal(r.backedOff('a'), true);
});

test('health lists configured backends in order; reload forgets removed and non-dynamic ones', () => {
  const r = createBackendRegistry();
  r.update(snapshot([{ name: 'b' }, { name: 'a' }, { name: 'd', dynamic: true }]));
  r.reportFailure('a', fault('a'));
  r.setDynamic('d', { targetAddress: { host: '127.0.0.1', port: 9 }, identityAware: false });
  assert.deepEqual(
    r.health().map((h) => [h.name, h.healthy]),
    [
      ['b', true],
      ['a', false],
      ['d', true],
    ],
  );
  assert.equal(r.dynamicSpec('d')?.targetAddress.port, 9);
  r.update(snapshot([{ name: 'b' }, { name: 'd', dynamic: false }]));
  assert.deepEqual(
    r.health().map((h) => h.name),
    ['b', 'd'],
  );
  assert.equal(r.dynamicSpec('d'), undefined);
  assert.equal(r.healthOf('a').consecutiveFailures, 0);
});

test('a new dynamic address starts healthy', () => {
  const r = createBackendRegistry();
  r.update(snapshot([{ name: 'd', dynamic: true }]));
  r.reportFailure('d', fault('d'));
  assert.equal(r.backedOff('d'), true);
  r.setDynamic('d', { targetAddress: { host: '127.0.0.1', port: 1080 }, identityAware: false });
  assert.equal(r.backedOff('d'), false);
});

test('connect: dynamic backend without an address, refused port, unknown backend', async () => {
  const r = createBackendRegistry();
  const dead = net.createServer().listen(0, '127.0.0.1');
  await once(dead, 'listening');
  const port = (dead.address() as net.AddressInfo).port;
  dead.close();
  const snap = snapshot([
    { name: 'd', dynamic: true, type: 'socks5' },
    { name: 'x', type: 'socks5', targetAddress: { host: '127.0.0.1', port } },
  ]);
  r.update(snap);
  const signal = new AbortController().signal;
  const target = { host: 'example.com', port: 80 };
  await assert.rejects(r.connect(snap, 'd', target, { protocol: 'socks5', signal }), (e) => {
    assert.ok(e instanceof BackendError);
    assert.equal(e.reason, 'unreachable');
    assert.equal(e.backendFault, true);
    assert.match(e.message, /no address yet/);
    return true;
  });
  await assert.rejects(r.connect(snap, 'x', target, { protocol: 'http', signal }), (e) => {
    assert.ok(e instanceof BackendError);
    assert.equal(e.reason, 'refused');
    assert.equal(e.backendFault, true);
    assert.match(e.message, /backend x \(127\.0\.0\.1:\d+\)/);
    return true;
  });
  await assert.rejects(r.connect(snap, 'nope', target, { protocol: 'http', signal }), /unknown/);
});

test('connect: an upstream that accepts but never answers times out within connect-timeout', async (t) => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s)).listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as net.AddressInfo).port;
  const r = createBackendRegistry();
  const snap = snapshot([{ name: 's', targetAddress: { host: '127.0.0.1', port } }], 300);
  r.update(snap);
  for (const protocol of ['socks5', 'http'] as const) {
    const t0 = Date.now();
    await assert.rejects(
      r.connect(
        snap,
        's',
        { host: 'example.com', port: 443 },
        { protocol, signal: new AbortController().signal },
      ),
      (e) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.reason, 'timeout', `${protocol}: ${e.message}`);
        return true;
      },
    );
    const took = Date.now() - t0;
    assert.ok(took >= 280 && took < 1500, `${protocol} took ${took} ms`);
  }
});

test('concurrent backend connects sharing one signal add one abort listener to it', async (t) => {
  // The pipeline passes one signal to every request: a listener per attempt on it gave
  // MaxListenersExceededWarning past 10 concurrent connects (issue 18).
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s)).listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => {
    process.off('warning', onWarning);
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as net.AddressInfo).port;
  const r = createBackendRegistry();
  const snap = snapshot([{ name: 's', targetAddress: { host: '127.0.0.1', port } }], 300);
  r.update(snap);
  const shared = new AbortController();
  await Promise.allSettled(
    Array.from({ length: 30 }, () =>
      r.connect(
        snap,
        's',
        { host: 'example.com', port: 443 },
        { protocol: 'socks5', signal: shared.signal },
      ),
    ),
  );
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    warnings.filter((w) => w.includes('MaxListeners')),
    [],
  );
});

test('tryCandidates: in order, backed-off skipped, all backed off = all tried, direct never skipped', async () => {
  const r = createBackendRegistry();
  r.update(snapshot([{ name: 'a' }, { name: 'b' }, { name: 'c' }]));
  const tried: string[] = [];
  const open = async (name: string) => {
    tried.push(name);
    if (name !== 'c' && name !== 'direct') throw fault(name);
    return name;
  };
  const first = await tryCandidates(['a', 'b', 'c'], open, r);
  assert.equal(first.ok && first.backend, 'c');
  assert.deepEqual(tried, ['a', 'b', 'c']);
  assert.equal(r.backedOff('a') && r.backedOff('b'), true);
  tried.length = 0;
  const second = await tryCandidates(['a', 'b', 'c'], open, r);
  assert.deepEqual(tried, ['c']);
  assert.ok(second.ok);
  assert.deepEqual(second.skipped, ['a', 'b']);
  assert.match(describeFailures(second), /skipped \(backing off\): a, b/);
  tried.length = 0;
  const none = await tryCandidates(['a', 'b'], open, r);
  assert.deepEqual(tried, ['a', 'b']);
  assert.equal(none.ok, false);
  assert.equal(none.failures.length, 2);
  tried.length = 0;
  const withDirect = await tryCandidates(['a', 'direct'], open, r);
  assert.deepEqual(tried, ['direct']);
  assert.equal(withDirect.ok && withDirect.backend, 'direct');
});

test('tryCandidates: a success resets the back-off; an abort stops the loop', async () => {
  const r = createBackendRegistry();
  r.update(snapshot([{ name: 'a' }, { name: 'b' }]));
  r.reportFailure('a', fault('a'));
  const ok = await tryCandidates(['a'], async () => 1, r);
  assert.ok(ok.ok);
  assert.equal(r.backedOff('a'), false);
  const ac = new AbortController();
  const tried: string[] = [];
  const out = await tryCandidates(
    ['a', 'b'],
    async (n) => {
      tried.push(n);
      ac.abort();
      throw fault(n);
    },
    r,
    ac.signal,
  );
  assert.equal(out.ok, false);
  assert.deepEqual(tried, ['a']);
  // Shutting down is not the backend's fault.
  assert.equal(r.backedOff('a'), false);
});
