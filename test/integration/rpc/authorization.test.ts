// The authorization matrix with real users, groups and peer credentials (as root):
// the clients run as other users (setpriv), the server reads SO_PEERCRED and the
// callers' groups from /proc. Mirrors upstream's own test (alice trusted by a
// supplementary group, heloise by her primary group, an admin, an attacker).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createAuthorizer } from '../../../rpc/authorize.js';
import { startServer, type TestServer } from './helpers.js';
import { PORTAILCTL, RPC_HARNESS, runCli } from './run-cli.js';

const isRoot = process.getuid?.() === 0;
const tag = `pt${randomBytes(3).toString('hex')}`;
const G = { trusted: `${tag}trust`, heloise: `${tag}helo`, admins: `${tag}adm` };
const U = {
  alice: `${tag}alice`,
  heloise: `${tag}helo`,
  admin: `${tag}admin`,
  attacker: `${tag}evil`,
};
type Who = keyof typeof U | 'root';

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = ['useradd', 'groupadd', 'userdel', 'groupdel', 'setpriv'].filter((t) => !have(t));
const skip = !isRoot
  ? 'needs root (creates test users and groups)'
  : missing.length
    ? `needs ${missing.join(', ')} (apt-get install passwd util-linux)`
    : false;

describe('authorization with real users', { skip }, () => {
  let srv: TestServer;
  const uid: Record<string, number> = {};

  before(async () => {
    // heloise's primary group is trusted; the others get a private group (-U).
    sh('groupadd', [G.trusted]);
    sh('groupadd', [G.heloise]);
    sh('groupadd', [G.admins]);
    sh('useradd', ['-M', '-s', '/usr/sbin/nologin', '-U', '-G', G.trusted, U.alice]);
    sh('useradd', ['-M', '-s', '/usr/sbin/nologin', '-g', G.heloise, U.heloise]);
    sh('useradd', ['-M', '-s', '/usr/sbin/nologin', '-U', '-G', G.admins, U.admin]);
    sh('useradd', ['-M', '-s', '/usr/sbin/nologin', '-U', U.attacker]);
    for (const name of Object.values(U))
      uid[name] = Number(execFileSync('id', ['-u', name]).toString().trim());
    srv = await startServer({
      getPeerCred: undefined,
      authorize: createAuthorizer({
        trustedGroups: [G.heloise, G.trusted],
        adminGroups: [G.admins],
      }),
    });
  });

  after(async () => {
    await srv?.close();
    for (const name of Object.values(U)) {
      try {
        sh('userdel', [name]);
      } catch {}
    }
    for (const name of [...Object.values(G), U.alice, U.admin, U.attacker]) {
      try {
        sh('groupdel', [name]);
      } catch {}
    }
  });

  const as = (who: Who, script: string, args: string[], groups?: string) => {
    const user =
      who === 'root'
        ? undefined
        : { name: U[who], group: who === 'heloise' ? G.heloise : U[who], groups };
    return runCli(script, args, { user });
  };
  const rpc = (who: Who, ...args: string[]) =>
    as(who, RPC_HARNESS, ['rpc', '--json', '--rpc-socket', srv.path, ...args]);

  it('everyone may read, including the attacker', async () => {
    for (const who of ['root', 'alice', 'heloise', 'admin', 'attacker'] as const) {
      const r = await rpc(who, 'print-current-backend');
      assert.equal(r.code, 0, `${who}: ${r.stderr}`);
      assert.deepEqual(JSON.parse(r.stdout), { backend_id: 'par01' });
      const s = await as(who, PORTAILCTL, ['--socket', srv.path, '--json', 'status']);
      assert.equal(s.code, 0, `${who}: ${s.stderr}`);
    }
  });

  it('trusted (supplementary or primary group), admin and root may set the default backend; the attacker may not', async () => {
    for (const who of ['root', 'alice', 'heloise', 'admin'] as const) {
      const r = await rpc(who, 'set-default-backend', 'squid');
      assert.deepEqual([r.code, r.stdout], [0, '{"success":true}'], `${who}: ${r.stderr}`);
      assert.equal(srv.backend.defaultBackend, 'squid');
      srv.backend.defaultBackend = 'par01';
    }
    const r = await rpc('attacker', 'set-default-backend', 'squid');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Permission was denied/);
    assert.equal(srv.backend.defaultBackend, 'par01');
    const last = srv.refused.at(-1);
    assert.equal(last?.method, 'fr.gouv.portail.Control.SetDefaultBackend');
    assert.equal(last?.creds?.uid, uid[U.attacker]);
    const unset = await rpc('alice', 'unset-default-backend');
    assert.equal(unset.code, 0, unset.stderr);
    assert.equal(srv.backend.defaultBackend, null);
    srv.backend.defaultBackend = 'par01';
  });

  it('only admin-groups and root may update a dynamic backend', async () => {
    for (const who of ['alice', 'heloise', 'attacker'] as const) {
      const r = await rpc(who, 'update-dynamic-backend', 'dyn', '--target-address', '10.0.0.1:443');
      assert.equal(r.code, 1, who);
      assert.match(r.stderr, /Permission was denied/);
    }
    assert.equal(srv.backend.backends.find((b) => b.id === 'dyn')?.spec, undefined);
    const ok = await rpc(
      'admin',
      'update-dynamic-backend',
      'dyn',
      '--target-address',
      '10.0.0.1:443',
    );
    assert.equal(ok.code, 0, ok.stderr);
    const list = await rpc('attacker', 'list-backends');
    assert.equal(JSON.parse(list.stdout)[2].spec.target_address, '10.0.0.1:443');
    assert.equal(
      (await rpc('root', 'update-dynamic-backend', 'dyn', '--target-address', '10.0.0.2:443')).code,
      0,
    );
  });

  it('reload: trusted yes (exit 0), attacker refused (exit 1)', async () => {
    srv.backend.nextReload = { ok: true, diagnostics: '' };
    assert.equal((await as('heloise', PORTAILCTL, ['--socket', srv.path, 'reload'])).code, 0);
    const r = await as('attacker', PORTAILCTL, ['--socket', srv.path, 'reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /permission denied/);
  });

  it('why: a user is asked only their own uid’s denials; root everyone’s', async () => {
    const r = await as('attacker', PORTAILCTL, ['--socket', srv.path, 'why']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(srv.backend.denialQueries.at(-1), [uid[U.attacker], 20]);
    const other = await as('attacker', RPC_HARNESS, [
      'rpc',
      '--rpc-socket',
      srv.path,
      'print-current-backend',
    ]);
    assert.equal(other.code, 0);
    await as('root', PORTAILCTL, ['--socket', srv.path, 'why']);
    assert.deepEqual(srv.backend.denialQueries.at(-1), [null, 20]);
  });

  it('the kernel’s view of the caller’s groups counts (a group held but not in /etc/group)', async () => {
    const r = await rpc('attacker', 'set-default-backend', 'squid');
    assert.equal(r.code, 1);
    const held = await as(
      'attacker',
      RPC_HARNESS,
      ['rpc', '--json', '--rpc-socket', srv.path, 'set-default-backend', 'squid'],
      G.trusted,
    );
    assert.equal(held.code, 0, held.stderr);
    assert.equal(srv.backend.defaultBackend, 'squid');
    srv.backend.defaultBackend = 'par01';
  });
});
