import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { validateFields } from '../../../rpc/idl.js';
import { loadInterfaces } from '../../../rpc/interfaces.js';
import { splitMethod } from '../../../rpc/varlink-codec.js';
import { FakeBackend, RawClient, startServer, type TestServer } from './helpers.js';

const interfaces = loadInterfaces();

/** The reply conforms to the interface definitions: a defined error with its exact
 * parameters, or the method's exact output. Returns the reply for chaining. */
function wellFormed(method: string, reply: Record<string, unknown>): Record<string, unknown> {
  const params = (reply.parameters ?? {}) as Record<string, unknown>;
  if (typeof reply.error === 'string') {
    const [ifaceName, name] = splitMethod(reply.error) ?? ['', ''];
    const fields = interfaces.get(ifaceName)?.errors.get(name);
    assert.ok(fields, `undefined error ${reply.error}`);
    const iface = interfaces.get(ifaceName);
    assert.ok(iface);
    assert.equal(
      validateFields(iface, fields, params, { strict: true }),
      undefined,
      JSON.stringify(reply),
    );
  } else {
    const [ifaceName, name] = splitMethod(method) ?? ['', ''];
    const iface = interfaces.get(ifaceName);
    const m = iface?.methods.get(name);
    assert.ok(iface && m, method);
    assert.equal(
      validateFields(iface, m.output, params, { strict: true }),
      undefined,
      JSON.stringify(reply),
    );
  }
  return reply;
}

const ROOT = { pid: 1, uid: 0, gid: 0 };
const ALICE = { pid: 2, uid: 1000, gid: 1000 };

