// `portail rpc …` prints exactly what cloud-gouv/portail prints (its src/main.rs).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from './helpers.js';
import { RPC_HARNESS, runCli } from './run-cli.js';

const ROOT = { pid: 1, uid: 0, gid: 0 };

describe('portail rpc: upstream output', () => {
  let srv: TestServer;
  let allow = true;
  before(async () => {
    srv = await startServer({
      getPeerCred: () => ROOT,
      authorize: (_c, call) => allow || !/Set|Update/.test(call.method),
    });
  });
  after(() => srv.close());
  const rpc = (...args: string[]) =>
    runCli(RPC_HARNESS, ['rpc', '--rpc-socket', srv.path, ...args]);

  it('an unreachable socket: upstream’s error chain, exit 1', async () => {
    const path = join(srv.dir, 'absent');
    const r = await runCli(RPC_HARNESS, ['rpc', '--rpc-socket', path, 'print-current-backend']);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `Error: Opening the RPC socket at path '${path}'\n\nCaused by:\n    No such file or directory (os error 2)\n`,
    );
    assert.equal(r.stdout, '');
  });

  it('usage errors exit 2', async () => {
    for (const args of [
      ['nope'],
      ['set-default-backend'],
      ['update-dynamic-backend', 'dyn'],
      ['update-dynamic-backend', 'dyn', '--target-address', '10.0.0.1'],
    ]) {
      const r = await rpc(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
  });

  it('print-current-backend', async () => {
    assert.deepEqual(await rpc('print-current-backend'), {
      code: 0,
      stdout: 'Current backend: par01\n',
      stderr: '',
    });
    assert.deepEqual(await rpc('--json', 'print-current-backend'), {
      code: 0,
      stdout: '{"backend_id":"par01"}',
      stderr: '',
    });
    srv.backend.defaultBackend = null;
    assert.equal((await rpc('print-current-backend')).stdout, 'Current backend: <none>\n');
    srv.backend.defaultBackend = 'par01';
  });

  it('set-default-backend and unset-default-backend', async () => {
    assert.deepEqual(await rpc('set-default-backend', 'squid'), {
      code: 0,
      stdout: 'Default backend changed successfully.\n',
      stderr: '',
    });
    assert.equal(srv.backend.defaultBackend, 'squid');
    assert.deepEqual(await rpc('--json', 'unset-default-backend'), {
      code: 0,
      stdout: '{"success":true}',
      stderr: '',
    });
    assert.equal(srv.backend.defaultBackend, null);
    assert.deepEqual(await rpc('unset-default-backend'), {
      code: 0,
      stdout: 'Default backend unset successfully.\n',
      stderr: '',
    });
    assert.deepEqual(await rpc('--json', 'set-default-backend', 'par01'), {
      code: 0,
      stdout: '{"success":true}',
      stderr: '',
    });
  });

  it('errors: BackendNotFound and PermissionDenied as upstream words them', async () => {
    assert.deepEqual(await rpc('set-default-backend', 'nope'), {
      code: 1,
      stdout: '',
      stderr:
        'Error: Failed to set default backend\n\nCaused by:\n    Backend `nope` was not found, available backends are `par01`, `squid`, `dyn`\n',
    });
    allow = false;
    assert.deepEqual(await rpc('--json', 'unset-default-backend'), {
      code: 1,
      stdout: '',
      stderr:
        'Error: Failed to unset default backend\n\nCaused by:\n    Permission was denied, are you in the trusted group?\n',
    });
    const upd = await rpc('update-dynamic-backend', 'dyn', '--target-address', '10.0.0.1:443');
    assert.equal(upd.code, 1);
    assert.equal(
      upd.stderr,
      'Error: Failed to update the dynamic backend\n\nCaused by:\n    Permission was denied, are you in the trusted group?\n',
    );
    allow = true;
    assert.equal(srv.backend.defaultBackend, 'par01');
  });

  it('list-backends', async () => {
    assert.deepEqual(await rpc('list-backends'), {
      code: 0,
      stdout: 'List of backends:\n\tpar01 (active)\n\tsquid\n\tdyn\n',
      stderr: '',
    });
    const j = await rpc('--json', 'list-backends');
    assert.equal(j.code, 0);
    assert.equal(
      j.stdout,
      '[{"id":"par01","current":true,"dynamic":false,"spec":{"target_address":"127.0.0.1:1081","identity_aware":true,"tls_server_name":"gw1.example.com"}},' +
        '{"id":"squid","current":false,"dynamic":false,"spec":{"target_address":"127.0.0.1:3128","identity_aware":false,"tls_server_name":null}},' +
        '{"id":"dyn","current":false,"dynamic":true,"spec":null}]',
    );
  });

  it('update-dynamic-backend: immutable, unknown, then updated (spec as upstream sends it)', async () => {
    const imm = await rpc('update-dynamic-backend', 'par01', '--target-address', '10.0.0.1:443');
    assert.equal(imm.code, 1);
    assert.match(
      imm.stderr,
      /^Error: Failed to update the dynamic backend\n\nCaused by:\n {4}Backend is not dynamic/,
    );
    const unknown = await rpc('update-dynamic-backend', 'zzz', '--target-address', '10.0.0.1:443');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Backend `zzz` was not found/);
    assert.deepEqual(
      await rpc('update-dynamic-backend', 'dyn', '--target-address', '10.0.0.1:443'),
      { code: 0, stdout: 'Backend updated.\n', stderr: '' },
    );
    assert.deepEqual(srv.backend.backends.find((b) => b.id === 'dyn')?.spec, {
      targetAddress: '10.0.0.1:443',
      identityAware: false,
    });
    assert.deepEqual(
      await rpc(
        '--json',
        'update-dynamic-backend',
        'dyn',
        '--target-address',
        '[::1]:8443',
        '--identity-aware',
        '--tls-server-name',
        'gw.example.com',
      ),
      {
        code: 0,
        stdout: '{"success":true}',
        stderr: '',
      },
    );
    assert.deepEqual(srv.backend.backends.find((b) => b.id === 'dyn')?.spec, {
      targetAddress: '[::1]:8443',
      identityAware: true,
      tlsServerName: 'gw.example.com',
    });
    const j = await rpc('--json', 'list-backends');
    assert.deepEqual(JSON.parse(j.stdout)[2].spec, {
      target_address: '[::1]:8443',
      identity_aware: true,
      tls_server_name: 'gw.example.com',
    });
  });
});
