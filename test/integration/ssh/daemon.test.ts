// The real daemon with a `type = "ssh"` backend: curl (SOCKS5, plain HTTP, CONNECT)
// reaches an origin through OpenSSH's sshd over one SSH connection; a backend whose
// known_hosts has another key refuses, and nothing reaches the origin.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { curl, requireTool } from '../../harness/index.js';
import { origin, startDnsmasq, via } from '../chain/helpers.js';
import { startPortail } from '../daemon/portail.js';
import { keygen, line, startSshd } from './sshd.js';

test('curl through portail and an SSH bastion; a host key mismatch is refused', async (t) => {
  if (!requireTool(t, 'sshd', 'openssh-server') || !requireTool(t, 'ssh-keygen', 'openssh-client'))
    return;
  if (!requireTool(t, 'curl')) return;
  const sshd = await startSshd(t);
  const good = await origin(t);
  const guarded = await origin(t);
  const kh = sshd.knownHosts('known_hosts', [line(sshd, 'ed25519')]);
  await keygen(join(sshd.dir, 'impostor'), 'ed25519');
  const [kt, b64] = readFileSync(join(sshd.dir, 'impostor.pub'), 'utf8').split(' ');
  const wrong = sshd.knownHosts('wrong_known_hosts', [`[127.0.0.1]:${sshd.port} ${kt} ${b64}`]);
  const backend = (name: string, knownHosts: string) =>
    `[backends.${name}]\ntype = "ssh"\ntarget-address = "127.0.0.1:${sshd.port}"\nuser = "${sshd.user}"\n` +
    `identity-file = "${sshd.userKey}"\nknown-hosts = "${knownHosts}"\n`;
  const p = await startPortail(t, {
    acl:
      `route ok { when port == ${good.port} use ["bastion"] }\n` +
      `route bad { when port == ${guarded.port} use ["evil"] }\n` +
      'policy all { action allow }\n',
    // Direct exits would come from 127.0.0.2: "from 127.0.0.1" proves the SSH path.
    config: `outgoing-address = "127.0.0.2"\nfallback-to-direct = false\n${backend('bastion', kh)}${backend('evil', wrong)}`,
  });

  for (const kind of ['socks5', 'http-forward', 'http-connect'] as const) {
    const r = await via(kind, p.port, good.port);
    assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
    assert.equal(r.stdout, 'from 127.0.0.1', kind);
  }
  assert.equal(sshd.logins(), 1, 'three requests, one SSH connection');

  for (const kind of ['socks5', 'http-connect'] as const) {
    const r = await via(kind, p.port, guarded.port);
    assert.notEqual(r.code, 0, `${kind} must fail`);
  }
  assert.deepEqual(guarded.seen, []);
  // Audit records reach the file asynchronously.
  const refused = (r: { event: string }) =>
    r.event === 'decision' && JSON.stringify(r).includes('does not match known_hosts');
  await p.waitRecord(() => p.records().filter(refused).length >= 2);
  const refusals = p
    .records()
    .filter(
      (r) => r.event === 'decision' && JSON.stringify(r).includes('does not match known_hosts'),
    );
  assert.equal(refusals.length, 2, JSON.stringify(p.records(), null, 1));
});

test('the bastion name is resolved with [dns] resolvers (a name only the configured dnsmasq knows)', async (t) => {
  if (!requireTool(t, 'sshd', 'openssh-server') || !requireTool(t, 'ssh-keygen', 'openssh-client'))
    return;
  if (!requireTool(t, 'curl') || !requireTool(t, 'dnsmasq')) return;
  const sshd = await startSshd(t);
  const dns = await startDnsmasq(t);
  const good = await origin(t);
  // known_hosts names the bastion as target-address writes it.
  const name = `[bastion.internal.test]:${sshd.port}`;
  const kh = sshd.knownHosts('known_hosts', [
    line(sshd, 'ed25519', name),
    line(sshd, 'ed25519', `[bastion.nowhere.invalid]:${sshd.port}`),
  ]);
  const backend = (id: string, host: string) =>
    `[backends.${id}]\ntype = "ssh"\ntarget-address = "${host}:${sshd.port}"\nuser = "${sshd.user}"\n` +
    `identity-file = "${sshd.userKey}"\nknown-hosts = "${kh}"\n`;
  const p = await startPortail(t, {
    acl:
      `route ok { when host == "127.0.0.1" use ["bastion"] }\n` +
      `route nx { when host == "localhost" use ["nowhere"] }\n` +
      'policy all { action allow }\n',
    config:
      `fallback-to-direct = false\n[dns]\nresolvers = ["127.0.0.1:${dns.port}"]\n` +
      `${backend('bastion', 'bastion.internal.test')}${backend('nowhere', 'bastion.nowhere.invalid')}`,
  });
  // Unhappy first: a bastion name the configured resolver does not know fails as DNS.
  const nx = await curl([
    '--socks5-hostname',
    `127.0.0.1:${p.port}`,
    `http://localhost:${good.port}/`,
  ]);
  assert.notEqual(nx.code, 0);
  const d = await p.waitRecord((r) => r.event === 'decision' && r.host === 'localhost');
  assert.match(String(d.reason), /SSH bastion \[?bastion\.nowhere\.invalid\]?:\d+: .*resolve/);
  assert.deepEqual(good.seen, []);

  // The system resolver has never heard of internal.test: only [dns] resolvers can reach it.
  for (const kind of ['socks5', 'http-connect'] as const) {
    const r = await via(kind, p.port, good.port);
    assert.equal(r.code, 0, `${kind}: ${r.stderr}\n${p.proc.output()}`);
    assert.equal(r.stdout, 'from 127.0.0.1', kind);
  }
  assert.equal(sshd.logins(), 1);
});
