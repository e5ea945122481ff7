// `ssh -D` (OpenSSH's dynamic forwarding) as a SOCKS5 upstream: a throw-away sshd on
// loopback with a temp host key and authorized key, and an ssh client offering SOCKS5.
// sshd connects from 127.0.0.1; portail's own direct exits use outgoing-address
// 127.0.0.2 here, so the origin tells the two ways apart.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, requireTool, startProcess, tmpDir } from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { origin, via } from './helpers.js';

test('ssh -D as a SOCKS5 upstream; other destinations exit directly', async (t) => {
  const sshd = requireTool(t, 'sshd', 'openssh-server');
  const ssh = requireTool(t, 'ssh', 'openssh-client');
  if (!sshd || !ssh || !requireTool(t, 'ssh-keygen', 'openssh-client') || !requireTool(t, 'curl'))
    return;
  const dir = tmpDir(t, 'portail-sshd-');
  chmodSync(dir, 0o700);
  const keygen = (f: string) =>
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, f)]);
  keygen('host_key');
  keygen('client_key');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  // sshd's privilege separation folder (root only; created by the package normally).
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshdPort = await freePort('127.0.0.1');
  writeFileSync(
    join(dir, 'sshd_config'),
    `Port ${sshdPort}
ListenAddress 127.0.0.1
HostKey ${dir}/host_key
PidFile ${dir}/sshd.pid
AuthorizedKeysFile ${dir}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
`,
  );
  await startProcess(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    t,
    readyWhen: { port: sshdPort, host: '127.0.0.1' },
    name: 'sshd',
  });
  const socksPort = await freePort('127.0.0.1');
  await startProcess(
    ssh,
    [
      '-N',
      '-D',
      `127.0.0.1:${socksPort}`,
      '-i',
      join(dir, 'client_key'),
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      `UserKnownHostsFile=${dir}/known_hosts`,
      '-p',
      String(sshdPort),
      `${userInfo().username}@127.0.0.1`,
    ],
    { t, readyWhen: { port: socksPort, host: '127.0.0.1' }, name: 'ssh -D' },
  );
  const tunnelled = await origin(t);
  const direct = await origin(t);
  const p = await startPortail(t, {
    acl: `route up { when port == ${tunnelled.port} use ["sshd"] }\npolicy all { action allow }\n`,
    config: `outgoing-address = "127.0.0.2"\nfallback-to-direct = false\n[backends.sshd]\ntarget-address = "127.0.0.1:${socksPort}"\n`,
  });
  for (const kind of ['socks5', 'socks5'] as const) {
    const r = await via(kind, p.port, tunnelled.port);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from 127.0.0.1');
  }
  const d = await via('socks5', p.port, direct.port);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(d.stdout, 'from 127.0.0.2');
  assert.deepEqual(tunnelled.seen, ['127.0.0.1', '127.0.0.1']);
  assert.deepEqual(
    p
      .records()
      .filter((r) => r.event === 'decision')
      .map((r) => r.route),
    ['sshd', 'sshd', 'direct'],
  );
});
