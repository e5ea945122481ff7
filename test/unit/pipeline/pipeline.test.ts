// The pipeline with real state (config + ACL files), real context, real direct
// connector and real loopback origins: decisions, refusals and their messages, audit
// records, DNS pinning, re-evaluation on reload, shutdown.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { createSocketTable } from '../../../proxy/context/socket-table.js';
import { createPipeline, type DataPlane } from '../../../proxy/pipeline/index.js';
import { createState, type State } from '../../../proxy/state/index.js';
import { client, config, echoServer, Lines, listen, Records, sleep, tempDir } from './helpers.js';

const SPEC_FIELDS = [
  'event',
  'trace_id',
  'protocol',
  'client',
  'uid',
  'user',
  'process',
  'device',
  'host',
  'port',
  'action',
  'policy',
  'route',
  'reason',
  'tags',
  'eval_us',
];

const tmp = tempDir();
let origin: Awaited<ReturnType<typeof echoServer>>;
let originConnections = 0;
after(() => {
  origin?.close();
  tmp.cleanup();
});
before(async () => {
  origin = await echoServer();
  origin.server.on('connection', () => {
    originConnections++;
  });
});

async function setup(acl: string | null, extraConfig = '', files: Record<string, string> = {}) {
  const name = `c${Math.random().toString(36).slice(2)}`;
  for (const [f, text] of Object.entries(files)) tmp.write(f, text);
  const aclPath = acl === null ? null : tmp.write(`${name}.acl`, acl);
  const cfg = tmp.write(
    `${name}.toml`,
    config(aclPath ?? `${tmp.dir}/missing.acl`, `watch-acl = false\n${extraConfig}`),
  );
  const records = new Records();
  const log = new Lines();
  const state: State = await createState({ configPath: cfg, log, audit: records });
  const pipeline: DataPlane = createPipeline({
    state,
    audit: records,
    log,
    socketTable: createSocketTable(),
  });
  state.onSwap((next) => pipeline.reevaluate(next).then(() => undefined));
  return { state, pipeline, records, log, aclPath, cfg };
}

test('no valid ACL at start: everything is denied, nothing is connected', async () => {
  const { pipeline, records, log } = await setup(null);
  assert.ok(log.lines.some((l) => l.startsWith('error:') && l.includes('EVERY REQUEST IS DENIED')));
  assert.equal(records.of('error').length, 1);
  const before = originConnections;
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  const r = await c.refusal;
  assert.equal(r.reason, 'denied');
  assert.match(r.message, /^no policy matched/);
  const [d] = records.of('decision');
  assert.equal(d.action, 'deny');
  assert.equal(originConnections, before);
  c.close();
});

test('deny: the refusal names the policy, one decision record with every field, no close record', async () => {
  const { pipeline, records } = await setup(`
policy allow_other { when port == 1 action allow }
policy deny_all { action deny }
`);
  const before = originConnections;
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  assert.deepEqual(await c.refusal, { reason: 'denied', message: 'denied by policy deny_all' });
  await sleep(50);
  assert.equal(originConnections, before, 'a denied request never reaches the origin');
  const decisions = records.of('decision');
  assert.equal(decisions.length, 1);
  const d = decisions[0];
  for (const f of SPEC_FIELDS) assert.ok(f in d, `field ${f}`);
  assert.equal(d.action, 'deny');
  assert.equal(d.policy, 'deny_all');
  assert.equal(d.host, '127.0.0.1');
  assert.equal(d.port, origin.port);
  assert.equal(d.protocol, 'socks5');
  assert.equal(d.route, 'direct');
  assert.match(String(d.client), /^127\.0\.0\.1:\d+$/);
  // A denial always says who, even when no rule asked.
  assert.equal(d.uid, process.getuid?.());
  assert.equal(typeof d.user, 'string');
  assert.equal(typeof d.eval_us, 'number');
  assert.match(String(d.trace_id), /^[0-9a-f]{32}$/);
  assert.equal(records.of('close').length, 0);
  c.close();
});