describe('control server: protocol errors', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ getPeerCred: () => ROOT });
  });
  after(() => srv.close());

  it('answers an unknown interface with InterfaceNotFound', async () => {
    const c = await RawClient.connect(srv.path);
    for (const method of ['org.example.Nope.Method', 'NoDotAtAll']) {
      const r = wellFormed(method, await c.call(method));
      assert.equal(r.error, 'org.varlink.service.InterfaceNotFound');
    }
    assert.deepEqual((await c.call('org.example.Nope.M')).parameters, {
      interface: 'org.example.Nope',
    });
    c.close();
  });

  it('answers an unknown method with MethodNotFound naming it', async () => {
    const c = await RawClient.connect(srv.path);
    const r = wellFormed('x', await c.call('fr.gouv.portail.Control.Reload'));
    assert.deepEqual(r, {
      error: 'org.varlink.service.MethodNotFound',
      parameters: { method: 'fr.gouv.portail.Control.Reload' },
    });
    c.close();
  });

  it('answers missing, mistyped and unknown parameters with InvalidParameter naming them', async () => {
    const c = await RawClient.connect(srv.path);
    const cases: [string, Record<string, unknown>, string][] = [
      ['org.varlink.service.GetInterfaceDescription', {}, 'interface'],
      ['org.varlink.service.GetInterfaceDescription', { interface: 3 }, 'interface'],
      ['fr.gouv.portail.Control.SetDefaultBackend', { backend_id: 7 }, 'backend_id'],
      ['fr.gouv.portail.Control.SetDefaultBackend', { backendId: 'par01' }, 'backendId'],
      ['fr.gouv.portail.Control.UpdateDynamicBackend', { backend_id: 'dyn' }, 'backend_spec'],
      [
        'fr.gouv.portail.Control.UpdateDynamicBackend',
        { backend_id: 'dyn', backend_spec: { target_address: '10.0.0.1:443' } },
        'backend_spec.identity_aware',
      ],
      ['io.portail.Control.Explain', { host: 'a', port: 'x' }, 'port'],
      ['io.portail.Control.Explain', { host: 'a', port: 70000 }, 'port'],
      ['io.portail.Control.Explain', { host: '' }, 'host'],
      ['io.portail.Control.Explain', { host: 'a', attrs: { k: 1 } }, 'attrs.k'],
      ['io.portail.Control.RecentDenials', { last: 0 }, 'last'],
      ['io.portail.Control.RecentDenials', { last: 1.5 }, 'last'],
    ];
    for (const [method, parameters, parameter] of cases) {
      const r = wellFormed(method, await c.call(method, parameters));
      assert.deepEqual(
        r,
        { error: 'org.varlink.service.InvalidParameter', parameters: { parameter } },
        `${method} ${JSON.stringify(parameters)}`,
      );
    }
    // Nothing reached the backend.
    assert.deepEqual(
      srv.backend.calls.filter((x) => !x.startsWith('list')),
      [],
    );
    c.close();
  });

  it('answers a call without a method, then keeps serving the connection', async () => {
    const c = await RawClient.connect(srv.path);
    c.send({ parameters: {} });
    assert.deepEqual(await c.next(), {
      error: 'org.varlink.service.InvalidParameter',
      parameters: { parameter: 'method' },
    });
    c.send({ method: 'a.B', more: 'yes' });
    assert.deepEqual(await c.next(), {
      error: 'org.varlink.service.InvalidParameter',
      parameters: { parameter: 'more' },
    });
    const r = await c.call('fr.gouv.portail.Control.GetCurrentBackend');
    assert.deepEqual(r, { parameters: { backend_id: 'par01' } });
    c.close();
  });

  it('answers malformed JSON with InvalidParameter, then closes', async () => {
    const c = await RawClient.connect(srv.path);
    c.write('{"method": "org.varlink.service.GetInfo",\0');
    c.send({ method: 'org.varlink.service.GetInfo' });
    assert.deepEqual(await c.next(), {
      error: 'org.varlink.service.InvalidParameter',
      parameters: { parameter: 'message' },
    });
    await c.waitClosed();
    await assert.rejects(c.next(200));
  });

  it('refuses a message over 1 MiB with an error, then closes, without waiting for its end', async () => {
    const c = await RawClient.connect(srv.path);
    c.write(
      `{"method":"org.varlink.service.GetInfo","parameters":{"x":"${'a'.repeat(1024 * 1024 + 10)}`,
    );
    assert.deepEqual(await c.next(), {
      error: 'org.varlink.service.InvalidParameter',
      parameters: { parameter: 'message-size' },
    });
    await c.waitClosed();
  });

  it('answers an upgrade request with InvalidParameter (no other protocol is offered)', async () => {
    const c = await RawClient.connect(srv.path);
    c.send({ method: 'org.varlink.service.GetInfo', upgrade: true });
    assert.deepEqual(await c.next(), {
      error: 'org.varlink.service.InvalidParameter',
      parameters: { parameter: 'upgrade' },
    });
    c.close();
  });

  it('answers pipelined calls in order, skips oneway replies, replies once to "more"', async () => {
    const c = await RawClient.connect(srv.path);
    c.write(
      Buffer.concat([
        Buffer.from(
          '{"method":"fr.gouv.portail.Control.SetDefaultBackend","parameters":{"backend_id":"squid"},"oneway":true}\0',
        ),
        Buffer.from('{"method":"fr.gouv.portail.Control.GetCurrentBackend","more":true}\0'),
        Buffer.from('{"method":"org.varlink.service.GetInfo"}\0'),
      ]),
    );
    assert.deepEqual(await c.next(), { parameters: { backend_id: 'squid' } });
    const info = await c.next();
    assert.equal((info.parameters as { product: string }).product, 'portail');
    await assert.rejects(c.next(200), /no reply/);
    srv.backend.setDefaultBackend('par01');
    c.close();
  });

  it('still answers calls sent just before the client half-closes', async () => {
    const c = await RawClient.connect(srv.path);
    c.send({ method: 'fr.gouv.portail.Control.ListBackends' });
    c.socket.end();
    const r = wellFormed('fr.gouv.portail.Control.ListBackends', await c.next());
    assert.equal((r.parameters as { backends: unknown[] }).backends.length, 3);
    await c.waitClosed();
  });
});

