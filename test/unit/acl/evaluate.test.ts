// Evaluation (docs/acl.md, "Sets and `in`" and "Evaluation"): every operator and type,
// table-driven and observed from outside (does an allow / a deny policy on the condition
// apply?), then first match, explanations, three-valued logic, routes, and the host index
// against a naive oracle.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type AttrValue, evaluate, loadAclFile, shortReason } from '../../../acl-lang/index.js';
import {
  BACKENDS,
  compile,
  ctx,
  decide,
  FIXTURES,
  naiveDecision,
  observe,
  type Tri,
} from './helpers.js';

type Row = [condition: string, values: Record<string, unknown>, expected: Tri];

function table(name: string, rows: Row[]): void {
  describe(name, () => {
    for (const [condition, values, expected] of rows) {
      const shown = JSON.stringify(values, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
      test(`${condition} over ${shown} is ${expected}`, () => {
        assert.equal(observe(condition, values), expected);
      });
    }
  });
}

const DAY = 86400;

// ---- operators and types --------------------------------------------------------------

table('hostnames: exact, normalised on both sides', [
  ['host == "example.com"', { host: 'example.com' }, 'true'],
  ['host == "example.com"', { host: 'EXAMPLE.com.' }, 'true'],
  ['host == "example.com"', { host: 'www.example.com' }, 'false'],
  ['host == "example.com"', { host: 'example.com.evil.org' }, 'false'],
  ['host == "example.com"', {}, 'unknown'],
  ['host == "example.com"', { host: 443 }, 'unknown'],
  ['host == "Example.COM."', { host: 'example.com' }, 'true'],
  ['host == "bücher.example"', { host: 'xn--bcher-kva.example' }, 'true'],
  ['host == "bücher.example"', { host: 'BÜCHER.example.' }, 'true'],
  ['host == "bücher.example"', { host: 'Bücher.Example' }, 'true'],
  ['host == "bücher.example"', { host: 'bucher.example' }, 'false'],
  ['host == "XN--BCHER-KVA.example."', { host: 'bücher.example' }, 'true'],
  ['host != "example.com"', { host: 'example.org' }, 'true'],
  ['host != "example.com"', { host: 'Example.COM' }, 'false'],
  ['host != "example.com"', {}, 'unknown'],
  ['host == "192.0.2.1"', { host: '192.0.2.1' }, 'true'],
]);

table('hostnames: sets, `.suffix` (apex + subdomains) vs `*.suffix` (subdomains only)', [
  ['host in [".example.com"]', { host: 'example.com' }, 'true'],
  ['host in [".example.com"]', { host: 'a.example.com' }, 'true'],
  ['host in [".example.com"]', { host: 'a.b.example.com' }, 'true'],
  ['host in [".example.com"]', { host: 'EXAMPLE.COM.' }, 'true'],
  ['host in [".example.com"]', { host: 'badexample.com' }, 'false'],
  ['host in [".example.com"]', { host: 'example.com.evil.org' }, 'false'],
  ['host in [".example.com"]', { host: 'example.org' }, 'false'],
  ['host in ["*.example.com"]', { host: 'example.com' }, 'false'],
  ['host in ["*.example.com"]', { host: 'a.example.com' }, 'true'],
  ['host in ["*.example.com"]', { host: 'a.b.example.com' }, 'true'],
  ['host in ["*.example.com"]', { host: 'badexample.com' }, 'false'],
  ['host in ["example.com"]', { host: 'example.com' }, 'true'],
  ['host in ["example.com"]', { host: 'a.example.com' }, 'false'],
  ['host in [".bücher.example"]', { host: 'www.xn--bcher-kva.example' }, 'true'],
  ['host in ["*.Bücher.Example."]', { host: 'www.BÜCHER.example' }, 'true'],
  ['host in ["a.example", ".b.example", "*.c.example"]', { host: 'c.example' }, 'false'],
  ['host in ["a.example", ".b.example", "*.c.example"]', { host: 'x.c.example' }, 'true'],
  ['host in []', { host: 'a.example' }, 'false'],
  ['host in [".example.com"]', {}, 'unknown'],
  ['host in [".example.com"]', { host: ['example.com'] }, 'unknown'],
]);

table('hostnames: regular expressions (unanchored search)', [
  ['host =~ "example"', { host: 'www.example.com' }, 'true'],
  ['host =~ "^example\\.com$"', { host: 'www.example.com' }, 'false'],
  ['host =~ "^www\\.example\\.com$"', { host: 'WWW.Example.com.' }, 'true'],
  ['host =~ "\\.corp\\.example\\.com$"', { host: 'git.corp.example.com' }, 'true'],
  ['host =~ "\\.corp\\.example\\.com$"', { host: 'corp.example.com' }, 'false'],
  ['host !~ "example"', { host: 'other.org' }, 'true'],
  ['host !~ "example"', { host: 'example.org' }, 'false'],
  ['host !~ "example"', {}, 'unknown'],
]);

table('IP addresses: CIDR v4/v6, IPv4-mapped IPv6', [
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': '10.1.2.3' }, 'true'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': '11.0.0.1' }, 'false'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': '::ffff:10.1.2.3' }, 'true'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': '::ffff:11.1.2.3' }, 'false'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': 'fd00::1' }, 'false'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': 'not-an-ip' }, 'unknown'],
  ['dst.ip in ["10.0.0.0/8"]', { 'dst.ip': 167837953 }, 'unknown'],
  ['dst.ip in ["10.0.0.0/8"]', {}, 'unknown'],
  ['dst.ip in ["192.168.1.0/24"]', { 'dst.ip': '192.168.1.255' }, 'true'],
  ['dst.ip in ["192.168.1.0/24"]', { 'dst.ip': '192.168.2.0' }, 'false'],
  ['dst.ip in ["0.0.0.0/0"]', { 'dst.ip': '203.0.113.9' }, 'true'],
  ['dst.ip in ["0.0.0.0/0"]', { 'dst.ip': '2001:db8::1' }, 'false'],
  ['dst.ip in ["fd00::/8"]', { 'dst.ip': 'fd12::1' }, 'true'],
  ['dst.ip in ["fd00::/8"]', { 'dst.ip': 'FD12:0:0::1' }, 'true'],
  ['dst.ip in ["fd00::/8"]', { 'dst.ip': 'fe80::1' }, 'false'],
  ['dst.ip in ["fd00::/8"]', { 'dst.ip': '10.0.0.1' }, 'false'],
  ['dst.ip in ["::ffff:10.0.0.0/104"]', { 'dst.ip': '10.9.9.9' }, 'true'],
  ['dst.ip in ["192.0.2.1"]', { 'dst.ip': '192.0.2.1' }, 'true'],
  ['dst.ip in ["192.0.2.1"]', { 'dst.ip': '192.0.2.2' }, 'false'],
  ['dst.ip in ["2001:db8::/32", "192.0.2.0/24"]', { 'dst.ip': '2001:db8:ffff::1' }, 'true'],
  ['dst.ip == "192.0.2.1"', { 'dst.ip': '::ffff:192.0.2.1' }, 'true'],
  ['dst.ip == "2001:db8::1"', { 'dst.ip': '2001:DB8:0:0::1' }, 'true'],
  ['dst.ip != "192.0.2.1"', { 'dst.ip': '192.0.2.9' }, 'true'],
  ['client.ip in ["127.0.0.0/8", "::1/128"]', { 'client.ip': '::1' }, 'true'],
  ['client.ip in ["127.0.0.0/8", "::1/128"]', { 'client.ip': '127.0.0.5' }, 'true'],
  ['client.ip in ["127.0.0.0/8", "::1/128"]', { 'client.ip': '::2' }, 'false'],
]);

