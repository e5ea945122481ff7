// The real daemon (`node dist/proxy/cli/portail.js daemon`) under a real systemd 252,
// with the shipped units (program paths adapted): socket activation, `systemctl reload`
// (valid and invalid rules), audit records in the journal, and the control socket's
// authorization as different local users.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, Sandbox, sandboxSkipReason } from './harness.js';
import {
  as,
  config,
  GROUP,
  ORIGIN,
  ORIGIN_PATH,
  PASSWD,
  PORTAIL,
  PORTAILCTL,
  realUnit,
} from './real.js';

const root = repoRoot();
const built = ['systemd/native/build/Release/portail_systemd.node', 'dist/proxy/cli/portail.js'];
const missing = built.find((f) => !existsSync(join(root, f)));
const skip =
  sandboxSkipReason() ??
  (missing ? `needs ${missing} (npm install && node scripts/build.mjs)` : null) ??
  (existsSync('/usr/bin/curl') ? null : 'needs curl (apt-get install curl)');

const ACL_V1 = `
policy origin { when host == "127.0.0.1" action allow }
policy no_cheese { when host =~ "cheese" action deny }
policy deny_all { action deny }
`;
// v2 also refuses the origin's /never port: a rule change the test can observe.
const ACL_V2 = `
policy origin_closed { when host == "127.0.0.1" and port == 9 action deny }
${ACL_V1}`;

