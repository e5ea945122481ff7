// A pathological ACL on every reload path of the real daemon (docs/security.md "ACL files
// and reloads"): nested past the nesting limit, SIGHUP, watch-acl and `portailctl reload`
// each fail with `file:line:column`, the daemon lives on, `portailctl status` says the
// last reload failed, and the previous rules keep serving.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep } from '../../harness/index.js';
import { deepAcls } from '../../unit/acl/deep-acl.js';
import {
  echo,
  type Portail,
  portailctl,
  readBytes,
  socksConnect,
  startPortail,
  tcpServer,
} from './portail.js';

const LOCATED = /filter\.acl:2:72: error: expression nested too deeply/;

const ctl = portailctl;

async function roundTrip(s: import('node:net').Socket, text: string) {
  s.write(text);
  assert.equal((await readBytes(s, text.length)).toString(), text);
}

/** The daemon still runs, says the last reload failed (with the location), and serves. */
async function stillServing(p: Portail, sock: string, originPort: number) {
  assert.equal(p.proc.child.exitCode, null, `the daemon exited:\n${p.proc.output().slice(-3000)}`);
  const status = await ctl(sock, 'status', '--json');
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout);
  assert.equal(s.last_reload?.ok, false, status.stdout.slice(0, 2000));
  assert.match(String(s.last_reload.diagnostics), LOCATED);
  assert.equal(s.acl.loaded, true);
  const c = await socksConnect(p.port, '127.0.0.1', originPort);
  await roundTrip(c, 'previous rules');
  c.destroy();
}

test('nested too deep: SIGHUP and portailctl reload fail located; the daemon serves on', async (t) => {
  const origin = await tcpServer(t, echo);
  let sock = '';
  const p = await startPortail(t, {
    acl: `policy a { when port == ${origin.port} action allow }\n`,
    config: 'watch-acl = false',
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  const open = await socksConnect(p.port, '127.0.0.1', origin.port);
  await roundTrip(open, 'before');
  let reloads = 0;
  for (const levels of [2000, 100_000]) {
    p.writeAcl(deepAcls(levels)[0].source);
    p.signal('SIGHUP');
    reloads++;
    const deadline = Date.now() + 20_000;
    while (p.records().filter((r) => r.event === 'reload').length < reloads) {
      if (p.proc.child.exitCode !== null || Date.now() > deadline) break;
      await sleep(20);
    }
    const rec = p.records().filter((r) => r.event === 'reload')[reloads - 1];
    assert.ok(
      rec,
      `no reload record after SIGHUP (${levels} levels):\n${p.proc.output().slice(-3000)}`,
    );
    assert.equal(rec.result, 'failed');
    assert.equal(rec.trigger, 'signal');
    assert.match(String(rec.diagnostics), LOCATED);
    assert.match(
      p.proc.output(),
      /reload failed, the previous rules stay in force:\n.*filter\.acl:2:72: error/,
    );
    await stillServing(p, sock, origin.port);

    const r = await ctl(sock, 'reload');
    reloads++;
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, LOCATED);
    assert.doesNotMatch(r.stderr, /InternalError|the daemon failed/);
    await stillServing(p, sock, origin.port);
  }
  await roundTrip(open, 'after');
  open.destroy();
});

test('nested too deep: watch-acl logs the located error and status says the reload failed', async (t) => {
  const origin = await tcpServer(t, echo);
  let sock = '';
  const p = await startPortail(t, {
    acl: `policy a { when port == ${origin.port} action allow }\n`,
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  p.writeAcl(deepAcls(2000)[0].source.replace('port == 1', `port == ${origin.port}`));
  const rec = await p.waitRecord((r) => r.event === 'reload', 10_000);
  assert.equal(rec.trigger, 'watch');
  assert.equal(rec.result, 'failed');
  assert.match(String(rec.diagnostics), LOCATED);
  assert.match(
    p.proc.output(),
    /reload failed, the previous rules stay in force:\n.*filter\.acl:2:72: error/,
  );
  await stillServing(p, sock, origin.port);
});
