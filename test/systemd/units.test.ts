// The shipped units (systemd/portail.service, portail-proxy.socket,
// portail-control.socket) under a real systemd 252, with the stub in place of the daemon
// (a drop-in replaces ExecStart= only: the hardening is the real one). Socket activation
// by name, notify states, the watchdog, peer credentials and journald fields.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, Sandbox, sandboxSkipReason } from './harness.js';
import { CLIENT_PATH, STUB_FILES, STUB_PATH, stubDropIn } from './stub.js';

const root = repoRoot();
const addonBuilt = existsSync(join(root, 'systemd/native/build/Release/portail_systemd.node'));
const skip = sandboxSkipReason() ?? (addonBuilt ? null : 'needs the native addon (npm install)');
const unit = (name: string) => readFileSync(join(root, 'systemd', name), 'utf8');

const watchdogUnit = (port: number, extraEnv: string) => `[Unit]
Description=stub with a 1 s watchdog
[Service]
Type=notify
ExecStart=/usr/bin/node ${STUB_PATH}
Environment=STUB_PORT=${port} ${extraEnv}
WatchdogSec=1s
`;

describe('portail units under systemd', { skip: skip ?? false }, () => {
  let box: Sandbox;
  before(async () => {
    box = await Sandbox.start({
      units: {
        'portail.service': unit('portail.service'),
        'portail-proxy.socket': unit('portail-proxy.socket'),
        'portail-control.socket': unit('portail-control.socket'),
        'portail.service.d/stub.conf': stubDropIn(
          'Environment=STUB_RELOAD_GATE=1 STUB_STOP_GATE=1\n',
        ),
        'watchdog-ok.service': watchdogUnit(2001, ''),
        'watchdog-silent.service': watchdogUnit(2002, 'STUB_NO_WATCHDOG=1'),
      },
      start: ['portail-proxy.socket', 'portail-control.socket'],
      files: STUB_FILES,
    });
  });
  after(() => box?.stop());

  const who = async (target: string, as?: number) => {
    const argv = ['node', CLIENT_PATH, target, 'WHO'];
    const r = await box.exec(
      as === undefined
        ? argv
        : ['setpriv', `--reuid=${as}`, `--regid=${as}`, '--clear-groups', ...argv],
    );
    assert.equal(r.code, 0, `WHO ${target}: ${r.stderr}`);
    const [name, pid, source, uid, peer] = r.stdout.trim().split(' ');
    return { name, pid, source, uid, peer };
  };

  test('socket activation: started by the first connection, sockets handed over by name', async () => {
    assert.equal((await box.show('portail.service', 'ActiveState')).ActiveState, 'inactive');
    const proxy = await who('127.0.0.1:1080');
    assert.equal(proxy.name, 'proxy');
    assert.equal(proxy.source, 'systemd');
    assert.equal(proxy.peer, '-', 'TCP has no peer credentials');
    const control = await who('/run/portail/control');
    assert.deepEqual(
      { ...control, peer: undefined },
      { ...proxy, name: 'control', peer: undefined },
    );
    assert.equal(control.peer, '0', 'the control socket sees root (SO_PEERCRED)');
    const upstream = await who('/run/fr.gouv.portail.Control', 65534);
    assert.equal(upstream.name, 'control');
    assert.equal(upstream.peer, '65534', 'and an unprivileged caller as such');
    const state = await box.show('portail.service', 'ActiveState', 'StatusText', 'MainPID');
    assert.deepEqual(state, {
      ActiveState: 'active',
      StatusText: 'serving, 0 relay(s) recovered',
      MainPID: proxy.pid,
    });
  });

  test('hardening applies to Node (dynamic user, syscall filter) and scores well', async () => {
    const { uid } = await who('127.0.0.1:1080');
    assert.notEqual(uid, '0', 'runs as a dynamic user, not root');
    const out = await box.run(['systemd-analyze', 'security', '--no-pager', 'portail.service']);
    const score = Number(/Overall exposure level for portail\.service: ([0-9.]+)/.exec(out)?.[1]);
    assert.ok(score > 0 && score <= 2.0, `exposure ${score}`);
    const props = await box.show(
      'portail.service',
      'DynamicUser',
      'ProtectSystem',
      'NoNewPrivileges',
      'MemoryDenyWriteExecute',
    );
    assert.deepEqual(props, {
      DynamicUser: 'yes',
      ProtectSystem: 'strict',
      NoNewPrivileges: 'yes',
      MemoryDenyWriteExecute: 'no',
    });
  });

  test('RELOADING=1 … READY=1 and STOPPING=1 are what systemctl shows', async () => {
    await who('127.0.0.1:1080'); // make sure it runs, and is past READY=1
    await box.waitForState('portail.service', { ActiveState: 'active' });
    await box.run(['systemctl', 'reload', '--no-block', 'portail.service']);
    await box.waitForState('portail.service', {
      ActiveState: 'reloading',
      StatusText: 'reloading',
    });
    await box.run(['touch', '/run/portail/state/reload-gate']);
    await box.waitForState('portail.service', {
      ActiveState: 'active',
      StatusText: 'serving (reloaded 1)',
    });
    await box.run(['systemctl', 'stop', '--no-block', 'portail.service']);
    await box.waitForState('portail.service', {
      ActiveState: 'deactivating',
      StatusText: 'stopping',
    });
    await box.run(['touch', '/run/portail/state/stop-gate']);
    await box.waitForState('portail.service', { ActiveState: 'inactive', Result: 'success' });
    // The sockets stay: the next connection starts it again, and the control socket
    // survived the runtime directory's removal.
    assert.equal((await who('/run/portail/control', 65534)).name, 'control');
  });

  test('journald: native fields, queryable by PORTAIL_ACTION', async () => {
    for (const line of ['DENY a.example', 'ALLOW b.example', 'DENY c.example', 'PINO']) {
      assert.equal(await box.run(['node', CLIENT_PATH, '127.0.0.1:1080', line]), 'LOGGED\n');
    }
    const denials = await box.waitFor('two denials in the journal', async () => {
      const e = await box.journal('PORTAIL_ACTION=deny');
      return e.length >= 2 && e;
    });
    assert.deepEqual(
      denials.map((e) => e.PORTAIL_HOST),
      ['a.example', 'c.example'],
    );
    for (const e of denials) {
      assert.equal(e.MESSAGE, `deny ${e.PORTAIL_HOST}:443\nexplanation: no policy matched`);
      assert.equal(e.PRIORITY, '5');
      assert.equal(e.SYSLOG_IDENTIFIER, 'portail');
      assert.equal(e._SYSTEMD_UNIT, 'portail.service');
      assert.equal(e._TRANSPORT, 'journal');
      assert.equal(e.PORTAIL_PORT, '443');
      assert.deepEqual(e.PORTAIL_TAGS, ['t1', 't2']);
    }
    assert.equal((await box.journal('-u', 'portail', 'PORTAIL_ACTION=deny')).length, 2);
    const [pinoLine] = await box.waitFor('the pino line', async () => {
      const e = await box.journal('PORTAIL_EVENT=error');
      return e.length > 0 && e;
    });
    assert.equal(pinoLine.MESSAGE, 'pino line');
    assert.equal(pinoLine.PRIORITY, '4');
    assert.equal(pinoLine.PORTAIL_REASON, 'from pino');
  });

  test('WATCHDOG=1 keeps a WatchdogSec=1s service alive; without it systemd kills it', async () => {
    await box.run(['systemctl', 'start', 'watchdog-ok.service', 'watchdog-silent.service']);
    const first = (await box.show('watchdog-ok.service', 'WatchdogTimestampMonotonic'))
      .WatchdogTimestampMonotonic;
    await box.waitForState(
      'watchdog-silent.service',
      { ActiveState: 'failed', Result: 'watchdog' },
      5000,
    );
    const ok = await box.show('watchdog-ok.service', 'ActiveState', 'WatchdogTimestampMonotonic');
    assert.equal(ok.ActiveState, 'active');
    assert.notEqual(ok.WatchdogTimestampMonotonic, first, 'keep-alives keep coming');
  });
});
