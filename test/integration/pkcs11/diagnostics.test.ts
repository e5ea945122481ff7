// A PIN in a broken configuration line never leaves the 0600 file: not through `portail
// check`, a failed start, `portailctl reload` (what a trusted-group user sees), the
// daemon's stderr or the audit file; and lines with escape sequences or NULs (ACL or
// configuration) are printed escaped, the caret still under the offending text.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tmpDir } from '../../harness/index.js';
import { PORTAIL, startPortail } from '../daemon/portail.js';

const PORTAILCTL = fileURLToPath(new URL('../../../rpc/portailctl.js', import.meta.url));
const SECRET = '7301-secret-PIN';

async function run(file: string, args: string[]) {
  try {
    const r = await promisify(execFile)(process.execPath, [file, ...args], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    return { code: 0, out: r.stdout + r.stderr, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout + err.stderr, stderr: err.stderr };
  }
}

/** C0 (newline aside) and C1 control characters. */
function controls(s: string): string[] {
  return [...s].filter((c) => {
    const cp = c.codePointAt(0) as number;
    return c !== '\n' && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f));
  });
}

/** Asserts the caret under the quoted line that contains `marker` starts at `expected`. */
function caretAt(out: string, marker: string, expected: string): void {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => l.startsWith('  ') && l.includes(marker));
  assert.ok(i >= 0, `no quoted line with ${marker}:\n${out}`);
  const at = lines[i + 1].indexOf('^');
  assert.ok(lines[i].slice(at).startsWith(expected), `caret not under ${expected}:\n${out}`);
}

const BROKEN: Record<string, string> = {
  // A missing closing quote: a TOML syntax error quoting the line.
  'missing quote': `[escaper]\npkcs11-uri = "pkcs11:token=dev;object=k?pin-value=${SECRET}\n`,
  // A typo in the key name: an unknown key, the line quoted.
  'key typo': `[escaper]\npkcs11-ur = "pkcs11:token=dev;object=k?pin-value=${SECRET}"\n`,
  // A URL password where a HOST:PORT is expected (the value is echoed in the message).
  'url password': `[backends.b]\ntarget-address = "admin:${SECRET}@127.0.0.1:1080"\n`,
  // A password-like key that does not exist.
  'password key': `[backends.b]\ntarget-address = "127.0.0.1:1080"\npassword = "${SECRET}"\n`,
};

test('portail check and a failed start never show a secret of a broken line', async (t) => {
  const dir = tmpDir(t, 'portail-secret-diag-');
  for (const [name, text] of Object.entries(BROKEN)) {
    const path = join(dir, `${name.replace(/ /g, '-')}.toml`);
    writeFileSync(path, text, { mode: 0o600 });
    const check = await run(PORTAIL, ['check', '--config', path]);
    assert.equal(check.code, 1, `${name}: ${check.out}`);
    assert.ok(!check.out.includes(SECRET), `${name}: portail check shows it:\n${check.out}`);
    const json = await run(PORTAIL, ['check', '--json', '--config', path]);
    assert.ok(!json.out.includes(SECRET), `${name}: --json shows it:\n${json.out}`);
    const start = await run(PORTAIL, [
      'daemon',
      '--config',
      path,
      '--bind-proxy-address',
      '127.0.0.1:0',
    ]);
    assert.notEqual(start.code, 0, `${name}: started`);
    assert.match(start.stderr, /error/);
    assert.ok(!start.out.includes(SECRET), `${name}: the failed start shows it:\n${start.out}`);
    if (name === 'key typo') caretAt(check.out, 'pkcs11-ur =', 'pkcs11-ur ');
    if (name === 'url password') assert.match(check.out, /"admin:\*\*\*@127\.0\.0\.1:1080"/);
  }
});

test('portailctl reload, the daemon log and the audit file never show it; control bytes are escaped', async (t) => {
  let sock = '';
  const p = await startPortail(t, {
    config: 'watch-acl = false\n',
    args: (d) => {
      sock = join(d, 'control.sock');
      return ['--bind-rpc-socket', sock];
    },
  });
  let stderr = '';
  p.proc.child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const good = readFileSync(p.configPath, 'utf8');
  for (const [name, text] of Object.entries(BROKEN)) {
    writeFileSync(p.configPath, good + text);
    const r = await run(PORTAILCTL, ['--socket', sock, 'reload']);
    assert.equal(r.code, 1, `${name}: ${r.out}`);
    assert.match(r.stderr, /reload failed/);
    assert.ok(!r.out.includes(SECRET), `${name}: portailctl reload shows it:\n${r.out}`);
    const j = await run(PORTAILCTL, ['--socket', sock, '--json', 'reload']);
    assert.ok(!j.out.includes(SECRET), `${name}: portailctl --json reload shows it:\n${j.out}`);
  }
  const status = await run(PORTAILCTL, ['--socket', sock, 'status', '--json']);
  assert.ok(!status.out.includes(SECRET), status.out);

  // Escape sequences and NULs: an ACL file, then the configuration itself.
  writeFileSync(p.configPath, good);
  p.writeAcl('policy a {\n  action allow \x1b]0;pwned\x07\x1b[2J\x00 oops\n}\n');
  const acl = await run(PORTAILCTL, ['--socket', sock, 'reload']);
  assert.equal(acl.code, 1, acl.out);
  assert.deepEqual(controls(acl.out), [], JSON.stringify(acl.out));
  assert.match(acl.out, /action allow \\x1b\]0;pwned\\x07\\x1b\[2J\\x00 oops/);
  caretAt(acl.out, 'action allow', '\\x1b');
  const check = await run(PORTAIL, ['check-acl-syntax', p.aclPath]);
  assert.equal(check.code, 1, check.out);
  assert.deepEqual(controls(check.out), [], JSON.stringify(check.out));
  caretAt(check.out, 'action allow', '\\x1b');

  p.writeAcl('policy all { action allow }\n');
  writeFileSync(p.configPath, `${good}\ndefault-backend = "x\x1b[31m\x00y"\n`);
  const cfg = await run(PORTAILCTL, ['--socket', sock, 'reload']);
  assert.equal(cfg.code, 1, cfg.out);
  assert.deepEqual(controls(cfg.out), [], JSON.stringify(cfg.out));
  assert.match(cfg.out, /default-backend = "x\\x1b\[31m\\x00y"/);
  const ccheck = await run(PORTAIL, ['check', '--config', p.configPath]);
  assert.deepEqual(controls(ccheck.out), [], JSON.stringify(ccheck.out));

  writeFileSync(p.configPath, good);
  assert.equal((await run(PORTAILCTL, ['--socket', sock, 'reload'])).code, 0);
  const audit = readFileSync(p.auditPath, 'utf8');
  assert.ok(!audit.includes(SECRET), 'the audit file shows it');
  assert.ok(!stderr.includes(SECRET) && !p.proc.output().includes(SECRET), 'stderr shows it');
  assert.deepEqual(controls(stderr.replace(/\t/g, '')), [], JSON.stringify(stderr));
  assert.ok(audit.includes('reload failed'), 'the failed reloads were audited');
});
