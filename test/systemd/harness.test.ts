// The sandbox itself: it must leave the host exactly as it was (the naive boot empties
// the host's /tmp), and be gone, cgroups included, after stop().
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { Sandbox, sandboxSkipReason } from './harness.js';

const skip = sandboxSkipReason();

describe('systemd sandbox isolation', { skip: skip ?? false }, () => {
  const marker = `/tmp/portail-sandbox-marker-${process.pid}`;
  const token = randomBytes(8).toString('hex');
  after(() => rmSync(marker, { force: true }));

  test("boots, runs commands inside, and leaves the host's /tmp, sysctls and hostname alone", async () => {
    writeFileSync(marker, token);
    const sysctls = [
      '/proc/sys/fs/file-max',
      '/proc/sys/fs/nr_open',
      '/proc/sys/kernel/hostname',
    ].map((p) => readFileSync(p, 'utf8'));
    const box = await Sandbox.start({ units: {}, files: { 'hello.txt': 'hi' } });
    let dirs: string[] = [];
    try {
      assert.equal(readFileSync(marker, 'utf8'), token, 'host /tmp untouched by the boot');
      assert.equal((await box.run(['cat', '/proc/1/comm'])).trim(), 'systemd');
      assert.equal((await box.run(['ls', '-A', '/tmp'])).trim(), '', 'a private, empty /tmp');
      assert.equal((await box.run(['cat', '/srv/test/hello.txt'])).trim(), 'hi');
      assert.match(await box.run(['ip', '-o', 'link']), /^1: lo: .*UP/);
      assert.equal((await box.run(['ip', '-o', 'link'])).trim().split('\n').length, 1, 'only lo');
      const ro = await box.exec(['touch', '/srv/portail/x']);
      assert.notEqual(ro.code, 0, 'the checkout is read-only');
      assert.match(await box.run(['systemctl', 'is-system-running']), /running|degraded/);
      const failed = await box.exec(['sh', '-c', 'exit 7']);
      assert.equal(failed.code, 7);
      await box.run(['hostname', 'inside']);
      dirs = box.cgroups;
      assert.ok(dirs.length > 0 && dirs.every((d) => existsSync(d)));
    } finally {
      await box.stop();
    }
    assert.equal(readFileSync(marker, 'utf8'), token, 'host /tmp untouched after stop');
    assert.deepEqual(
      ['/proc/sys/fs/file-max', '/proc/sys/fs/nr_open', '/proc/sys/kernel/hostname'].map((p) =>
        readFileSync(p, 'utf8'),
      ),
      sysctls,
    );
    assert.throws(() => process.kill(box.pid, 0), { code: 'ESRCH' });
    assert.deepEqual(
      dirs.filter((d) => existsSync(d)),
      [],
      'sub-cgroups removed',
    );
  });
});
