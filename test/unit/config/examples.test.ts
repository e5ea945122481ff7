// The shipped configurations load: the embedded default the README starts with, and a
// configuration written for upstream (cloud-gouv/portail), unchanged.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkConfigFiles } from '../../../proxy/config/check.js';
import {
  defaultConfigPath,
  embeddedDefaultConfigPath,
  loadConfig,
} from '../../../proxy/config/load.js';
import { repoRoot } from './helpers.js';

test('embeddedDefaultConfigPath is examples/portail.toml of the package', () => {
  assert.equal(embeddedDefaultConfigPath(), join(repoRoot, 'examples', 'portail.toml'));
  assert.ok(existsSync(embeddedDefaultConfigPath()));
  assert.equal(defaultConfigPath, '/etc/portail/portail.toml');
});

test('the embedded default loads: no backends, filter.acl beside it, audit on stdout', async () => {
  const c = await loadConfig(embeddedDefaultConfigPath());
  assert.equal(Object.keys(c.backends).length, 0);
  assert.equal(c.filterAclRulesPath, join(repoRoot, 'examples', 'filter.acl'));
  assert.ok(existsSync(c.filterAclRulesPath ?? ''));
  assert.deepEqual(c.log.audit, { kind: 'stdout' });
  assert.deepEqual(c.warnings, []);
  assert.deepEqual(await checkConfigFiles(c), []);
});

test('the commented-out examples in the default are valid once uncommented', async () => {
  // Uncomment every "# key = value" / "# [table]" line: the documentation must not rot.
  const text = readFileSync(embeddedDefaultConfigPath(), 'utf8')
    .split('\n')
    .map((l) => l.replace(/^# (# )?(?=\[|[a-z0-9-]+ = )/, ''))
    .join('\n');
  const { tempDir } = await import('./helpers.js');
  const { writeFileSync } = await import('node:fs');
  const { dir, cleanup } = tempDir();
  try {
    // pkcs11-uri and tls-privkey are alternatives: keep the file-based identity.
    const file = join(dir, 'portail.toml');
    writeFileSync(file, text.replace(/^pkcs11-(uri|module) = .*$/gm, ''));
    const c = await loadConfig(file);
    assert.deepEqual(Object.keys(c.backends), ['corp', 'squid', 'bastion', 'dyn']);
    assert.equal(c.defaultBackend, 'corp');
    assert.equal(c.listener.requireTls, false);
  } finally {
    cleanup();
  }
});

test("an upstream user's config.toml loads unchanged", async () => {
  const dir = join(repoRoot, 'examples', 'upstream');
  const c = await loadConfig(join(dir, 'config.toml'));
  assert.equal(c.connectTimeoutMs, 30_000);
  assert.equal(c.handshakeTimeoutMs, 15_000);
  assert.equal(c.tcpNodelay, true);
  assert.equal(c.filterAclRulesPath, join(dir, 'filter.acl'));
  assert.equal(c.listener.tlsChain, join(dir, 'fullchain.pem'));
  assert.equal(c.escaper.tlsCertificate, join(dir, 'client.pem'));
  assert.equal(c.defaultBackend, 'par01a');
  assert.deepEqual(Object.keys(c.backends), ['par01a', 'par01b', 'standby']);
  assert.equal(c.backends.par01a?.identityAware, true);
  assert.equal(c.backends.par01a?.tlsServerName, 'par01a.corp.example.com');
  assert.equal(c.backends.standby?.dynamic, true);
  assert.deepEqual(c.dns.resolvers, ['192.0.2.53', '2001:db8::53']);
  assert.deepEqual(c.rpc.trustedGroups, ['portail-users']);
});

test("the upstream example's ACL names only configured backends, with upstream syntax", async () => {
  const c = await loadConfig(join(repoRoot, 'examples', 'upstream', 'config.toml'));
  const acl = readFileSync(c.filterAclRulesPath ?? '', 'utf8');
  assert.doesNotMatch(acl, /#/, 'upstream has no comments');
  assert.doesNotMatch(acl, /\b(when|require|action|use) {2,}/, 'upstream wants exactly one space');
  for (const m of acl.matchAll(/use \[([^\]]*)\]/g)) {
    for (const name of m[1].split(',').map((s) => s.trim().replace(/"/g, ''))) {
      assert.ok(Object.hasOwn(c.backends, name), `backend ${name}`);
    }
  }
});

test('both example ACLs pass the ACL checker against their configuration', async () => {
  const { loadAclFile } = await import('../../../acl-lang/index.js');
  for (const config of ['portail.toml', 'upstream/config.toml']) {
    const c = await loadConfig(join(repoRoot, 'examples', config));
    const r = await loadAclFile(c.filterAclRulesPath ?? '', {
      backends: new Set(Object.keys(c.backends)),
    });
    assert.deepEqual(r.diagnostics, [], config);
    assert.ok(r.acl, config);
  }
});