describe('control server: org.varlink.service', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ getPeerCred: () => ALICE, info: { version: '1.2.3' } });
  });
  after(() => srv.close());

  it('GetInfo names the product and every interface', async () => {
    const c = await RawClient.connect(srv.path);
    const r = wellFormed(
      'org.varlink.service.GetInfo',
      await c.call('org.varlink.service.GetInfo'),
    );
    assert.deepEqual(r.parameters, {
      vendor: 'portail',
      product: 'portail',
      version: '1.2.3',
      url: '',
      interfaces: ['org.varlink.service', 'fr.gouv.portail.Control', 'io.portail.Control'],
    });
    c.close();
  });

  it('GetInterfaceDescription returns each served .varlink file, InterfaceNotFound otherwise', async () => {
    const c = await RawClient.connect(srv.path);
    for (const name of ['org.varlink.service', 'fr.gouv.portail.Control', 'io.portail.Control']) {
      const r = wellFormed(
        'org.varlink.service.GetInterfaceDescription',
        await c.call('org.varlink.service.GetInterfaceDescription', { interface: name }),
      );
      const file = new URL(`../../../../rpc/${name}.varlink`, import.meta.url);
      assert.equal(
        (r.parameters as { description: string }).description,
        readFileSync(file, 'utf8'),
      );
    }
    const r = await c.call('org.varlink.service.GetInterfaceDescription', {
      interface: 'org.example.none',
    });
    assert.deepEqual(wellFormed('x', r), {
      error: 'org.varlink.service.InterfaceNotFound',
      parameters: { interface: 'org.example.none' },
    });
    c.close();
  });
});

describe('control server: fr.gouv.portail.Control', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ getPeerCred: () => ROOT });
  });
  after(() => srv.close());
  const call = async (method: string, parameters?: Record<string, unknown>) => {
    const c = await RawClient.connect(srv.path);
    try {
      return wellFormed(
        `fr.gouv.portail.Control.${method}`,
        await c.call(`fr.gouv.portail.Control.${method}`, parameters),
      );
    } finally {
      c.close();
    }
  };

  it('SetDefaultBackend to an unknown backend answers BackendNotFound with the available ones', async () => {
    assert.deepEqual(await call('SetDefaultBackend', { backend_id: 'nope' }), {
      error: 'fr.gouv.portail.Control.BackendNotFound',
      parameters: { provided_backend: 'nope', available_backends: ['par01', 'squid', 'dyn'] },
    });
    assert.deepEqual(await call('GetCurrentBackend'), { parameters: { backend_id: 'par01' } });
  });

  it('SetDefaultBackend sets, and null or an absent id unsets ("<none>")', async () => {
    assert.deepEqual(await call('SetDefaultBackend', { backend_id: 'squid' }), { parameters: {} });
    assert.deepEqual(await call('GetCurrentBackend'), { parameters: { backend_id: 'squid' } });
    assert.deepEqual(await call('SetDefaultBackend', { backend_id: null }), { parameters: {} });
    assert.deepEqual(await call('GetCurrentBackend'), { parameters: { backend_id: '<none>' } });
    await call('SetDefaultBackend', { backend_id: 'par01' });
    assert.deepEqual(await call('SetDefaultBackend'), { parameters: {} });
    assert.equal(srv.backend.defaultBackend, null);
    await call('SetDefaultBackend', { backend_id: 'par01' });
  });

  it('ListBackends lists every backend with upstream’s field names', async () => {
    assert.deepEqual(await call('ListBackends'), {
      parameters: {
        backends: [
          {
            id: 'par01',
            current: true,
            dynamic: false,
            spec: {
              target_address: '127.0.0.1:1081',
              identity_aware: true,
              tls_server_name: 'gw1.example.com',
            },
          },
          {
            id: 'squid',
            current: false,
            dynamic: false,
            spec: {
              target_address: '127.0.0.1:3128',
              identity_aware: false,
              tls_server_name: null,
            },
          },
          { id: 'dyn', current: false, dynamic: true, spec: null },
        ],
      },
    });
  });

  it('UpdateDynamicBackend: ImmutableBackend, BackendNotFound, InvalidBackend, then success', async () => {
    const spec = { target_address: '10.0.0.1:443', identity_aware: false, tls_server_name: null };
    assert.deepEqual(
      await call('UpdateDynamicBackend', { backend_id: 'par01', backend_spec: spec }),
      {
        error: 'fr.gouv.portail.Control.ImmutableBackend',
        parameters: {},
      },
    );
    assert.deepEqual(
      await call('UpdateDynamicBackend', { backend_id: 'zzz', backend_spec: spec }),
      {
        error: 'fr.gouv.portail.Control.BackendNotFound',
        parameters: { provided_backend: 'zzz', available_backends: ['par01', 'squid', 'dyn'] },
      },
    );
    const bad = await call('UpdateDynamicBackend', {
      backend_id: 'dyn',
      backend_spec: { ...spec, target_address: 'nope' },
    });
    assert.equal(bad.error, 'fr.gouv.portail.Control.InvalidBackend');
    assert.match((bad.parameters as { reason: string }).reason, /HOST:PORT/);
    assert.deepEqual(
      await call('UpdateDynamicBackend', {
        backend_id: 'dyn',
        backend_spec: {
          target_address: '[::1]:8443',
          identity_aware: true,
          tls_server_name: 'gw.example.com',
        },
      }),
      { parameters: {} },
    );
    const list = (await call('ListBackends')).parameters as {
      backends: { id: string; spec: unknown }[];
    };
    assert.deepEqual(list.backends.find((b) => b.id === 'dyn')?.spec, {
      target_address: '[::1]:8443',
      identity_aware: true,
      tls_server_name: 'gw.example.com',
    });
  });
});