table('lists: intersection, membership', [
  ['user.groups in ["eng", "ops"]', { 'user.groups': ['ops'] }, 'true'],
  ['user.groups in ["eng", "ops"]', { 'user.groups': ['sales', 'eng'] }, 'true'],
  ['user.groups in ["eng", "ops"]', { 'user.groups': ['sales'] }, 'false'],
  ['user.groups in ["eng", "ops"]', { 'user.groups': [] }, 'false'],
  ['user.groups in ["eng", "ops"]', { 'user.groups': ['ENG'] }, 'false'],
  ['user.groups in ["eng", "ops"]', {}, 'unknown'],
  ['user.groups in ["eng", "ops"]', { 'user.groups': 'eng' }, 'unknown'],
  ['user.groups == "eng"', { 'user.groups': ['x', 'eng'] }, 'true'],
  ['user.groups == "eng"', { 'user.groups': ['x'] }, 'false'],
  ['user.groups != "eng"', { 'user.groups': ['x'] }, 'true'],
  ['user.groups != "eng"', { 'user.groups': ['eng'] }, 'false'],
  ['user.groups =~ "^adm"', { 'user.groups': ['x', 'admins'] }, 'true'],
  ['user.groups =~ "^adm"', { 'user.groups': ['x', 'sysadm'] }, 'false'],
  ['user.groups !~ "^adm"', { 'user.groups': ['x'] }, 'true'],
  ['client.cert.san in ["a.example", "b.example"]', { 'client.cert.san': ['b.example'] }, 'true'],
  ['custom.tags in ["a"]', { 'custom.tags': ['b', 'a'] }, 'true'],
]);