function firstLine(child: ChildProcess, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no output (${buf})`)), timeoutMs);
    child.stdout?.on('data', (c) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
  });
}

describe('the real daemon under systemd', { skip: skip ?? false }, () => {
  let box: Sandbox;
  let origin: ChildProcess;
  let originPort = 0;
  /** Hosts this file was denied, in order: the journal must list exactly these. */
  const denied: string[] = [];

  before(async () => {
    box = await Sandbox.start({
      units: {
        'portail.service': realUnit('portail.service'),
        'portail-proxy.socket': realUnit('portail-proxy.socket'),
        'portail-control.socket': realUnit('portail-control.socket'),
        // Faster tests; nothing else differs from the shipped units.
        'portail.service.d/test.conf': '[Service]\nEnvironment=PORTAIL_SHUTDOWN_GRACE_MS=1000\n',
        // `[log] audit = "journald"` with the development preset: audit records in the
        // journal, diagnostics as lines on stderr.
        'portail-dev.service': `[Service]\nType=notify\nExecStart=${PORTAIL} daemon --config /etc/portail/dev.toml --log-preset development --bind-proxy-address 127.0.0.1:1081\n`,
      },
      start: ['portail-proxy.socket', 'portail-control.socket'],
      etc: {
        'portail/portail.toml': config(),
        'portail/dev.toml': config('[log]\naudit = "journald"'),
        'portail/filter.acl': ACL_V1,
      },
      passwd: PASSWD,
      group: GROUP,
      files: { 'origin.mjs': ORIGIN },
    });
    origin = box.spawn(['node', ORIGIN_PATH]);
    originPort = Number(await firstLine(origin));
  });
  after(async () => {
    origin?.stdin?.end();
    origin?.kill('SIGKILL');
    await box?.stop();
  });

  /** curl through the proxy (SOCKS5, names resolved by the proxy); returns curl's exit
   * code and the body. */
  const curl = async (url: string, user?: Parameters<typeof as>[0]) => {
    const argv = ['curl', '-sS', '--max-time', '10', '--socks5-hostname', '127.0.0.1:1080', url];
    const r = await box.exec(user ? [...as(user), ...argv] : argv);
    return { code: r.code, body: r.stdout, err: r.stderr };
  };
  const deny = async (host: string, user?: Parameters<typeof as>[0]) => {
    const r = await curl(`http://${host}/`, user);
    // curl 97: the SOCKS5 server refused the connection (0x02, denied by the ACL).
    assert.equal(r.code, 97, `${host} must be refused: ${r.err}`);
    denied.push(host);
  };
  const ctl = (args: string[], user?: Parameters<typeof as>[0]) => {
    const argv = [...PORTAILCTL.split(' '), ...args];
    return box.exec(user ? [...as(user), ...argv] : argv);
  };

  test('socket activation: the first connection starts the service, which serves it', async () => {
    assert.equal((await box.show('portail.service', 'ActiveState')).ActiveState, 'inactive');
    const r = await curl(`http://127.0.0.1:${originPort}/`);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.body, 'hello');
    const s = await box.show('portail.service', 'ActiveState', 'StatusText', 'NRestarts');
    assert.equal(s.ActiveState, 'active');
    assert.match(s.StatusText, /^serving on 127\.0\.0\.1:1080; ACL [0-9a-f]{12}; \d+ connections$/);
    // It took the socket unit's listener rather than binding its own.
    const status = JSON.parse((await ctl(['status', '--json'])).stdout) as {
      listeners: { name: string; address: string; source: string }[];
    };
    assert.deepEqual(
      status.listeners.map((l) => [l.name, l.source]),
      [
        ['proxy', 'systemd'],
        ['control', 'systemd'],
        ['control', 'systemd'],
      ],
    );
  });

  test('systemctl reload: valid rules apply; invalid ones fail the reload and change nothing', async () => {
    await box.waitForState('portail.service', { ActiveState: 'active' });
    const pid = (await box.show('portail.service', 'MainPID')).MainPID;
    // Port 9 on the origin's address: allowed (then refused by the kernel: curl 97 too,
    // but the audit record says allow). Check the decision in the journal instead.
    const decisionFor = async (port: number) => {
      const r = await curl(`http://127.0.0.1:${port}/`);
      const entries = await box.journal(
        '-u',
        'portail',
        'PORTAIL_EVENT=decision',
        `PORTAIL_PORT=${port}`,
      );
      return { code: r.code, action: entries.at(-1)?.PORTAIL_ACTION };
    };
    assert.equal((await decisionFor(9)).action, 'allow');

    await box.run(['sh', '-c', `cat > /etc/portail/filter.acl <<'EOF'\n${ACL_V2}\nEOF`]);
    const ok = await box.systemctl('reload', 'portail.service');
    assert.equal(ok.code, 0, `valid reload: ${ok.stderr}`);
    const after9 = await decisionFor(9);
    assert.equal(after9.action, 'deny', 'the new rules are in force when reload returns');
    assert.equal(after9.code, 97);
    denied.push('127.0.0.1');

    await box.run([
      'sh',
      '-c',
      `printf 'policy broken {\\n  action maybe\\n}\\n' > /etc/portail/filter.acl`,
    ]);
    const bad = await box.systemctl('reload', 'portail.service');
    assert.notEqual(bad.code, 0, 'an invalid ACL fails `systemctl reload`');
    const s = await box.show('portail.service', 'ActiveState', 'MainPID', 'StatusText');
    assert.equal(s.ActiveState, 'active');
    assert.equal(s.MainPID, pid, 'same process: nothing restarted');
    assert.match(s.StatusText, /last reload FAILED/);
    // Old (v2) rules still apply: the origin is served, port 9 still denied.
    assert.equal((await curl(`http://127.0.0.1:${originPort}/`)).body, 'hello');
    assert.equal((await decisionFor(9)).action, 'deny');
    denied.push('127.0.0.1');
    const failed = await box.journal(
      '-u',
      'portail',
      'PORTAIL_EVENT=reload',
      'PORTAIL_RESULT=failed',
    );
    assert.equal(failed.length, 1);
    assert.match(String(failed[0].MESSAGE), /reload failed/);
    assert.match(String(failed[0].PORTAIL_DIAGNOSTICS), /filter\.acl:2:/);
    await box.run(['sh', '-c', `cat > /etc/portail/filter.acl <<'EOF'\n${ACL_V2}\nEOF`]);
    assert.equal((await box.systemctl('reload', 'portail.service')).code, 0);
  });

  test('portailctl as an outsider: reload refused, status and its own `why` served', async () => {
    await deny('alice-cheese.example', 'alice');
    await deny('bob-cheese.example', 'bob');
    await deny('bob-other.example', 'bob');

    const reload = await ctl(['reload'], 'alice');
    assert.equal(reload.code, 1, `refused reload exits 1: ${reload.stderr}`);
    assert.match(reload.stderr, /PermissionDenied|not allowed|permission/i);
    const status = await ctl(['status', '--json'], 'alice');
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).acl.loaded, true);

    const why = async (user: 'alice' | 'bob') => {
      const r = await ctl(['why', '--json', '--last', '50'], user);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout).denials as { host: string; uid: number }[]).map((d) => [
        d.host,
        d.uid,
      ]);
    };
    assert.deepEqual(await why('alice'), [['alice-cheese.example', 1101]]);
    assert.deepEqual(await why('bob'), [
      ['bob-cheese.example', 1102],
      ['bob-other.example', 1102],
    ]);
    // Root sees everyone's.
    const all = JSON.parse((await ctl(['why', '--json', '--last', '50'])).stdout).denials as {
      host: string;
    }[];
    assert.ok(all.some((d) => d.host === 'alice-cheese.example'));
    assert.ok(all.some((d) => d.host === 'bob-other.example'));
    // A trusted user (supplementary group) may reload; the refusal above left a record.
    const trusted = await ctl(['reload'], 'carol');
    assert.equal(trusted.code, 0, trusted.stderr);
    const refusals = await box.journal('-u', 'portail', 'PORTAIL_EVENT=error', 'PORTAIL_UID=1101');
    assert.equal(refusals.length, 1);
    assert.match(String(refusals[0].PORTAIL_REASON), /Reload refused/);
  });

  test('journalctl -u portail PORTAIL_ACTION=deny -o json lists exactly the denials', async () => {
    await deny('x-cheese.example');
    const entries = await box.waitFor('the denials in the journal', async () => {
      const e = await box.journal('-u', 'portail', 'PORTAIL_ACTION=deny');
      return e.length >= denied.length && e;
    });
    assert.deepEqual(
      entries.map((e) => e.PORTAIL_HOST),
      denied,
    );
    for (const e of entries) {
      assert.equal(e.PORTAIL_EVENT, 'decision');
      assert.equal(e.SYSLOG_IDENTIFIER, 'portail');
      assert.equal(e._SYSTEMD_UNIT, 'portail.service');
      assert.equal(e._TRANSPORT, 'journal');
      assert.equal(e.PRIORITY, '5');
      assert.match(String(e.PORTAIL_TRACE_ID), /^[0-9a-f]{32}$/);
      assert.match(String(e.PORTAIL_PORT), /^\d+$/);
      assert.equal(e.PORTAIL_PROTOCOL, 'socks5');
      assert.match(String(e.PORTAIL_CLIENT), /^127\.0\.0\.1:\d+$/);
      assert.match(String(e.MESSAGE), /^deny socks5 /);
      assert.ok(
        e.PORTAIL_POLICY === 'no_cheese' ||
          e.PORTAIL_POLICY === 'deny_all' ||
          e.PORTAIL_POLICY === 'origin_closed',
      );
      assert.equal(e.PORTAIL_BYTES_UP, undefined, 'a denial has no close fields');
    }
    const alice = entries.find((e) => e.PORTAIL_HOST === 'alice-cheese.example');
    assert.equal(alice?.PORTAIL_UID, '1101');
    assert.equal(alice?.PORTAIL_USER, 'alice');
    // Allowed requests: a decision and a close record sharing the trace id, never a deny.
    const allows = await box.journal(
      '-u',
      'portail',
      'PORTAIL_ACTION=allow',
      'PORTAIL_EVENT=decision',
    );
    assert.ok(allows.length >= 2);
    const closes = await box.journal(
      '-u',
      'portail',
      `PORTAIL_TRACE_ID=${allows[0].PORTAIL_TRACE_ID}`,
    );
    assert.deepEqual(
      closes.map((e) => e.PORTAIL_EVENT),
      ['decision', 'close'],
    );
    assert.match(String(closes[1].PORTAIL_BYTES_DOWN), /^\d+$/);
    assert.equal(closes[1].PORTAIL_CLOSE_REASON, 'completed');
  });

  test('[log] audit = "journald" with the development preset: audit in the journal, diagnostics on stderr', async () => {
    assert.equal((await box.systemctl('start', 'portail-dev.service')).code, 0);
    const r = await box.exec([
      'curl',
      '-sS',
      '--max-time',
      '10',
      '--socks5-hostname',
      '127.0.0.1:1081',
      'http://dev-cheese.example/',
    ]);
    assert.equal(r.code, 97);
    const [e] = await box.waitFor('the denial', async () => {
      const x = await box.journal('-u', 'portail-dev', 'PORTAIL_ACTION=deny');
      return x.length > 0 && x;
    });
    assert.equal(e.PORTAIL_HOST, 'dev-cheese.example');
    assert.equal(e.PORTAIL_POLICY, 'no_cheese');
    assert.equal(e._TRANSPORT, 'journal');
    assert.equal(e.SYSLOG_IDENTIFIER, 'portail');
    const lines = await box.journal('-u', 'portail-dev', '_TRANSPORT=stdout');
    assert.ok(
      lines.some((l) => /listening on 127\.0\.0\.1:1081/.test(String(l.MESSAGE))),
      'diagnostics are stderr lines',
    );
    assert.ok(
      lines.every((l) => l.PORTAIL_ACTION === undefined),
      'no audit record on stderr',
    );
    await box.systemctl('stop', 'portail-dev.service');
  });
});
