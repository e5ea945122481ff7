// Reload through the real daemon: SIGHUP with a valid and an invalid ACL, watch-acl,
// with a relay open across it; re-evaluation closing a now-denied relay; no ACL at
// start = everything denied until a reload succeeds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../harness/index.js';
import { closed, echo, readBytes, socksConnect, startPortail, tcpServer } from './portail.js';

async function roundTrip(s: import('node:net').Socket, text: string) {
  s.write(text);
  assert.equal((await readBytes(s, text.length)).toString(), text);
}

test('SIGHUP: a valid ACL takes over; an open relay that is still allowed carries on', async (t) => {
  const origin = await tcpServer(t, echo);
  const other = await tcpServer(t, echo);
  const p = await startPortail(t, {
    acl: `policy a { when port == ${origin.port} action allow }\n`,
    config: 'watch-acl = false',
  });
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  await roundTrip(c, 'before');
  await assert.rejects(socksConnect(p.port, '127.0.0.1', other.port));
  p.writeAcl(`policy a { when port == ${origin.port} or port == ${other.port} action allow }\n`);
  p.signal('SIGHUP');
  const rec = await p.waitRecord((r) => r.event === 'reload');
  assert.equal(rec.result, 'ok');
  assert.equal(rec.trigger, 'signal');
  assert.equal(rec.action, null);
  const c2 = await socksConnect(p.port, '127.0.0.1', other.port);
  await roundTrip(c2, 'new rule');
  await roundTrip(c, 'after');
  c.destroy();
  c2.destroy();
});

test('SIGHUP with an invalid ACL: old rules stay, the reload record has the diagnostic', async (t) => {
  const origin = await tcpServer(t, echo);
  const p = await startPortail(t, {
    acl: `policy a { when port == ${origin.port} action allow }\n`,
    config: 'watch-acl = false',
  });
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  p.writeAcl('policy a {\n  when port === 1\n  action allow\n}\n');
  p.signal('SIGHUP');
  const rec = await p.waitRecord((r) => r.event === 'reload');
  assert.equal(rec.result, 'failed');
  assert.match(String(rec.diagnostics), /filter\.acl:2:\d+: error/);
  assert.match(p.proc.output(), /reload failed, the previous rules stay in force/);
  await roundTrip(c, 'still open');
  const c2 = await socksConnect(p.port, '127.0.0.1', origin.port);
  await roundTrip(c2, 'old rules apply');
  c.destroy();
  c2.destroy();
});

test('watch-acl: saving the ACL reloads it; a relay now denied closes with policy_changed', async (t) => {
  const origin = await tcpServer(t, echo);
  const p = await startPortail(t, { acl: 'policy a { action allow }\n' });
  const keep = await socksConnect(p.port, 'localhost', origin.port);
  const cut = await socksConnect(p.port, '127.0.0.1', origin.port);
  await roundTrip(keep, 'k');
  await roundTrip(cut, 'c');
  const cutClosed = closed(cut);
  p.writeAcl(
    'policy only_names { when host == "localhost" action allow }\npolicy rest { action deny }\n',
  );
  const rec = await p.waitRecord((r) => r.event === 'reload', 5000);
  assert.equal(rec.trigger, 'watch');
  const close = await p.waitRecord((r) => r.event === 'close');
  assert.equal(close.close_reason, 'policy_changed');
  assert.equal(close.host, '127.0.0.1');
  assert.match(String(close.reason), /denied by policy rest/);
  await cutClosed;
  await roundTrip(keep, 'kept');
  await assert.rejects(socksConnect(p.port, '127.0.0.1', origin.port));
  keep.destroy();
});

test('no ACL at start: everything denied, loudly; writing one (watch-acl) opens the way', async (t) => {
  const origin = await tcpServer(t, echo);
  const p = await startPortail(t, { acl: null });
  assert.match(p.proc.output(), /EVERY REQUEST IS DENIED/);
  const err = await p.waitRecord((r) => r.event === 'error');
  assert.match(String(err.reason), /every request is denied/);
  await assert.rejects(socksConnect(p.port, '127.0.0.1', origin.port));
  assert.equal(origin.connections(), 0);
  const d = await p.waitRecord((r) => r.event === 'decision');
  assert.equal(d.action, 'deny');
  p.writeAcl('policy a { action allow }\n');
  await p.waitRecord((r) => r.event === 'reload' && r.result === 'ok');
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  await roundTrip(c, 'finally');
  c.destroy();
  await sleep(10);
});