table('durations (seconds at run time)', [
  ['device.patch_age < 2wk', { 'device.patch_age': 13 * DAY }, 'true'],
  ['device.patch_age < 2wk', { 'device.patch_age': 14 * DAY }, 'false'],
  ['device.patch_age < 2wk', { 'device.patch_age': 15 * DAY }, 'false'],
  ['device.patch_age < 2wk', { 'device.patch_age': '1d' }, 'unknown'],
  ['device.patch_age < 2wk', {}, 'unknown'],
  ['device.patch_age < 2w', { 'device.patch_age': 13 * DAY }, 'true'],
  ['device.patch_age >= 12h', { 'device.patch_age': 43200 }, 'true'],
  ['device.patch_age >= 12h', { 'device.patch_age': 43199 }, 'false'],
  ['device.patch_age <= 30s', { 'device.patch_age': 30 }, 'true'],
  ['device.patch_age <= 30s', { 'device.patch_age': 31 }, 'false'],
  ['device.patch_age == 15m', { 'device.patch_age': 900 }, 'true'],
  ['device.patch_age != 15m', { 'device.patch_age': 900 }, 'false'],
  ['device.patch_age > 1d', { 'device.patch_age': DAY + 1 }, 'true'],
  ['device.patch_age > 1d', { 'device.patch_age': DAY }, 'false'],
  ['device.patch_age < 1500ms', { 'device.patch_age': 1 }, 'true'],
  ['device.patch_age < 1500ms', { 'device.patch_age': 2 }, 'false'],
  ['device.patch_age < 86400', { 'device.patch_age': 86399 }, 'true'],
  ['device.patch_age in [1d, 2wk]', { 'device.patch_age': 14 * DAY }, 'true'],
  ['device.patch_age in [1d, 2wk]', { 'device.patch_age': 2 * DAY }, 'false'],
]);

table('regular expressions on strings', [
  ['path =~ "^/admin"', { path: '/admin/users' }, 'true'],
  ['path =~ "^/admin"', { path: '/x/admin' }, 'false'],
  ['path =~ "admin"', { path: '/x/admin' }, 'true'],
  ['path =~ "\\.git$"', { path: '/repo.git' }, 'true'],
  ['path =~ "\\.git$"', { path: '/repogit' }, 'false'],
  ['path =~ "(?i)^/ADMIN"', { path: '/admin' }, 'true'],
  ['path =~ "^/caf\\x{e9}$"', { path: '/café' }, 'true'],
  ['path =~ ""', { path: '' }, 'true'],
  ['path =~ "x"', {}, 'unknown'],
  ['path =~ "x"', { path: 42 }, 'unknown'],
  ['path !~ "^/admin"', { path: '/x' }, 'true'],
  ['path !~ "^/admin"', { path: '/admin' }, 'false'],
  ['path !~ "^/admin"', {}, 'unknown'],
  ['path !~ "^/admin"', { path: 42 }, 'unknown'],
]);

table('numbers', [
  ['port == 443', { port: 443 }, 'true'],
  ['port == 443', { port: 80 }, 'false'],
  ['port == 443', { port: 443n }, 'true'],
  ['port == 443', { port: '443' }, 'unknown'],
  ['port == 443', {}, 'unknown'],
  ['port != 443', { port: 80 }, 'true'],
  ['port != 443', { port: 443 }, 'false'],
  ['port < 1024', { port: 1023 }, 'true'],
  ['port < 1024', { port: 1024 }, 'false'],
  ['port <= 1024', { port: 1024 }, 'true'],
  ['port <= 1024', { port: 1025 }, 'false'],
  ['port > 1024', { port: 1025 }, 'true'],
  ['port > 1024', { port: 1024 }, 'false'],
  ['port >= 1024', { port: 1024 }, 'true'],
  ['port >= 1024', { port: 1023 }, 'false'],
  ['port in [80, 443]', { port: 443 }, 'true'],
  ['port in [80, 443]', { port: 8080 }, 'false'],
  ['port in [80, 443]', { port: '443' }, 'unknown'],
  ['device.trust_level >= 2', { 'device.trust_level': 2 }, 'true'],
  ['device.trust_level >= 2', { 'device.trust_level': 1 }, 'false'],
  ['time.hour > -1', { 'time.hour': 0 }, 'true'],
  ['big == 9223372036854775806', { big: 9223372036854775806n }, 'true'],
  ['big == 9223372036854775806', { big: 9223372036854775805n }, 'false'],
  ['big < 9223372036854775806', { big: 9223372036854775805n }, 'true'],
  ['big > -9223372036854775807', { big: -5 }, 'true'],
  ['device.trust_level in [9007199254740993]', { 'device.trust_level': 9007199254740992 }, 'false'],
]);

table('booleans', [
  ['user.authenticated == true', { 'user.authenticated': true }, 'true'],
  ['user.authenticated == true', { 'user.authenticated': false }, 'false'],
  ['user.authenticated == true', { 'user.authenticated': 'true' }, 'unknown'],
  ['user.authenticated == true', { 'user.authenticated': 1 }, 'unknown'],
  ['user.authenticated == true', {}, 'unknown'],
  ['user.authenticated != true', { 'user.authenticated': false }, 'true'],
  ['user.authenticated == false', { 'user.authenticated': false }, 'true'],
]);

