// Gateway settings that cannot work are fatal at start (exit 1, the reason on stderr):
// require-tls without a certificate, a key that does not match, a file that is not a
// MaxMind database.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeTestCa, requireTool, tmpDir } from '../../harness/index.js';
import { PORTAIL } from '../daemon/portail.js';

function start(t: Parameters<typeof tmpDir>[0], config: string) {
  const dir = tmpDir(t);
  const cfg = join(dir, 'portail.toml');
  writeFileSync(join(dir, 'filter.acl'), 'policy all { action allow }\n');
  writeFileSync(join(dir, 'not-a-db.mmdb'), 'hello\n'.repeat(100));
  writeFileSync(cfg, `filter-acl-rules-path = "filter.acl"\n${config}\n`);
  return spawnSync(
    process.execPath,
    [PORTAIL, 'daemon', '--config', cfg, '--bind-proxy-address', '127.0.0.1:0'],
    { encoding: 'utf8', timeout: 15_000 },
  );
}

test('fatal at start: require-tls without a certificate, mismatched key, not a MaxMind database', async (t) => {
  if (!requireTool(t, 'openssl')) return;
  const r1 = start(t, '[listener]\nrequire-tls = true\n');
  assert.equal(r1.status, 1, r1.stderr);
  assert.match(r1.stderr, /require-tls/);
  const a = await makeTestCa({ t });
  const b = await makeTestCa({ t });
  const r2 = start(
    t,
    `[listener]\ntls-chain = "${a.serverChain}"\ntls-privkey = "${b.serverKey}"\n`,
  );
  assert.equal(r2.status, 1, r2.stderr);
  assert.match(r2.stderr, /tls-privkey|key/i);
  const r3 = start(t, '[geoip]\ndatabase = "not-a-db.mmdb"\n');
  assert.equal(r3.status, 1, r3.stderr);
  assert.match(r3.stderr, /not-a-db\.mmdb/);
});