describe('control server: io.portail.Control', () => {
  let srv: TestServer;
  let creds = ROOT;
  before(async () => {
    srv = await startServer({ getPeerCred: () => creds });
  });
  after(() => srv.close());
  const call = async (method: string, parameters?: Record<string, unknown>) => {
    const c = await RawClient.connect(srv.path);
    try {
      return wellFormed(
        `io.portail.Control.${method}`,
        await c.call(`io.portail.Control.${method}`, parameters),
      );
    } finally {
      c.close();
    }
  };

  it('Reload: a failure is ReloadFailed with the diagnostics', async () => {
    srv.backend.nextReload = { ok: false, diagnostics: 'filter.acl:1:1: error: unexpected "x"' };
    assert.deepEqual(await call('Reload'), {
      error: 'io.portail.Control.ReloadFailed',
      parameters: { diagnostics: 'filter.acl:1:1: error: unexpected "x"' },
    });
    srv.backend.nextReload = {
      ok: true,
      diagnostics: 'warning: unknown attribute x',
      aclHash: 'ef',
    };
    assert.deepEqual(await call('Reload'), {
      parameters: { acl_hash: 'ef', diagnostics: 'warning: unknown attribute x' },
    });
  });

  it('Status maps every field to the wire, with the uptime computed', async () => {
    const r = (await call('Status')).parameters as Record<string, unknown>;
    assert.equal(r.version, '9.9.9');
    assert.equal(r.pid, 4242);
    assert.ok((r.uptime_seconds as number) >= 3723 && (r.uptime_seconds as number) < 3800);
    assert.deepEqual(r.listeners, srv.backend.statusInfo.listeners);
    assert.deepEqual(r.acl, {
      file: '/etc/portail/filter.acl',
      hash: 'cd'.repeat(32),
      loaded_at: '2024-05-01T09:00:00.000Z',
      loaded: true,
    });
    assert.equal(r.explain_acl, null);
    assert.equal(r.active_connections, 7);
    assert.equal(r.default_backend, 'par01');
    assert.deepEqual(r.last_reload, {
      ok: false,
      at: '2024-05-01T09:30:00.000Z',
      diagnostics: 'filter.acl:3:5: error: expected "{"',
    });
  });

  it('a backend failure is InternalError (reported), never a broken reply', async () => {
    srv.backend.throwOnStatus = new Error('snapshot exploded');
    assert.deepEqual(await call('Status'), {
      error: 'io.portail.Control.InternalError',
      parameters: { message: 'snapshot exploded' },
    });
    srv.backend.throwOnStatus = undefined;
    assert.ok(srv.errors.some((e) => (e as Error).message === 'snapshot exploded'));
    // A backend returning data the interface cannot carry is refused the same way.
    const saved = srv.backend.statusInfo.activeConnections;
    srv.backend.statusInfo.activeConnections = 1.5;
    assert.equal((await call('Status')).error, 'io.portail.Control.InternalError');
    srv.backend.statusInfo.activeConnections = saved;
  });

  it('Explain: the caller’s uid when no user is named, port 443 by default, attrs passed on', async () => {
    creds = ALICE;
    const r = await call('Explain', {
      host: 'git.corp.example.com',
      attrs: { 'device.trust_level': '1' },
    });
    assert.equal((r.parameters as { action: string }).action, 'deny');
    assert.deepEqual((r.parameters as { failed: unknown[] }).failed, [
      {
        policy: 'eng_git',
        action: 'allow',
        clause: 'require',
        expression: 'device.trust_level >= 2',
        result: 'false',
        comparisons: [
          {
            text: 'device.trust_level >= 2',
            attribute: 'device.trust_level',
            seen: '1',
            result: 'false',
          },
        ],
      },
    ]);
    assert.deepEqual(srv.backend.explainRequests.at(-1), {
      host: 'git.corp.example.com',
      port: 443,
      uid: 1000,
      attrs: { 'device.trust_level': '1' },
      caller: ALICE,
    });
    await call('Explain', { host: 'x.example.com', port: 22, user: 'bob' });
    assert.deepEqual(srv.backend.explainRequests.at(-1), {
      host: 'x.example.com',
      port: 22,
      user: 'bob',
      attrs: {},
      caller: ALICE,
    });
    assert.deepEqual(await call('Explain', { host: 'bad..host' }), {
      error: 'io.portail.Control.InvalidRequest',
      parameters: { reason: '"bad..host" is not a valid host name' },
    });
    creds = ROOT;
  });

  it('RecentDenials: a user sees only their own; asking for another uid is refused', async () => {
    creds = ALICE;
    const mine = (await call('RecentDenials')).parameters as {
      denials: { uid: number; host: string }[];
    };
    assert.deepEqual(
      mine.denials.map((d) => [d.uid, d.host]),
      [
        [1000, 'a.example.com'],
        [1000, 'c.example.com'],
      ],
    );
    assert.deepEqual(srv.backend.denialQueries.at(-1), [1000, 20]);
    const one = (await call('RecentDenials', { last: 1, uid: 1000 })).parameters as {
      denials: { host: string }[];
    };
    assert.deepEqual(
      one.denials.map((d) => d.host),
      ['c.example.com'],
    );
    const before = srv.backend.denialQueries.length;
    assert.deepEqual(await call('RecentDenials', { uid: 1001 }), {
      error: 'io.portail.Control.PermissionDenied',
      parameters: {},
    });
    assert.equal(srv.backend.denialQueries.length, before);
    assert.deepEqual(srv.refused.at(-1), {
      method: 'io.portail.Control.RecentDenials',
      creds: ALICE,
    });
    creds = ROOT;
  });

  it('RecentDenials: root sees everyone’s, or one uid’s', async () => {
    const all = (await call('RecentDenials', { last: 1000 })).parameters as {
      denials: Record<string, unknown>[];
    };
    assert.equal(all.denials.length, 3);
    assert.deepEqual(all.denials[1], {
      time: '2024-05-01T10:01:00.000Z',
      uid: 1001,
      user: 'bob',
      process: null,
      host: 'b.example.com',
      port: 80,
      protocol: null,
      policy: null,
      reason: 'no policy matched',
      explanation: 'no policy matched',
      trace_id: null,
    });
    assert.deepEqual(srv.backend.denialQueries.at(-1), [null, 1000]);
    await call('RecentDenials', { uid: 1001 });
    assert.deepEqual(srv.backend.denialQueries.at(-1), [1001, 20]);
  });
});