table('strings, and run-time type mismatches on known attributes', [
  ['proxy.cmd == "connect"', { 'proxy.cmd': 'connect' }, 'true'],
  ['proxy.cmd == "connect"', { 'proxy.cmd': 'CONNECT' }, 'false'],
  ['proxy.cmd != "connect"', { 'proxy.cmd': 'forward' }, 'true'],
  ['proxy.cmd != "connect"', { 'proxy.cmd': 'connect' }, 'false'],
  ['proxy.cmd in ["connect", "forward"]', { 'proxy.cmd': 'forward' }, 'true'],
  ['proxy.cmd in ["connect", "forward"]', { 'proxy.cmd': 'tcp_connect' }, 'false'],
  ['proxy.cmd == "connect"', { 'proxy.cmd': 1 }, 'unknown'],
  ['proxy.cmd == "connect"', { 'proxy.cmd': ['connect'] }, 'unknown'],
  ['proxy.cmd in ["1"]', { 'proxy.cmd': 1 }, 'unknown'],
  ['proxy.cmd in ["connect"]', { 'proxy.cmd': true }, 'unknown'],
  ['client.user == "alice"', { 'client.user': 'alice' }, 'true'],
  ['custom.x == "a"', { 'custom.x': 'a' }, 'true'],
  ['custom.x == "a"', { 'custom.x': 1 }, 'unknown'],
]);

table('three-valued logic', [
  ['custom.x == "a" or port == 443', { port: 443 }, 'true'],
  ['custom.x == "a" or port == 443', { port: 80 }, 'unknown'],
  ['custom.x == "a" and port == 443', { port: 80 }, 'false'],
  ['custom.x == "a" and port == 443', { port: 443 }, 'unknown'],
  ['port == 443 and custom.x == "a"', { port: 80 }, 'false'],
  ['not custom.x == "a"', {}, 'unknown'],
  ['not (custom.x == "a" and port == 443)', { port: 80 }, 'true'],
  ['not (custom.x == "a" or port == 443)', { port: 443 }, 'false'],
  ['not not custom.x == "a"', {}, 'unknown'],
  ['not user.authenticated == true', {}, 'unknown'],
  ['not user.authenticated == true', { 'user.authenticated': false }, 'true'],
]);

table('precedence: or < and < not < comparison', [
  ['port == 1 or port == 2 and port == 3', { port: 1 }, 'true'],
  ['port == 3 and port == 2 or port == 1', { port: 1 }, 'true'],
  ['(port == 1 or port == 2) and port == 3', { port: 1 }, 'false'],
  ['not port == 1 and port == 2', { port: 2 }, 'true'],
  ['not (port == 1 or port == 2)', { port: 2 }, 'false'],
  ['not port == 1 or port == 1', { port: 1 }, 'true'],
]);

test('regex search is linear-time: no backtracking blow-up', () => {
  const acl = compile('policy p { when path =~ "^(a+)+$" action allow }');
  const start = performance.now();
  const d = decide(acl, { path: `${'a'.repeat(100_000)}b` });
  assert.equal(d.action, 'deny');
  assert.ok(performance.now() - start < 500, 'regex took too long');
});

// ---- policies -------------------------------------------------------------------------

describe('policies', () => {
  test('first match decides, in file order', () => {
    const a = compile(
      'policy a { when host == "x.example" action allow }\npolicy b { when host == "x.example" action deny }',
    );
    assert.deepEqual(
      [decide(a, { host: 'x.example' }).action, decide(a, { host: 'x.example' }).policy],
      ['allow', 'a'],
    );
    const b = compile(
      'policy b { when host == "x.example" action deny }\npolicy a { when host == "x.example" action allow }',
    );
    assert.equal(decide(b, { host: 'x.example' }).policy, 'b');
    assert.equal(decide(b, { host: 'x.example' }).action, 'deny');
  });

  test('a failed require is recorded with the actual values and evaluation goes on', () => {
    const acl = compile(`
policy eng_git {
  when host == "git.example"
  require user.groups in ["eng", "ops"] and device.trust_level >= 2
  action allow
}
policy other { when port == 443 action deny }
policy last { action allow }
`);
    const d = decide(acl, {
      host: 'git.example',
      port: 443,
      'user.groups': ['sales'],
      'device.trust_level': 3,
    });
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, 'other');
    assert.equal(d.failed.length, 1);
    const f = d.failed[0];
    assert.equal(f.policy, 'eng_git');
    assert.equal(f.action, 'allow');
    assert.equal(f.clause, 'require');
    assert.equal(f.result, 'false');
    assert.equal(f.expression, 'user.groups in ["eng", "ops"] and device.trust_level >= 2');
    assert.deepEqual(
      f.comparisons.map((c) => [c.text, c.attribute, c.actual, c.result]),
      [
        ['user.groups in ["eng", "ops"]', 'user.groups', ['sales'], 'false'],
        ['device.trust_level >= 2', 'device.trust_level', 3, 'true'],
      ],
    );
    assert.deepEqual(d.missing, []);
    // With the requirement met, the first policy decides and nothing is recorded.
    const ok = decide(acl, {
      host: 'git.example',
      port: 443,
      'user.groups': ['ops'],
      'device.trust_level': 2,
    });
    assert.deepEqual([ok.action, ok.policy, ok.failed], ['allow', 'eng_git', []]);
  });

  test('a policy whose `when` is false is not recorded', () => {
    const acl = compile('policy a { when port == 1 require port == 2 action allow }');
    const d = decide(acl, { port: 3 });
    assert.deepEqual(d.failed, []);
  });

  test('default deny: no policy matched', () => {
    const acl = compile('policy a { when host == "a.example" action allow }');
    const d = decide(acl, { host: 'b.example' });
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, null);
    assert.equal(d.reason, 'no policy matched');
    const empty = compile('# nothing\n');
    assert.equal(decide(empty, { host: 'a.example' }).action, 'deny');
  });

  test('no ACL loaded (null): deny everything', () => {
    const d = evaluate(null, ctx({ host: 'a.example', port: 443 }));
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, null);
    assert.deepEqual(d.backends, []);
  });

  test('a policy with no when and no require applies to everything', () => {
    const acl = compile('policy all { action allow }');
    assert.equal(decide(acl, {}).action, 'allow');
  });

  test('log tags on the deciding action', () => {
    const acl = compile(`
policy slow { when device.patch_age > 2wk action allow log "slow_patching" }
policy bad { when port == 25 action deny log "smtp" }
policy rest { action allow }
`);
    assert.deepEqual(decide(acl, { 'device.patch_age': 30 * DAY, port: 443 }).tags, [
      'slow_patching',
    ]);
    assert.deepEqual(decide(acl, { 'device.patch_age': DAY, port: 25 }).tags, ['smtp']);
    assert.deepEqual(decide(acl, { 'device.patch_age': DAY, port: 443 }).tags, []);
  });

  test('redirect carries its URI; deny its explain template (resolved against the ACL folder)', () => {
    const acl = compile(
      `policy help { when path =~ "^/help" action redirect "https://help.example.com/denied" }
policy tpl { when port == 25 action deny explain-template="explain/smtp.html" }`,
      { baseDir: '/etc/portail' },
    );
    const r = decide(acl, { path: '/help/x', port: 80 });
    assert.equal(r.action, 'redirect');
    assert.equal(r.policy, 'help');
    assert.equal(r.redirect, 'https://help.example.com/denied');
    const t = decide(acl, { path: '/', port: 25 });
    assert.equal(t.action, 'deny');
    assert.equal(t.explainTemplate, '/etc/portail/explain/smtp.html');
  });
});

