// Paths: relative to the configuration file's folder, "~/" to $HOME, absolute as is.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../proxy/config/load.js';
import { assertOneError, tempDir } from './helpers.js';

const ALL_PATHS = `
filter-acl-rules-path = "filter.acl"
explain-acl-rules-path = "./acl/../explain.acl"
[listener]
cacert-file = "tls/ca.pem"
tls-privkey = "/etc/portail/server.key"
tls-chain = "~/fullchain.pem"
[escaper]
cacert-file = "ca.pem"
tls-privkey = "~/client.key"
tls-certificate = "client.pem"
[log]
audit = "file:audit/audit.jsonl"
[geoip]
database = "../GeoLite2-Country.mmdb"
[backends.b]
type = "ssh"
target-address = "bastion.example.com:22"
user = "alice"
identity-file = "~/.ssh/id_ed25519"
known-hosts = "known_hosts"
`;

test('every path resolves against the config folder or $HOME', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const home = process.env.HOME;
  t.after(() => {
    process.env.HOME = home;
  });
  process.env.HOME = '/home/tester';
  const file = join(dir, 'portail.toml');
  writeFileSync(file, ALL_PATHS);
  const c = await loadConfig(file);
  assert.equal(c.file, file);
  assert.equal(c.filterAclRulesPath, join(dir, 'filter.acl'));
  assert.equal(c.explainAclRulesPath, join(dir, 'explain.acl'));
  assert.equal(c.listener.cacertFile, join(dir, 'tls/ca.pem'));
  assert.equal(c.listener.tlsPrivkey, '/etc/portail/server.key');
  assert.equal(c.listener.tlsChain, '/home/tester/fullchain.pem');
  assert.equal(c.escaper.cacertFile, join(dir, 'ca.pem'));
  assert.equal(c.escaper.tlsPrivkey, '/home/tester/client.key');
  assert.equal(c.escaper.tlsCertificate, join(dir, 'client.pem'));
  assert.deepEqual(c.log.audit, { kind: 'file', path: join(dir, 'audit/audit.jsonl') });
  assert.equal(c.geoip.database, join(dir, '..', 'GeoLite2-Country.mmdb'));
  assert.equal(c.backends.b?.identityFile, '/home/tester/.ssh/id_ed25519');
  assert.equal(c.backends.b?.knownHosts, join(dir, 'known_hosts'));
});

test('a relative config path is resolved against the working directory', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const cwd = process.cwd();
  t.after(() => process.chdir(cwd));
  writeFileSync(
    join(dir, 'p.toml'),
    'filter-acl-rules-path = "f.acl"\n[log]\naudit = "file:/var/log/a.jsonl"\n',
  );
  process.chdir(dir);
  const c = await loadConfig('p.toml');
  assert.equal(c.file, join(dir, 'p.toml'));
  assert.equal(c.filterAclRulesPath, join(dir, 'f.acl'));
  assert.deepEqual(c.log.audit, { kind: 'file', path: '/var/log/a.jsonl' });
});

test('"~/" without $HOME is an error at the key', async (t) => {
  const home = process.env.HOME;
  t.after(() => {
    process.env.HOME = home;
  });
  delete process.env.HOME;
  const d = await assertOneError(
    '# x\n[escaper]\ncacert-file = "~/ca.pem"\n',
    /^escaper\.cacert-file: "~\/ca\.pem" starts with "~\/" but \$HOME is not set$/,
  );
  assert.equal(d.line, 3);
});

test('"~user/" is refused rather than guessed', async () => {
  await assertOneError(
    '[log]\naudit = "file:~bob/audit.jsonl"\n',
    /^log\.audit: "~bob\/audit\.jsonl": only "~\/"/,
  );
  await assertOneError(
    '[geoip]\ndatabase = "~root/x.mmdb"\n',
    /^geoip\.database: "~root\/x\.mmdb": only "~\/"/,
  );
});