test('no policy matched', async () => {
  const { pipeline } = await setup('policy p { when port == 1 action allow }\n');
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  assert.deepEqual(await c.refusal, { reason: 'denied', message: 'no policy matched' });
  c.close();
});

test('redirect: the refusal carries the URI', async () => {
  const { pipeline, records } = await setup(
    'policy r { action redirect "https://help.example/proxy" }\n',
  );
  const c = await client({ host: 'example.com', port: 80 });
  await pipeline.tunnel(c.req);
  const r = await c.refusal;
  assert.equal(r.redirect, 'https://help.example/proxy');
  assert.equal(records.of('decision')[0].action, 'redirect');
  c.close();
});

test('explain ACL: allow = full detail, deny = generic, redirect = help page', async () => {
  const acl = `
policy needs_group { when port == ${origin.port} require client.port == 1 action allow }
policy deny_all { action deny }
`;
  for (const [explain, check] of [
    [
      'policy show { action allow }',
      (m: string) => {
        assert.match(m, /denied by policy deny_all/);
        assert.match(m, /needs_group/);
        assert.match(m, /client\.port == 1/);
      },
    ],
    [
      'policy hide { action deny }',
      (m: string) => {
        assert.doesNotMatch(m, /deny_all|needs_group/);
      },
    ],
  ] as const) {
    const explainFile = `e${Math.random().toString(36).slice(2)}.acl`;
    const { pipeline } = await setup(acl, `explain-acl-rules-path = "${explainFile}"`, {
      [explainFile]: `${explain}\n`,
    });
    const c = await client({ host: '127.0.0.1', port: origin.port });
    await pipeline.tunnel(c.req);
    const r = await c.refusal;
    assert.equal(r.reason, 'denied');
    check(r.message);
    c.close();
  }
  const explainFile = 'help.acl';
  const { pipeline } = await setup(acl, `explain-acl-rules-path = "${explainFile}"`, {
    [explainFile]: 'policy help { action redirect "https://help.example/denied" }\n',
  });
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  const r = await c.refusal;
  assert.equal(r.redirect, 'https://help.example/denied');
  assert.doesNotMatch(r.message, /deny_all/);
  c.close();
});

test('a dead backend without fallback-to-direct: refused, allow + connect_error close', async () => {
  const { pipeline, records } = await setup(
    `route r { use ["par01"] }\npolicy a { action allow }\n`,
    `fallback-to-direct = false\n[backends.par01]\ntype = "socks5"\ntarget-address = "127.0.0.1:9"\n`,
  );
  const before = originConnections;
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  const r = await c.refusal;
  assert.equal(r.reason, 'refused');
  assert.match(r.message, /par01/);
  assert.equal(originConnections, before);
  assert.equal(records.of('decision')[0].route, 'par01');
  assert.equal(records.of('close')[0].close_reason, 'connect_error');
  c.close();
});

test('connect failure: reason refused, close record with connect_error', async () => {
  const { pipeline, records } = await setup('policy a { action allow }\n');
  const dead = await listen(() => {});
  const port = dead.port;
  dead.close();
  await sleep(20);
  const c = await client({ host: '127.0.0.1', port });
  await pipeline.tunnel(c.req);
  const r = await c.refusal;
  assert.equal(r.reason, 'refused');
  const close = records.of('close')[0];
  assert.equal(close.close_reason, 'connect_error');
  assert.equal(close.trace_id, records.of('decision')[0].trace_id);
  c.close();
});

test('allow: bytes relayed; decision and close share the trace id; uid known when the ACL asks', async () => {
  const { pipeline, records } = await setup(
    `policy mine { when client.uid == ${process.getuid?.() ?? 0} action allow log "mine" }\n`,
  );
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  const bound = await c.accepted;
  assert.equal(bound.address, '127.0.0.1');
  c.user.write('hello');
  const [echo] = await once(c.user, 'data');
  assert.equal(echo.toString(), 'hello');
  c.user.end();
  const close = await records.waitFor((r) => r.event === 'close');
  const d = records.of('decision')[0];
  assert.equal(d.action, 'allow');
  assert.equal(d.uid, process.getuid?.());
  assert.deepEqual(d.tags, ['mine']);
  assert.equal(close.trace_id, d.trace_id);
  assert.equal(close.bytes_up, 5);
  assert.equal(close.bytes_down, 5);
  assert.equal(close.close_reason, 'completed');
  assert.equal(typeof close.duration_ms, 'number');
  assert.equal(close.policy, 'mine');
  c.close();
});