// ---- three-valued logic on whole policies ------------------------------------------------

describe('missing attributes resolve toward the restrictive outcome', () => {
  test('`not` of a missing attribute never allows', () => {
    const acl = compile('policy anon_ok { when not user.authenticated == true action allow }');
    const d = decide(acl, { host: 'a.example' });
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, null);
    assert.deepEqual(d.missing, ['user.authenticated']);
  });

  test('a deny over a missing attribute denies, and names it', () => {
    const acl = compile(`
policy low_trust { when device.trust_level < 2 action deny }
policy rest { action allow }
`);
    const d = decide(acl, { host: 'a.example' });
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, 'low_trust');
    assert.deepEqual(d.missing, ['device.trust_level']);
    assert.match(d.reason, /device\.trust_level/);
    assert.equal(decide(acl, { 'device.trust_level': 3 }).action, 'allow');
  });

  test('a deny whose require is unknown denies; one whose require is false does not', () => {
    const acl = compile(`
policy d { when port == 443 require device.trust_level < 2 action deny }
policy rest { action allow }
`);
    assert.equal(decide(acl, { port: 443 }).policy, 'd');
    assert.equal(decide(acl, { port: 443, 'device.trust_level': 5 }).policy, 'rest');
    assert.equal(decide(acl, { port: 80 }).policy, 'rest');
    // An unknown `when` with a false `require`: known not to hold, so no denial.
    const w = compile(`
policy d { when custom.zone == "x" require port == 1 action deny }
policy rest { action allow }
`);
    assert.equal(decide(w, { port: 2 }).policy, 'rest');
    assert.equal(decide(w, { port: 1 }).policy, 'd');
  });

  test('an allow over a missing attribute does not apply; the explanation names it', () => {
    const acl = compile(`
policy a { when custom.zone == "corp" action allow }
policy b { when port == 443 require user.groups in ["eng"] action allow }
`);
    const d = decide(acl, { port: 443 });
    assert.equal(d.action, 'deny');
    assert.equal(d.policy, null);
    assert.deepEqual(
      d.failed.map((f) => [f.policy, f.clause, f.result]),
      [
        ['a', 'when', 'unknown'],
        ['b', 'require', 'unknown'],
      ],
    );
    assert.deepEqual(d.failed[0].comparisons[0].actual, undefined);
    assert.deepEqual(d.missing, ['custom.zone', 'user.groups']);
  });

  test('a refusal names in its reason what it could not evaluate; an allow does not', () => {
    const none = compile('policy a { require nosuch.attr == "x" action allow }');
    assert.equal(decide(none, { port: 1 }).reason, 'no policy matched; missing: nosuch.attr');
    assert.equal(shortReason(decide(none, { port: 1 })), 'no policy matched');
    assert.equal(decide(none, { 'nosuch.attr': 'y' }).reason, 'no policy matched');
    const later = compile(`
policy a { require nosuch.attr == "x" and custom.b == 1 action allow }
policy rest { action deny }
`);
    const d = decide(later, {});
    assert.equal(d.policy, 'rest');
    assert.equal(d.reason, 'denied by policy rest; missing: custom.b, nosuch.attr');
    assert.equal(shortReason(d), 'denied by policy rest');
    const deny = compile('policy low { when device.trust_level < 2 action deny }');
    assert.equal(
      decide(deny, {}).reason,
      'denied by policy low (its conditions could not be ruled out); missing: device.trust_level',
    );
    // Allowed by a later policy: the reason is the allow's alone (missing is still listed).
    const allowed = compile(`
policy a { require nosuch.attr == "x" action deny }
policy b { when custom.zone == "x" action allow }
policy rest { action allow }
`);
    const ok = decide(allowed, { 'nosuch.attr': 'z' });
    assert.equal(ok.reason, 'allowed by policy rest');
    assert.deepEqual(ok.missing, ['custom.zone']);
    // A route's unknown is not the refusal's cause.
    const routed = compile(
      'route r { when custom.zone == "x" use ["par01"] }\npolicy p { when port == 1 action allow }',
    );
    assert.equal(decide(routed, { port: 2 }).reason, 'no policy matched');
  });

  test('a redirect over a missing attribute does not apply', () => {
    const acl = compile(
      'policy r { when custom.zone == "x" action redirect "https://h.example/" }\npolicy rest { action allow }',
    );
    assert.equal(decide(acl, {}).policy, 'rest');
  });

  test('a route over a missing attribute does not apply', () => {
    const acl = compile(`
route r { when custom.zone == "corp" use ["par01"] }
policy rest { action allow }
`);
    const d = decide(acl, { host: 'a.example' });
    assert.deepEqual(d.routes, []);
    assert.deepEqual(d.backends, []);
    assert.equal(d.local, true);
    assert.ok(d.missing.includes('custom.zone'));
    const dd = decide(acl, { host: 'a.example' }, { defaultBackend: 'par02' });
    assert.deepEqual(dd.backends, ['par02']);
  });

  test('docs/acl.md example: `when path =~ …` deny also denies requests without a path', () => {
    const acl = compile(
      'policy p { when path =~ "^/admin" action deny }\npolicy rest { action allow }',
    );
    assert.equal(decide(acl, { 'proxy.cmd': 'connect' }).policy, 'p');
    const scoped = compile(
      'policy p { when proxy.cmd == "forward" and path =~ "^/admin" action deny }\npolicy rest { action allow }',
    );
    assert.equal(decide(scoped, { 'proxy.cmd': 'connect' }).policy, 'rest');
    assert.equal(decide(scoped, { 'proxy.cmd': 'forward', path: '/admin' }).policy, 'p');
  });
});

