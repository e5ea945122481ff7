// The control socket of the real daemon, driven by the real portailctl: synchronous
// reload (and its diagnostic when invalid), status, explain, why, default backend.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { portailctl, socksConnect, startPortail } from './portail.js';

const ctl = portailctl;

test('portailctl against the daemon: reload, status, explain, why, backends', async (t) => {
  let sock = '';
  const p = await startPortail(t, {
    acl: 'policy web { when port == 443 action allow }\npolicy deny_all { action deny }\n',
    config:
      'watch-acl = false\n[backends.par01]\ntype = "socks5"\ntarget-address = "127.0.0.1:9"\n',
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });

  const status = await ctl(sock, 'status', '--json');
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout);
  assert.equal(s.acl.loaded, true);
  assert.match(s.acl.hash, /^[0-9a-f]{64}$/);

  const ex = await ctl(sock, 'explain', '--json', 'example.com:80');
  assert.equal(ex.code, 0, ex.stderr);
  const e = JSON.parse(ex.stdout);
  assert.equal(e.action, 'deny');
  assert.equal(e.policy, 'deny_all');
  assert.equal(
    JSON.parse((await ctl(sock, 'explain', '--json', 'example.com')).stdout).action,
    'allow',
  );

  // A denial, then `why` (we are root here, or the same uid as the daemon).
  await assert.rejects(socksConnect(p.port, '127.0.0.1', 8));
  const why = await ctl(sock, 'why', '--json');
  assert.equal(why.code, 0, why.stderr);
  const denials = JSON.parse(why.stdout).denials;
  assert.equal(denials.length, 1);
  assert.equal(denials[0].port, 8);
  assert.equal(denials[0].uid, process.getuid?.());
  assert.match(denials[0].explanation, /denied by policy deny_all/);

  const bad = await ctl(sock, 'set-default-backend', 'nope');
  assert.equal(bad.code, 1);
  assert.equal((await ctl(sock, 'set-default-backend', 'par01')).code, 0);
  assert.equal(JSON.parse((await ctl(sock, 'status', '--json')).stdout).default_backend, 'par01');

  p.writeAcl('policy broken {\n  action allw\n}\n');
  const failed = await ctl(sock, 'reload');
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /filter\.acl:2:\d+: error/);
  p.writeAcl('policy all { action allow }\n');
  const ok = await ctl(sock, 'reload');
  assert.equal(ok.code, 0, ok.stderr);
  const reloads = p.records().filter((r) => r.event === 'reload');
  assert.deepEqual(
    reloads.map((r) => [r.result, r.trigger]),
    [
      ['failed', 'rpc'],
      ['ok', 'rpc'],
    ],
  );
});

test('a denial over an attribute nobody supplies names it: audit reason, why, explain', async (t) => {
  let sock = '';
  const p = await startPortail(t, {
    acl: 'policy needs_attr { require nosuch.attr == "x" action allow }\n',
    // An explain ACL that shows everything: `why` then gives the full reason.
    config: 'watch-acl = false\nexplain-acl-rules-path = "explain.acl"\n',
    files: { 'explain.acl': 'policy everyone { action allow }\n' },
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  await assert.rejects(socksConnect(p.port, '127.0.0.1', 8));
  const rec = await p.waitRecord((r) => r.event === 'decision' && r.port === 8);
  assert.equal(rec.action, 'deny');
  assert.equal(rec.reason, 'no policy matched; missing: nosuch.attr');

  const why = await ctl(sock, 'why', '--json');
  assert.equal(why.code, 0, why.stderr);
  const [d] = JSON.parse(why.stdout).denials;
  assert.match(d.reason, /missing: nosuch\.attr/);
  const whyText = await ctl(sock, 'why');
  assert.match(whyText.stdout, /missing: nosuch\.attr/);

  const ex = await ctl(sock, 'explain', '--json', '127.0.0.1:8');
  assert.equal(ex.code, 0, ex.stderr);
  const e = JSON.parse(ex.stdout);
  assert.equal(e.action, 'deny');
  assert.match(e.reason, /^no policy matched; missing: nosuch\.attr$/);
  assert.deepEqual(e.missing, ['nosuch.attr']);
  const exText = await ctl(sock, 'explain', '127.0.0.1:8');
  assert.match(exText.stdout, /no policy matched; missing: nosuch\.attr/);
});
