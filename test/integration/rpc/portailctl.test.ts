import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from './helpers.js';
import { PORTAILCTL, runCli } from './run-cli.js';

const ROOT = { pid: 1, uid: 0, gid: 0 };
const ALICE = { pid: 2, uid: 1000, gid: 1000 };

const ctl = (srv: TestServer, args: string[], opts: Parameters<typeof runCli>[2] = {}) =>
  runCli(PORTAILCTL, ['--socket', srv.path, ...args], opts);

describe('portailctl: exit codes', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({
      getPeerCred: () => ALICE,
      authorize: (_creds, call) => !/SetDefaultBackend|Reload/.test(call.method),
    });
  });
  after(() => srv.close());

  it('3 when the daemon cannot be reached: no socket, or nobody listening on it', async () => {
    const none = await runCli(PORTAILCTL, ['--socket', join(srv.dir, 'absent'), 'status']);
    assert.equal(none.code, 3);
    assert.match(none.stderr, /cannot reach the portail daemon at .*absent: no such socket/);
    assert.equal(none.stdout, '');
    const file = join(srv.dir, 'not-a-socket');
    writeFileSync(file, '');
    const refused = await runCli(PORTAILCTL, ['--socket', file, '--json', 'backends']);
    assert.equal(refused.code, 3);
    assert.deepEqual(JSON.parse(refused.stdout), { ok: false, error: 'unreachable', socket: file });
    // The default socket path, from the environment.
    const env = await runCli(PORTAILCTL, ['status'], {
      env: { PORTAIL_CONTROL_SOCKET: join(srv.dir, 'env-absent') },
    });
    assert.equal(env.code, 3);
    assert.match(env.stderr, /env-absent/);
  });

  it('2 on usage errors, without contacting the daemon', async () => {
    const before = srv.backend.calls.length;
    const cases = [
      [],
      ['frobnicate'],
      ['status', 'extra'],
      ['explain'],
      ['explain', 'a.example.com:99999'],
      ['explain', '--uid', 'root', 'a.example.com'],
      ['explain', '--attr', 'novalue', 'a.example.com'],
      ['explain', '--attr', 'a=1', '--attr', 'a=2', 'a.example.com'],
      ['why', '--last', '0'],
      ['why', '--last', 'many'],
      ['set-default-backend'],
      ['connect', 'host'],
      ['connect', 'host', '0'],
      ['connect', 'host', '70000'],
      ['status', '--no-such-option'],
    ];
    for (const args of cases) {
      const r = await ctl(srv, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.notEqual(r.stderr, '', args.join(' '));
    }
    assert.equal(srv.backend.calls.length, before);
  });

  it('0 for --help and --version', async () => {
    const help = await runCli(PORTAILCTL, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /explain \[options\] <host\[:port\]>/);
    const version = await runCli(PORTAILCTL, ['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });

  it('1 when refused, with the reason on stderr (and the error as JSON with --json)', async () => {
    const r = await ctl(srv, ['set-default-backend', 'squid']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /permission denied: changing the default backend needs root or membership of \[rpc\] trusted-groups/,
    );
    assert.equal(r.stdout, '');
    const j = await ctl(srv, ['unset-default-backend', '--json']);
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stdout), {
      ok: false,
      error: 'fr.gouv.portail.Control.PermissionDenied',
      parameters: {},
    });
    const reload = await ctl(srv, ['reload']);
    assert.equal(reload.code, 1);
    assert.match(reload.stderr, /reloading needs root/);
    assert.equal(srv.backend.defaultBackend, 'par01');
  });
});

describe('portailctl: commands', () => {
  let srv: TestServer;
  let creds = ROOT;
  before(async () => {
    srv = await startServer({ getPeerCred: () => creds });
  });
  after(() => srv.close());

  it('reload: 1 and the diagnostics when invalid; 0 and warnings on stderr when valid', async () => {
    srv.backend.nextReload = {
      ok: false,
      diagnostics: 'filter.acl:2:7: error: expected "{"\n  policy x\n        ^',
    };
    const bad = await ctl(srv, ['reload']);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /reload failed; the previous configuration and rules stay in force:\nfilter.acl:2:7: error: expected "\{"/,
    );
    const badJson = await ctl(srv, ['--json', 'reload']);
    assert.equal(badJson.code, 1);
    assert.equal(JSON.parse(badJson.stdout).error, 'io.portail.Control.ReloadFailed');
    srv.backend.nextReload = {
      ok: true,
      diagnostics: 'filter.acl:9:1: warning: unknown attribute "foo"',
      aclHash: '0123456789abcdef'.repeat(4),
    };
    const ok = await ctl(srv, ['reload']);
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, 'reloaded (ACL sha256 0123456789ab…)\n');
    assert.match(ok.stderr, /warning: unknown attribute/);
    const okJson = await ctl(srv, ['reload', '--json']);
    assert.deepEqual(JSON.parse(okJson.stdout), {
      ok: true,
      acl_hash: '0123456789abcdef'.repeat(4),
      diagnostics: 'filter.acl:9:1: warning: unknown attribute "foo"',
    });
  });

  it('status: aligned key: value lines; --json before or after the command', async () => {
    srv.backend.statusInfo.startedAt = new Date(Date.now() - 3_723_000);
    const r = await ctl(srv, ['status']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const keyed = lines.filter((l) => /^\S[^:]*:/.test(l));
    const columns = new Set(keyed.map((l) => l.length - l.replace(/^[^:]*:\s+/, '').length));
    assert.equal(columns.size, 1, r.stdout);
    assert.match(r.stdout, /^version: +9\.9\.9$/m);
    assert.match(r.stdout, /^uptime: +1h 2m [3-9]s \(since /m);
    assert.match(r.stdout, /^listener proxy: +127\.0\.0\.1:1080 \(bound\)$/m);
    assert.match(r.stdout, /^acl: +\/etc\/portail\/filter\.acl$/m);
    assert.match(r.stdout, /^acl sha256: +(cd){32}$/m);
    assert.match(r.stdout, /^active connections: +7$/m);
    assert.match(r.stdout, /^default backend: +par01$/m);
    assert.match(
      r.stdout,
      /^last reload: +FAILED at 2024-05-01T09:30:00.000Z\n +filter.acl:3:5: error/m,
    );
    for (const args of [
      ['--json', 'status'],
      ['status', '--json'],
    ]) {
      const j = await ctl(srv, args);
      assert.equal(j.code, 0);
      const s = JSON.parse(j.stdout);
      assert.equal(s.version, '9.9.9');
      assert.equal(s.active_connections, 7);
    }
  });

  it('backends, set-default-backend, unset-default-backend', async () => {
    const list = await ctl(srv, ['backends']);
    assert.equal(list.code, 0);
    assert.equal(
      list.stdout,
      [
        'BACKEND  DEFAULT  DYNAMIC  TARGET          TLS',
        'par01    yes      -        127.0.0.1:1081  identity-aware (gw1.example.com)',
        'squid    -        -        127.0.0.1:3128  -',
        'dyn      -        yes      (not set)       -',
        '',
      ].join('\n'),
    );
    const missing = await ctl(srv, ['set-default-backend', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no backend named "nope" \(available: par01, squid, dyn\)/);
    const set = await ctl(srv, ['set-default-backend', 'squid']);
    assert.equal(set.code, 0);
    assert.equal(set.stdout, 'default backend: squid\n');
    assert.equal(srv.backend.defaultBackend, 'squid');
    const unset = await ctl(srv, ['unset-default-backend', '--json']);
    assert.deepEqual(JSON.parse(unset.stdout), { ok: true, default_backend: null });
    assert.equal(srv.backend.defaultBackend, null);
    const j = await ctl(srv, ['--json', 'backends']);
    assert.deepEqual(
      JSON.parse(j.stdout).backends.map((b: { current: boolean }) => b.current),
      [false, false, false],
    );
    await ctl(srv, ['set-default-backend', 'par01']);
  });

  it('explain: the decision, the failed requirement and the value seen; options passed on', async () => {
    creds = ALICE;
    const r = await ctl(srv, [
      'explain',
      '--attr',
      'device.trust_level=1',
      '--attr',
      'geo.country=FR',
      'git.corp.example.com',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^decision: +deny$/m);
    assert.match(r.stdout, /^policy: +eng_git$/m);
    assert.match(r.stdout, /^route: +par01 \(route corp\)$/m);
    assert.match(
      r.stdout,
      /^failed requirements:\n {2}policy eng_git \(allow\): require device\.trust_level >= 2 — false\n {4}device\.trust_level >= 2: false \(device\.trust_level = 1\)$/m,
    );
    assert.deepEqual(srv.backend.explainRequests.at(-1), {
      host: 'git.corp.example.com',
      port: 443,
      uid: 1000,
      attrs: { 'device.trust_level': '1', 'geo.country': 'FR' },
      caller: ALICE,
    });
    await ctl(srv, ['explain', '--user', 'bob', '--uid', '1001', '[::1]:22']);
    assert.deepEqual(srv.backend.explainRequests.at(-1), {
      host: '::1',
      port: 22,
      user: 'bob',
      uid: 1001,
      attrs: {},
      caller: ALICE,
    });
    const j = await ctl(srv, ['explain', 'x.example.com:80', '--json']);
    assert.equal(JSON.parse(j.stdout).failed[0].comparisons[0].seen, '1');
    const bad = await ctl(srv, ['explain', 'bad..host']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a valid host name/);
    creds = ROOT;
  });

  it('why: the caller’s denials (others’ name their user), --last passed on', async () => {
    creds = ALICE;
    const r = await ctl(srv, ['why', '--last', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(srv.backend.denialQueries.at(-1), [1000, 5]);
    // portailctl runs as root here, so alice's entries are someone else's.
    assert.equal(
      r.stdout,
      '2024-05-01T10:00:00.000Z alice a.example.com:443: denied by policy deny_all\n2024-05-01T10:02:00.000Z alice c.example.com:22 (/usr/bin/ssh): denied by policy ssh\n',
    );
    const j = await ctl(srv, ['--json', 'why']);
    assert.equal(JSON.parse(j.stdout).denials.length, 2);
    creds = { pid: 3, uid: 4242, gid: 4242 };
    const none = await ctl(srv, ['why']);
    assert.equal(none.stdout, 'no recent denials\n');
    creds = ROOT;
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

function hasMicrosocks(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v microsocks'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('portailctl connect', () => {
  let srv: TestServer;
  let socks: ChildProcess | undefined;
  let socksPort = 0;
  const servers: net.Server[] = [];
  before(async () => {
    srv = await startServer({ getPeerCred: () => ALICE });
    if (hasMicrosocks()) {
      socksPort = await freePort();
      socks = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(socksPort)], {
        stdio: 'ignore',
      });
      for (let i = 0; i < 100; i++) {
        const up = await new Promise<boolean>((r) => {
          const c = net.connect(socksPort, '127.0.0.1', () => {
            c.destroy();
            r(true);
          });
          c.on('error', () => r(false));
        });
        if (up) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  after(async () => {
    socks?.kill('SIGKILL');
    for (const s of servers) s.close();
    await srv.close();
  });
  const proxyAt = (address: string) => {
    srv.backend.statusInfo.listeners = [
      { name: 'control', address: srv.path, source: 'bound' },
      { name: 'proxy', address, source: 'bound' },
    ];
  };

  it('1 when the proxy refuses (SOCKS reply 0x02), with the reason on stderr', async () => {
    const refuser = net.createServer((s) => {
      s.once('data', () => {
        s.write(Buffer.of(5, 0));
        s.once('data', () => s.end(Buffer.of(5, 2, 0, 1, 0, 0, 0, 0, 0, 0)));
      });
    });
    servers.push(refuser);
    proxyAt(`127.0.0.1:${await listen(refuser)}`);
    const r = await ctl(srv, ['connect', 'blocked.example.com', '22'], { keepStdinOpen: true });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the proxy refused: connection not allowed by the proxy’s rules/);
    assert.equal(r.stdout, '');
  });

  it('3 when the proxy is not listening; 1 when the daemon reports no proxy', async () => {
    proxyAt(`127.0.0.1:${await freePort()}`);
    const r = await ctl(srv, ['connect', 'example.com', '22'], { keepStdinOpen: true });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot reach the proxy/);
    srv.backend.statusInfo.listeners = [];
    // --json is ignored: stdout is the byte stream, even for an error.
    const none = await ctl(srv, ['--json', 'connect', 'example.com', '22']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no proxy listener/);
    assert.equal(none.stdout, '');
    const noDaemon = await runCli(PORTAILCTL, [
      '--socket',
      join(srv.dir, 'absent'),
      '--json',
      'connect',
      'example.com',
      '22',
    ]);
    assert.deepEqual([noDaemon.code, noDaemon.stdout], [3, '']);
  });

  it('relays a server’s banner and exits when the server closes (ssh ProxyCommand)', async (t) => {
    if (!socks) return t.skip('needs microsocks (apt-get install microsocks)');
    const banner = net.createServer((s) => s.end('SSH-2.0-portail-test\r\n'));
    servers.push(banner);
    const port = await listen(banner);
    proxyAt(`0.0.0.0:${socksPort}`);
    const r = await ctl(srv, ['connect', 'localhost', String(port)], { keepStdinOpen: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'SSH-2.0-portail-test\r\n');
  });

  it('relays both ways byte-exact (256 KiB each way, IPv4 literal)', async (t) => {
    if (!socks) return t.skip('needs microsocks (apt-get install microsocks)');
    const size = 256 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 7 + (i >> 8)) & 0xff;
    let received = 0;
    const echo = net.createServer((s) => {
      s.on('data', (b: Buffer) => {
        received += b.length;
        s.write(b);
        if (received >= size) s.end();
      });
    });
    servers.push(echo);
    const port = await listen(echo);
    proxyAt(`127.0.0.1:${socksPort}`);
    const child = spawn(process.execPath, [
      PORTAILCTL,
      '--socket',
      srv.path,
      'connect',
      '127.0.0.1',
      String(port),
    ]);
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stdin.write(payload);
    const code = await new Promise((r) => child.on('close', r));
    child.stdin.destroy();
    assert.equal(code, 0);
    assert.ok(Buffer.concat(out).equals(payload));
  });
});