// ---- routes ---------------------------------------------------------------------------

describe('routes', () => {
  const ROUTES = `
route r1 { when host == "x.example" use ["par02", "par01"] }
route r2 { when port == 443 use ["par01", "par03"] }
route r3 { when host == "y.example" use ["par03"] }
route d  { when port == 22 use ["direct"] }
policy via_backend { when route.local == false and route.backend == "par02" action allow }
policy local_only { when route.local == true action redirect "https://local.example/" }
policy rest { action deny }
`;

  test('every matching route appends its backends in file order, duplicates dropped', () => {
    const acl = compile(ROUTES);
    const d = decide(acl, { host: 'x.example', port: 443 });
    assert.deepEqual(d.routes, ['r1', 'r2']);
    assert.deepEqual(d.backends, ['par02', 'par01', 'par03']);
    assert.equal(d.local, false);
    assert.equal(d.policy, 'via_backend');
  });

  test('the default backend is the candidate only when no route matched', () => {
    const acl = compile(ROUTES);
    const none = decide(acl, { host: 'z.example', port: 80 }, { defaultBackend: 'par02' });
    assert.deepEqual(none.routes, []);
    assert.deepEqual(none.backends, ['par02']);
    assert.equal(none.local, false);
    assert.equal(none.policy, 'via_backend');
    const some = decide(acl, { host: 'y.example', port: 80 }, { defaultBackend: 'par02' });
    assert.deepEqual(some.backends, ['par03']);
    assert.equal(some.policy, 'rest');
  });

  test('no candidate: direct exit, route.local is true', () => {
    const acl = compile(ROUTES);
    const d = decide(acl, { host: 'z.example', port: 80 });
    assert.deepEqual(d.backends, []);
    assert.equal(d.local, true);
    assert.equal(d.action, 'redirect');
    assert.equal(d.policy, 'local_only');
  });

  test('the reserved backend `direct`', () => {
    const acl = compile(ROUTES);
    const d = decide(acl, { host: 'z.example', port: 22 });
    assert.deepEqual(d.routes, ['d']);
    assert.deepEqual(d.backends, ['direct']);
    assert.equal(d.local, true);
    assert.equal(d.policy, 'local_only');
  });

  test('route.local and route.backend come from routing, not from the context', () => {
    const acl = compile(ROUTES);
    const d = decide(acl, {
      host: 'x.example',
      port: 80,
      'route.local': true,
      'route.backend': 'par03',
    });
    assert.equal(d.policy, 'via_backend');
  });

  test('forceLocal (fallback-to-direct): routes skipped, policies see route.local = true', () => {
    const acl = compile(ROUTES);
    const d = decide(
      acl,
      { host: 'x.example', port: 443 },
      { forceLocal: true, defaultBackend: 'par01' },
    );
    assert.deepEqual(d.routes, []);
    assert.deepEqual(d.backends, []);
    assert.equal(d.local, true);
    assert.equal(d.policy, 'local_only');
    // `require route.local == false` forbids the fallback for its destinations.
    const strict = compile(
      'route r { use ["par01"] }\npolicy p { when host == "x.example" require route.local == false action allow }',
    );
    assert.equal(decide(strict, { host: 'x.example' }).action, 'allow');
    assert.equal(decide(strict, { host: 'x.example' }, { forceLocal: true }).action, 'deny');
  });

  test('a route without `when` always applies', () => {
    const acl = compile('route all { use ["par03"] }\npolicy p { action allow }');
    assert.deepEqual(decide(acl, {}).backends, ['par03']);
  });
});