test('dst.ip: judged on the resolved address; a DNS failure is reported as such', async () => {
  const { pipeline, records } = await setup(`
policy private_only { when dst.ip in ["10.0.0.0/8"] action allow }
policy loop { when dst.ip == "127.0.0.1" and port == ${origin.port} action allow }
`);
  const c = await client({ host: 'localhost', port: origin.port });
  await pipeline.tunnel(c.req);
  await c.accepted;
  c.user.write('x');
  await once(c.user, 'data');
  assert.equal(records.of('decision')[0].policy, 'loop');
  c.close();
  const bad = await client({ host: 'does-not-exist.invalid', port: origin.port });
  await pipeline.tunnel(bad.req);
  const r = await bad.refusal;
  assert.equal(r.reason, 'dns');
  assert.equal(records.of('decision')[1].action, 'deny');
  bad.close();
});

test('reload re-evaluates open relays: a now-denied one closes with policy_changed', async () => {
  const { pipeline, records, state, aclPath } = await setup(
    `policy a { when port == ${origin.port} action allow }\n`,
  );
  const c1 = await client({ host: '127.0.0.1', port: origin.port });
  const c2 = await client({ host: 'localhost', port: origin.port });
  await pipeline.tunnel(c1.req);
  await pipeline.tunnel(c2.req);
  await Promise.all([c1.accepted, c2.accepted]);
  assert.equal(pipeline.active, 2);
  tmp.write(
    String(aclPath).split('/').pop() as string,
    `policy keep { when host == "localhost" action allow }\npolicy no { action deny }\n`,
  );
  const res = await state.reload('rpc');
  assert.equal(res.ok, true);
  const close = await records.waitFor((r) => r.event === 'close');
  assert.equal(close.close_reason, 'policy_changed');
  assert.equal(close.host, '127.0.0.1');
  assert.match(String(close.reason), /denied by policy no/);
  // The other relay is still allowed and still works.
  c2.user.write('still here');
  const [echo] = await once(c2.user, 'data');
  assert.equal(echo.toString(), 'still here');
  assert.equal(pipeline.active, 1);
  c1.close();
  c2.close();
});

test('re-evaluation of many relays runs in slices: other work gets turns, every relay is judged', async () => {
  const { pipeline, records, state, aclPath } = await setup(
    `policy a { when port == ${origin.port} action allow }\n`,
  );
  const half = 260; // more than one slice on each side
  const clients: Awaited<ReturnType<typeof client>>[] = [];
  try {
    for (let i = 0; i < 2 * half; i++) {
      const c = await client({ host: i % 2 ? 'localhost' : '127.0.0.1', port: origin.port });
      await pipeline.tunnel(c.req);
      await c.accepted;
      clients.push(c);
    }
    tmp.write(
      String(aclPath).split('/').pop() as string,
      `policy keep { when host == "localhost" action allow }\npolicy no { action deny }\n`,
    );
    assert.equal((await state.reload('rpc')).ok, true);
    await records.waitFor(() => records.of('close').length === half);
    assert.ok(records.of('close').every((r) => r.close_reason === 'policy_changed'));
    assert.equal(pipeline.active, half);
    // The event loop turns while the remaining relays are checked again (one go: none).
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const res = await pipeline.reevaluate(state.current());
    ticking = false;
    assert.deepEqual(res, { checked: half, closed: 0 });
    assert.ok(turns >= 1, `event-loop turns during re-evaluation: ${turns}`);
  } finally {
    for (const c of clients) c.close();
  }
});

