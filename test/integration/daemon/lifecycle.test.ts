// Start and stop of the real daemon: fatal configuration errors, an address in use,
// graceful SIGTERM with an open relay (within and beyond the grace period), and
// `portail check`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, requireTool, startProcess, tmpDir } from '../../harness/index.js';
import {
  closed,
  echo,
  PORTAIL,
  readBytes,
  socksConnect,
  startPortail,
  tcpServer,
} from './portail.js';

function portail(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [PORTAIL, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 15_000,
  });
}

test('a bad configuration is fatal: exit 1 with file:line:column and a caret', (t) => {
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\nidle-timeout = "forever"\n');
  const r = portail(['daemon', '--config', cfg, '--bind-proxy-address', '127.0.0.1:0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /portail\.toml:2:\d+: error: .*idle-timeout/);
  assert.match(r.stderr, /\^/);
});

test('an address in use is fatal: exit 1 naming it', async (t) => {
  const busy = await tcpServer(t, () => {});
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\n');
  const r = portail(['daemon', '--config', cfg, '--bind-proxy-address', `127.0.0.1:${busy.port}`]);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy.port}: address already in use`),
  );
});

test('an audit file that cannot be opened is fatal: exit 1 naming it', (t) => {
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(join(dir, 'not-a-dir'), '');
  writeFileSync(
    cfg,
    `filter-acl-rules-path = "filter.acl"\n[log]\naudit = "file:${dir}/not-a-dir/audit.jsonl"\n`,
  );
  const r = portail(['daemon', '--config', cfg, '--bind-proxy-address', '127.0.0.1:0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot open the audit file .*not-a-dir\/audit\.jsonl/);
});

test('SIGTERM: stops accepting, lets an open relay finish, then exits 0', async (t) => {
  const origin = await tcpServer(t, echo);
  const p = await startPortail(t);
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  c.write('x');
  await readBytes(c, 1);
  p.signal('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  // No new connections…
  await assert.rejects(
    new Promise((resolve, reject) => {
      const s = net.connect(p.port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    }),
  );
  // …but the open relay still works.
  c.write('still relayed');
  assert.equal((await readBytes(c, 13)).toString(), 'still relayed');
  c.end();
  assert.equal(await p.proc.exited, 0);
  const close = p.records().find((r) => r.event === 'close');
  assert.equal(close?.close_reason, 'completed');
});

test('SIGTERM: a relay still open after the grace period is closed (close_reason=shutdown)', async (t) => {
  const origin = await tcpServer(t, echo);
  const p = await startPortail(t, { env: { PORTAIL_SHUTDOWN_GRACE_MS: '500' } });
  const c = await socksConnect(p.port, '127.0.0.1', origin.port);
  c.write('x');
  await readBytes(c, 1);
  const gone = closed(c);
  const t0 = Date.now();
  p.signal('SIGTERM');
  await gone;
  assert.ok(Date.now() - t0 >= 400, 'the relay had its grace period');
  assert.equal(await p.proc.exited, 0);
  const close = p.records().find((r) => r.event === 'close');
  assert.equal(close?.close_reason, 'shutdown');
});

test('portail check: valid, and every diagnostic with its position when not', (t) => {
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\n');
  writeFileSync(join(dir, 'filter.acl'), 'policy a { action allow }\n');
  const ok = portail(['check', '--config', cfg]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /OK/);
  writeFileSync(
    join(dir, 'filter.acl'),
    'route r { use ["nowhere"] }\npolicy a {\n  when port == "x"\n  action allow\n}\n',
  );
  const bad = portail(['check', '--config', cfg]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /filter\.acl:1:\d+: error: .*nowhere/);
  assert.match(bad.stderr, /filter\.acl:3:\d+: error/);
  const json = portail(['check', '--config', cfg, '--json']);
  assert.equal(json.status, 1);
  const out = JSON.parse(json.stdout);
  assert.equal(out.valid, false);
  assert.ok(out.diagnostics.length >= 2);
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\nbogus-key = 1\n');
  const badCfg = portail(['check', '--config', cfg]);
  assert.equal(badCfg.status, 1);
  assert.match(badCfg.stderr, /portail\.toml:2:1: error: .*bogus-key/);
});

test('portail check builds what the daemon builds: a file error and an ACL error in one run', (t) => {
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\n[escaper]\ncacert-file = "nope.pem"\n');
  writeFileSync(join(dir, 'filter.acl'), 'policy a { action allw }\n');
  const bad = portail(['check', '--config', cfg]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /portail\.toml:3:1: error: escaper\.cacert-file: cannot read/);
  assert.match(bad.stderr, /filter\.acl:1:19: error: syntax error/);
  assert.match(bad.stderr, /: 2 errors\n$/);
  // The daemon refuses to start on the same files, with the same two errors.
  const start = portail(['daemon', '--config', cfg, '--bind-proxy-address', '127.0.0.1:0']);
  assert.notEqual(start.status, 0);
  assert.match(start.stderr, /escaper\.cacert-file: cannot read/);
  assert.match(start.stderr, /filter\.acl:1:19: error: syntax error/);
});

test('socket activation: a listening socket passed by systemd as "proxy" is served', async (t) => {
  const activate = requireTool(t, 'systemd-socket-activate', 'systemd');
  if (!activate) return;
  const origin = await tcpServer(t, echo);
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(cfg, 'filter-acl-rules-path = "filter.acl"\n');
  writeFileSync(join(dir, 'filter.acl'), 'policy a { action allow }\n');
  const port = await freePort();
  const p = await startProcess(
    activate,
    [
      '-l',
      `127.0.0.1:${port}`,
      '--fdname=proxy',
      process.execPath,
      PORTAIL,
      'daemon',
      '--config',
      cfg,
    ],
    { t, readyWhen: { port }, name: 'systemd-socket-activate' },
  );
  // The first connection starts the daemon; it answers on the passed socket.
  const c = await socksConnect(port, '127.0.0.1', origin.port);
  c.write('activated');
  assert.equal((await readBytes(c, 9)).toString(), 'activated');
  assert.match(p.output(), new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
  c.destroy();
});