// ---- host index vs naive first match --------------------------------------------------------

/** A deterministic pseudo-random generator (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hostHeavyAcl(n: number): string {
  const rnd = prng(42);
  const out: string[] = [];
  const big = Array.from({ length: 300 }, (_, i) => `"big${i}.example"`).join(', ');
  for (let i = 0; i < n; i++) {
    const action = rnd() < 0.5 ? 'allow' : 'deny';
    const req = rnd() < 0.3 ? ` require port == ${rnd() < 0.5 ? 443 : 80}` : '';
    let when: string;
    switch (i % 9) {
      case 0:
        when = `host == "h${i}.example"`;
        break;
      case 1:
        when = `host in [".d${i % 50}.example"]`;
        break;
      case 2:
        when = `host in ["*.s${i % 30}.example", "x${i}.example"]`;
        break;
      case 3:
        when = `host == "h${i}.example" or host in [".o${i % 20}.example"]`;
        break;
      case 4:
        when = `host == "h${i % 100}.example" and port == ${i % 3 === 0 ? 443 : 80}`;
        break;
      case 5:
        when = `port == ${i % 7 === 0 ? 22 : 8000 + i} and host in ["*.d${i % 50}.example"]`;
        break;
      // Host regexes: blocks keyed by the regex set's matches.
      case 6:
        when = `host =~ "^h${i % 40}\\."`;
        break;
      case 7:
        when = `host =~ "\\.d${i % 50}\\.example$" and port == ${i % 2 === 0 ? 443 : 80}`;
        break;
      default:
        when = `host =~ "^x${i % 90}" or host == "h${i}.example"`;
    }
    out.push(`policy p${i} { when ${when}${req} action ${action} }`);
    out.push(`route r${i} { when ${when} use ["par0${1 + (i % 3)}"] }`);
    // Catch-alls in between: they must win over every later host policy.
    if (i === 250) out.push('policy catch_ssh { when port == 22 action deny }');
    if (i === 500) out.push('policy catch_re { when host =~ "^h5" action allow }');
    if (i === 700) out.push('policy catch_missing { when custom.zone == "x" action deny }');
    if (i === 600) out.push('policy catch_nre { when host !~ "example$" action deny }');
    if (i === 650)
      out.push('policy catch_notre { when not host =~ "^[a-w]" and port == 80 action allow }');
    if (i === 800) out.push(`policy catch_big { when host in [${big}] action allow }`);
    if (i === 900)
      out.push('policy catch_not { when not host == "h1.example" and port == 8080 action allow }');
    if (i === 950) out.push('route catch_route { when port == 8443 use ["direct"] }');
  }
  return out.join('\n');
}

function sampleHosts(n: number): unknown[] {
  const rnd = prng(7);
  const pick = (k: number) => Math.floor(rnd() * k);
  // Missing, empty, wrong-typed and unrelated hosts first: the index must fall back.
  const hosts: unknown[] = [undefined, 'unrelated.org', 'example', '', 42, ['h1.example']];
  for (let i = 0; i < n; i++) {
    const forms = [
      `h${pick(1100)}.example`,
      `a.d${pick(60)}.example`,
      `d${pick(60)}.example`,
      `q.r.s${pick(40)}.example`,
      `s${pick(40)}.example`,
      `x${pick(1100)}.example`,
      `z.o${pick(25)}.example`,
      `big${pick(320)}.example`,
      `H${pick(1100)}.EXAMPLE.`,
    ];
    hosts.push(forms[pick(forms.length)]);
  }
  return hosts;
}

describe('host index keeps first-match order', () => {
  test('1,000 host policies and routes with catch-alls in between, against a naive evaluation', () => {
    const acl = compile(hostHeavyAcl(1000));
    assert.ok(acl.policies.length > 1000);
    const ports = [22, 80, 443, 8080, 8443];
    let checked = 0;
    for (const host of sampleHosts(250)) {
      for (const port of ports) {
        for (const zone of [undefined, 'y']) {
          const values: Record<string, unknown> = { port };
          if (host !== undefined) values.host = host;
          if (zone !== undefined) values['custom.zone'] = zone;
          const d = evaluate(acl, ctx(values));
          const want = naiveDecision(acl, ctx(values));
          assert.deepEqual(d.routes, want.routes, `routes for ${String(host)}:${port}`);
          assert.deepEqual(d.backends, want.backends, `backends for ${String(host)}:${port}`);
          assert.equal(d.policy, want.policy, `policy for ${String(host)}:${port} zone=${zone}`);
          checked++;
        }
      }
    }
    assert.ok(checked > 2500);
  });
});

// ---- list files ---------------------------------------------------------------------------

describe('list files (loadAclFile)', () => {
  test('a 10,000-entry list with exact, `.suffix` and `*.suffix` entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portail-acl-'));
    try {
      mkdirSync(join(dir, 'lists'));
      const lines = ['# generated blocklist', ''];
      for (let i = 0; i < 10_000; i++) {
        if (i % 3 === 0) lines.push(`e${i}.list.example`);
        else if (i % 3 === 1) lines.push(`.s${i}.example   # suffix`);
        else lines.push(`*.w${i}.example`);
      }
      lines.push('', '  Mixed.Case.Example.  ', 'bücher.example');
      writeFileSync(join(dir, 'lists', 'blocked.txt'), lines.join('\n'));
      writeFileSync(
        join(dir, 'filter.acl'),
        'policy first { when host == "e0.list.example" and port == 8080 action allow }\npolicy blocked {\n  when host in file("lists/blocked.txt")\n  action deny\n}\npolicy rest { action allow }\n',
      );
      const r = await loadAclFile(join(dir, 'filter.acl'), { backends: BACKENDS });
      assert.deepEqual(r.diagnostics, []);
      assert.ok(r.acl);
      assert.ok(r.files.some((f) => f.endsWith(join('lists', 'blocked.txt'))));
      const cases: [string, number, string][] = [
        ['e0.list.example', 443, 'blocked'],
        ['e0.list.example', 8080, 'first'],
        ['e9999.list.example', 443, 'blocked'],
        ['sub.e9999.list.example', 443, 'rest'],
        ['e3.list.example', 443, 'blocked'],
        ['e1.list.example', 443, 'rest'],
        ['s1.example', 443, 'blocked'],
        ['a.b.s9997.example', 443, 'blocked'],
        ['S9997.EXAMPLE.', 443, 'blocked'],
        ['s9998.example', 443, 'rest'],
        ['w2.example', 443, 'rest'],
        ['x.w2.example', 443, 'blocked'],
        ['x.w9998.example', 443, 'blocked'],
        ['mixed.case.example', 443, 'blocked'],
        ['xn--bcher-kva.example', 443, 'blocked'],
        ['list.example', 443, 'rest'],
        ['unrelated.org', 443, 'rest'],
      ];
      for (const [host, port, policy] of cases) {
        assert.equal(decide(r.acl, { host, port }).policy, policy, host);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a list for an IP attribute holds CIDRs; bad lines are warnings, skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portail-acl-'));
    try {
      writeFileSync(
        join(dir, 'nets.txt'),
        '10.0.0.0/8\n# comment\nfd00::/8\nnot-a-net\n192.0.2.7\n',
      );
      writeFileSync(
        join(dir, 'filter.acl'),
        'policy nets {\n  when dst.ip in file("nets.txt")\n  action allow\n}\n',
      );
      const r = await loadAclFile(join(dir, 'filter.acl'));
      assert.ok(r.acl);
      assert.deepEqual(
        r.diagnostics.map((d) => [d.severity, d.line, d.column]),
        [['warning', 2, 23]],
      );
      const ip = (a: string) => decide(r.acl, { 'dst.ip': a }).action;
      assert.equal(ip('10.2.3.4'), 'allow');
      assert.equal(ip('::ffff:10.2.3.4'), 'allow');
      assert.equal(ip('fd00::5'), 'allow');
      assert.equal(ip('192.0.2.7'), 'allow');
      assert.equal(ip('192.0.2.8'), 'deny');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the fixture valid.acl loads and decides', async () => {
    const r = await loadAclFile(join(FIXTURES, 'valid.acl'), { backends: BACKENDS });
    assert.deepEqual(r.diagnostics, []);
    assert.ok(r.acl);
    const d = (values: Record<string, AttrValue>) => decide(r.acl, values);
    assert.equal(d({ host: 'tracker.example' }).policy, 'blocked');
    assert.deepEqual(d({ host: 'tracker.example' }).tags, ['blocklist']);
    assert.equal(d({ host: 'x.ads.example' }).policy, 'blocked');
    assert.equal(d({ host: 'ads.example' }).policy, 'deny_all');
    assert.equal(d({ host: 'BÜCHER.example' }).policy, 'blocked');
    const git = d({
      host: 'git.corp.example.com',
      'user.groups': ['eng'],
      'device.trust_level': 2,
    });
    assert.deepEqual([git.policy, git.backends], ['eng_git', ['par01', 'par02']]);
    const lab = d({ host: 'a.test.example.com', port: 8443 });
    assert.deepEqual(lab.backends, ['par02', 'direct']);
    assert.ok(lab.explainTemplate?.endsWith(join('explain', 'global-deny.html')));
  });
});