test('stopping: new requests are refused as overloaded; drain and closeAll end open relays', async () => {
  const { pipeline, records } = await setup('policy a { action allow }\n');
  const c = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(c.req);
  await c.accepted;
  pipeline.stopAccepting();
  const late = await client({ host: '127.0.0.1', port: origin.port });
  await pipeline.tunnel(late.req);
  assert.equal((await late.refusal).reason, 'overloaded');
  assert.equal(await pipeline.drain(100), false);
  pipeline.closeAll('shutdown');
  assert.equal(await pipeline.drain(1000), true);
  const close = await records.waitFor((r) => r.event === 'close');
  assert.equal(close.close_reason, 'shutdown');
  c.close();
  late.close();
});

test('forward (plain HTTP): refusal or an upstream; finish() writes the close record', async () => {
  const { pipeline, records } = await setup(
    `policy get_only { when proxy.cmd == "forward" and method == "GET" action allow }\npolicy no { action deny }\n`,
  );
  const base = {
    target: { host: '127.0.0.1', port: origin.port },
    protocol: 'http' as const,
    cmd: 'forward' as const,
    client: {
      ip: '127.0.0.1',
      port: 40000,
      localIp: '127.0.0.1',
      localPort: 1080,
      auth: 'none' as const,
    },
  };
  const denied = await pipeline.forward({
    ...base,
    http: { method: 'POST', scheme: 'http', path: '/', query: '' },
  });
  assert.equal(denied.ok, false);
  if (!denied.ok) assert.equal(denied.refusal.message, 'denied by policy no');
  const ok = await pipeline.forward({
    ...base,
    http: { method: 'GET', scheme: 'http', path: '/x', query: 'a=1' },
  });
  assert.equal(ok.ok, true);
  if (!ok.ok) return;
  ok.upstream.write('ping');
  const [echo] = await once(ok.upstream, 'data');
  assert.equal(echo.toString(), 'ping');
  assert.equal(pipeline.active, 1);
  ok.finish({ bytesUp: 4, bytesDown: 4, closeReason: 'completed' });
  ok.finish({ bytesUp: 9, bytesDown: 9, closeReason: 'again' }); // once only
  ok.upstream.destroy();
  assert.equal(pipeline.active, 0);
  const closes = records.of('close');
  assert.equal(closes.length, 1);
  assert.equal(closes[0].bytes_up, 4);
  assert.equal(closes[0].close_reason, 'completed');
  assert.equal(closes[0].trace_id, records.of('decision')[1].trace_id);
});

test('associate: a decision record for the association and one per destination; one close record with its trace id', async () => {
  const { pipeline, records } = await setup('policy dns { when port == 53 action allow }\n');
  const req = {
    target: { host: '0.0.0.0', port: 0 },
    protocol: 'socks5' as const,
    cmd: 'udp_associate' as const,
    client: {
      ip: '127.0.0.1',
      port: 40000,
      localIp: '127.0.0.1',
      localPort: 1080,
      auth: 'none' as const,
    },
  };
  const forgotten: string[] = [];
  const session = await pipeline.associate(req, {
    close() {},
    forgetDecisions: () => forgotten.push('x'),
  });
  assert.ok('decide' in session, 'a session, not a refusal');
  assert.deepEqual(await session.decide({ host: '127.0.0.1', port: 53 }), { send: true });
  assert.deepEqual(await session.decide({ host: '127.0.0.1', port: 54 }), { send: false });
  const decisions = records.of('decision');
  assert.deepEqual(
    decisions.map((r) => [r.action, r.port]),
    [
      ['allow', 0],
      ['allow', 53],
      ['deny', 54],
    ],
  );
  assert.equal(records.of('close').length, 0);
  assert.equal(pipeline.active, 1, 'registered like a relay');
  session.closed({ bytesUp: 3, bytesDown: 4, durationMs: 5, closeReason: 'idle_timeout' });
  session.closed({ bytesUp: 3, bytesDown: 4, durationMs: 5, closeReason: 'idle_timeout' });
  const closes = records.of('close');
  assert.equal(closes.length, 1, 'one close record, however often closed() is called');
  assert.equal(closes[0].trace_id, decisions[0].trace_id);
  assert.equal(closes[0].bytes_up, 3);
  assert.equal(closes[0].bytes_down, 4);
  assert.equal(closes[0].close_reason, 'idle_timeout');
  assert.equal(pipeline.active, 0);
});
