// The configuration file read without -c/--config: ours, else upstream's /etc/portail.toml
// when only that one exists (docs/upstream.md); and -c, upstream's short option.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultConfigFile } from '../../../proxy/cli/config-path.js';
import { repoRoot } from '../config/helpers.js';

test('default configuration: ours first, upstream path only when ours is absent', () => {
  const only = (...present: string[]) => defaultConfigFile((p) => present.includes(p));
  assert.equal(only('/etc/portail/portail.toml', '/etc/portail.toml'), '/etc/portail/portail.toml');
  assert.equal(only('/etc/portail/portail.toml'), '/etc/portail/portail.toml');
  assert.equal(only('/etc/portail.toml'), '/etc/portail.toml');
  // Neither: ours is the one the error names.
  assert.equal(only(), '/etc/portail/portail.toml');
});

test('portail check -c FILE reads FILE (upstream short option)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portail-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'up.toml');
  writeFileSync(cfg, 'bogus-key = 1\n');
  const bin = join(repoRoot, 'dist/proxy/cli/portail.js');
  const r = spawnSync(process.execPath, [bin, 'check', '-c', cfg], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /up\.toml:1:1: error: bogus-key: unknown key/);
  const help = spawnSync(process.execPath, [bin, 'daemon', '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /-c, --config <file>/);
});