describe('control server: authorization hook and peer credentials', () => {
  it('refuses with the interface’s PermissionDenied, reports the call, never reaches the backend', async () => {
    const seen: string[] = [];
    const srv = await startServer({
      getPeerCred: () => ALICE,
      authorize: (creds, call) => {
        seen.push(`${creds?.uid}:${call.method}`);
        return call.method.endsWith('.GetCurrentBackend');
      },
    });
    try {
      const c = await RawClient.connect(srv.path);
      const cases: [string, Record<string, unknown>, string][] = [
        [
          'fr.gouv.portail.Control.SetDefaultBackend',
          { backend_id: 'squid' },
          'fr.gouv.portail.Control.PermissionDenied',
        ],
        [
          'fr.gouv.portail.Control.UpdateDynamicBackend',
          {},
          'fr.gouv.portail.Control.PermissionDenied',
        ],
        ['io.portail.Control.Reload', {}, 'io.portail.Control.PermissionDenied'],
        ['org.varlink.service.GetInfo', {}, 'org.varlink.service.PermissionDenied'],
      ];
      for (const [method, parameters, error] of cases) {
        assert.deepEqual(wellFormed(method, await c.call(method, parameters)), {
          error,
          parameters: {},
        });
      }
      assert.deepEqual((await c.call('fr.gouv.portail.Control.GetCurrentBackend')).parameters, {
        backend_id: 'par01',
      });
      assert.deepEqual(
        srv.refused.map((r) => r.method),
        cases.map((x) => x[0]),
      );
      assert.ok(srv.refused.every((r) => r.creds === ALICE));
      assert.deepEqual(srv.backend.calls, ['listBackends']);
      assert.equal(seen.length, 5);
      c.close();
    } finally {
      await srv.close();
    }
  });

  it('an authorizer that throws refuses; unknown peer credentials reach the authorizer as null', async () => {
    const srv = await startServer({
      getPeerCred: () => {
        throw new Error('no SO_PEERCRED');
      },
      authorize: (creds) => {
        if (creds === null) throw new Error('boom');
        return true;
      },
    });
    try {
      const c = await RawClient.connect(srv.path);
      const r = await c.call('io.portail.Control.Reload');
      assert.deepEqual(r, { error: 'io.portail.Control.PermissionDenied', parameters: {} });
      assert.deepEqual(srv.refused, [{ method: 'io.portail.Control.Reload', creds: null }]);
      assert.ok(srv.errors.some((e) => (e as Error).message === 'no SO_PEERCRED'));
      c.close();
    } finally {
      await srv.close();
    }
  });

  it('by default reads the real peer credentials (SO_PEERCRED)', async () => {
    let got: unknown;
    const srv = await startServer({
      getPeerCred: undefined,
      authorize: (creds) => {
        got = creds;
        return false;
      },
    });
    try {
      const c = await RawClient.connect(srv.path);
      await c.call('io.portail.Control.Reload');
      assert.deepEqual(got, { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
      c.close();
    } finally {
      await srv.close();
    }
  });
});

describe('control server: load', () => {
  it('serves 50 concurrent clients, each with several calls', async () => {
    const srv = await startServer({ getPeerCred: () => ROOT });
    try {
      const clients = await Promise.all(
        Array.from({ length: 50 }, () => RawClient.connect(srv.path)),
      );
      const results = await Promise.all(
        clients.map(async (c, i) => {
          const id = i % 2 ? 'squid' : 'par01';
          c.send({ method: 'org.varlink.service.GetInfo' });
          c.send({ method: 'fr.gouv.portail.Control.ListBackends' });
          c.send({
            method: 'io.portail.Control.Explain',
            parameters: { host: `h${i}.example.com` },
          });
          c.send({
            method: 'fr.gouv.portail.Control.SetDefaultBackend',
            parameters: { backend_id: id },
          });
          const replies = [await c.next(), await c.next(), await c.next(), await c.next()];
          return replies.map((r) =>
            r.error ? String(r.error) : Object.keys(r.parameters as object)[0],
          );
        }),
      );
      for (const r of results) assert.deepEqual(r, ['vendor', 'backends', 'action', undefined]);
      assert.equal(srv.control.connectionCount, 50);
      assert.equal(srv.backend.explainRequests.length, 50);
      for (const c of clients) c.close();
    } finally {
      await srv.close();
    }
  });

  it('limits non-root connections per uid and in total; root is never refused', async () => {
    // Each connection's uid comes from a queue the test fills before connecting.
    const uids: number[] = [];
    const refusals: [number | null, string][] = [];
    const srv = await startServer({
      getPeerCred: () => {
        const uid = uids.shift() ?? 0;
        return { pid: 1, uid, gid: uid };
      },
      maxConnections: 3,
      maxConnectionsPerUser: 2,
      onConnectionRefused: (uid, detail) => refusals.push([uid, detail]),
    });
    const open = async (uid: number) => {
      uids.push(uid);
      const c = await RawClient.connect(srv.path);
      try {
        await c.call('org.varlink.service.GetInfo');
      } catch {}
      return c;
    };
    try {
      const a1 = await open(1000);
      const a2 = await open(1000);
      const a3 = await open(1000);
      assert.equal(a3.closed, true, 'third connection of one uid');
      assert.equal(a1.closed || a2.closed, false);
      const b1 = await open(1001);
      assert.equal(b1.closed, false);
      const c1 = await open(1002);
      assert.equal(c1.closed, true, 'fourth non-root connection');
      const roots = await Promise.all([open(0), open(0), open(0), open(0)]);
      assert.ok(roots.every((r) => !r.closed));
      // Told to the daemon as a refusal (it rate-limits them), not as an error.
      assert.deepEqual(refusals, [
        [1000, '2 open for that uid, 2 in all'],
        [1002, '0 open for that uid, 3 in all'],
      ]);
      assert.deepEqual(srv.errors, []);
      a1.close();
      await new Promise((r) => setTimeout(r, 50));
      const a4 = await open(1000);
      assert.equal(a4.closed, false, 'a slot was freed');
      for (const c of [a2, a4, b1, ...roots]) c.close();
    } finally {
      await srv.close();
    }
  });

  it('closes an idle connection', async () => {
    const srv = await startServer({ getPeerCred: () => ROOT, idleTimeoutMs: 100 });
    try {
      const a = await RawClient.connect(srv.path);
      await a.waitClosed(2000);
    } finally {
      await srv.close();
    }
  });
});

describe('bindControlSocket', () => {
  it('replaces a stale socket, refuses a live one and a non-socket file', async () => {
    const { bindControlSocket } = await import('../../../rpc/bind.js');
    const { writeFileSync, statSync, renameSync, lstatSync } = await import('node:fs');
    const net = await import('node:net');
    const srv = await startServer({ backend: new FakeBackend() });
    try {
      await assert.rejects(bindControlSocket(srv.path), /already listening/);
      const file = `${srv.dir}/plain`;
      writeFileSync(file, 'x');
      await assert.rejects(bindControlSocket(file), /not a socket/);
      // A stale socket file, as a crashed daemon leaves it: libuv unlinks the path when a
      // server closes, so move the file away during the close and put it back.
      const stalePath = `${srv.dir}/stale`;
      const dead = net.createServer();
      await new Promise<void>((r) => dead.listen(stalePath, () => r()));
      renameSync(stalePath, `${stalePath}.moved`);
      await new Promise<void>((r) => dead.close(() => r()));
      renameSync(`${stalePath}.moved`, stalePath);
      assert.ok(lstatSync(stalePath).isSocket());
      const fresh = await bindControlSocket(stalePath);
      assert.equal(statSync(stalePath).mode & 0o777, 0o666);
      await new Promise<void>((r) => fresh.close(() => r()));
    } finally {
      await srv.close();
    }
  });
});
