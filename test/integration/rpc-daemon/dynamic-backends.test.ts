// Upstream's scenario "dynamic backend switching", through `portail rpc …` against the
// real daemon's control socket, run as different local users (setpriv): members of a
// trusted group — by primary or by supplementary membership — may set and unset the
// default backend, an outsider may not, only admin-group members may update a dynamic
// backend, and traffic follows the new default at once (two real microsocks upstreams,
// each with its own outgoing address, and an origin that says where a connection came
// from). Authorization is by the caller's peer credentials, so this needs root.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { curl, requireTool, startMicrosocks, which } from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';

const PORTAIL = fileURLToPath(new URL('../../../proxy/cli/portail.js', import.meta.url));

// Groups every Debian system has; the callers are uids without an account (membership
// is read from the calling process itself, as the kernel sees it).
const TRUSTED = { name: 'staff', gid: 50 };
const ADMIN = { name: 'adm', gid: 4 };
const CALLERS = {
  /** Trusted by primary group. */
  primary: ['--reuid=4101', `--regid=${TRUSTED.gid}`, '--clear-groups'],
  /** Trusted by supplementary group. */
  supplementary: ['--reuid=4102', '--regid=4102', `--groups=${TRUSTED.gid}`],
  /** Admin (supplementary). */
  admin: ['--reuid=4103', '--regid=4103', `--groups=${ADMIN.gid}`],
  /** In no group of [rpc]. */
  outsider: ['--reuid=4104', '--regid=4104', '--clear-groups'],
} as const;
type Caller = keyof typeof CALLERS;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function rpcAs(who: Caller, socket: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      [...CALLERS[who], process.execPath, PORTAIL, 'rpc', '--rpc-socket', socket, ...args],
      { encoding: 'utf8', timeout: 15_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function origin(t: TestContext): Promise<{ port: number }> {
  const server = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`from ${req.socket.remoteAddress}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port };
}

const DENIED = 'Permission was denied, are you in the trusted group?';

test('dynamic backend switching through `portail rpc`, by group membership', async (t) => {
  // Deliberate skips, for developers' accounts only: the authorization under test is by
  // the caller's uid and groups, so the test runs `portail rpc` as other users, which
  // needs root and setpriv (util-linux, listed in .ci/packages.txt). CI runs as root
  // with it installed, where any skip fails the run.
  if (process.getuid?.() !== 0) {
    t.skip('needs root (runs `portail rpc` as other uids with setpriv)');
    return;
  }
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  if (!which('setpriv')) {
    t.skip('needs setpriv (apt-get install util-linux)');
    return;
  }
  const one = await startMicrosocks({ t, bindOutgoing: '127.0.0.21' });
  const two = await startMicrosocks({ t, bindOutgoing: '127.0.0.22' });
  const o = await origin(t);
  let sock = '';
  const p = await startPortail(t, {
    acl: 'policy all { action allow }\n',
    config: [
      'outgoing-address = "127.0.0.23"',
      '[rpc]',
      `trusted-groups = ["${TRUSTED.name}"]`,
      `admin-groups = ["${ADMIN.name}"]`,
      '[backends.one]',
      'type = "socks5"',
      `target-address = "127.0.0.1:${one.port}"`,
      '[backends.two]',
      'type = "socks5"',
      `target-address = "127.0.0.1:${two.port}"`,
      '[backends.dyn]',
      'type = "socks5"',
      'dynamic = true',
      '',
    ].join('\n'),
    args: (dir) => {
      sock = join(dir, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  // The callers must reach the socket (mode 0666) through its folder.
  chmodSync(p.dir, 0o755);
  const from = async () => {
    const r = await curl([
      '--socks5-hostname',
      `127.0.0.1:${p.port}`,
      `http://127.0.0.1:${o.port}/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const current = async (who: Caller) => (await rpcAs(who, sock, 'print-current-backend')).stdout;

  // No default backend: direct exit, from our own outgoing address.
  assert.equal(await from(), 'from 127.0.0.23');
  assert.equal(await current('outsider'), 'Current backend: <none>\n', 'anyone may read');

  // An outsider may neither set nor unset, nor update a dynamic backend.
  const refused = await rpcAs('outsider', sock, 'set-default-backend', 'one');
  assert.deepEqual(refused, {
    code: 1,
    stdout: '',
    stderr: `Error: Failed to set default backend\n\nCaused by:\n    ${DENIED}\n`,
  });
  assert.equal(await from(), 'from 127.0.0.23', 'the refusal changed nothing');

  // Trusted by primary group: set; traffic follows at once.
  const set1 = await rpcAs('primary', sock, 'set-default-backend', 'one');
  assert.equal(set1.code, 0, set1.stderr);
  assert.equal(await current('outsider'), 'Current backend: one\n');
  assert.equal(await from(), 'from 127.0.0.21');

  // Trusted by supplementary group: switch.
  const set2 = await rpcAs('supplementary', sock, 'set-default-backend', 'two');
  assert.equal(set2.code, 0, set2.stderr);
  assert.equal(await from(), 'from 127.0.0.22');

  const unsetRefused = await rpcAs('outsider', sock, 'unset-default-backend');
  assert.equal(unsetRefused.code, 1);
  assert.equal(
    unsetRefused.stderr,
    `Error: Failed to unset default backend\n\nCaused by:\n    ${DENIED}\n`,
  );
  assert.equal(await from(), 'from 127.0.0.22');

  // Dynamic backend: trusted members may not update it; an admin may.
  for (const who of ['outsider', 'primary', 'supplementary'] as const) {
    const upd = await rpcAs(
      who,
      sock,
      'update-dynamic-backend',
      'dyn',
      '--target-address',
      `127.0.0.1:${one.port}`,
    );
    assert.equal(upd.code, 1, `${who} must not update a dynamic backend`);
    assert.equal(
      upd.stderr,
      `Error: Failed to update the dynamic backend\n\nCaused by:\n    ${DENIED}\n`,
    );
  }
  const upd = await rpcAs(
    'admin',
    sock,
    'update-dynamic-backend',
    'dyn',
    '--target-address',
    `127.0.0.1:${one.port}`,
  );
  assert.equal(upd.code, 0, upd.stderr);
  // Admins are trusted too: make the dynamic backend the default; traffic follows.
  const setDyn = await rpcAs('admin', sock, 'set-default-backend', 'dyn');
  assert.equal(setDyn.code, 0, setDyn.stderr);
  assert.equal(await from(), 'from 127.0.0.21');
  // Re-pointed at the other upstream: the very next connection uses it.
  const upd2 = await rpcAs(
    'admin',
    sock,
    'update-dynamic-backend',
    'dyn',
    '--target-address',
    `127.0.0.1:${two.port}`,
  );
  assert.equal(upd2.code, 0, upd2.stderr);
  assert.equal(await from(), 'from 127.0.0.22');
  const list = JSON.parse((await rpcAs('outsider', sock, '--json', 'list-backends')).stdout) as {
    id: string;
    current: boolean;
    spec: { target_address: string } | null;
  }[];
  const dyn = list.find((b) => b.id === 'dyn');
  assert.equal(dyn?.current, true);
  assert.equal(dyn?.spec?.target_address, `127.0.0.1:${two.port}`);

  // Unset by a trusted member: back to direct.
  const unset = await rpcAs('supplementary', sock, 'unset-default-backend');
  assert.equal(unset.code, 0, unset.stderr);
  assert.equal(await from(), 'from 127.0.0.23');

  // Each refusal left an audit record with the caller's uid.
  const refusals = p
    .records()
    .filter((r) => r.event === 'error' && /refused/.test(String(r.reason)));
  assert.deepEqual(
    refusals.map((r) => r.uid),
    [4104, 4104, 4104, 4101, 4102],
  );
  // Every decision names the way actually taken.
  const routes = p
    .records()
    .filter((r) => r.event === 'decision')
    .map((r) => r.route);
  assert.deepEqual(routes, ['direct', 'direct', 'one', 'two', 'two', 'dyn', 'dyn', 'direct']);
});
