// The reload's ACL loader (docs/operations.md "Reloads"): parse and check in a worker
// thread, compile on the main thread in slices. It must decide exactly as the
// synchronous loader, report errors with their position, and turn a worker that
// fails or overruns into a diagnostic, never an exception.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { evaluate, formatDiagnostics, loadAclFile } from '../../../acl-lang/index.js';
import { loadAclOffThread } from '../../../proxy/state/acl-load.js';
import { ACL_ATTRIBUTES } from '../../../proxy/state/snapshot.js';
import { deepAcls } from '../acl/deep-acl.js';
import { ctx, FIXTURES } from '../acl/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'portail-acl-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const opts = { backends: new Set(['par01', 'par02']), attributes: ACL_ATTRIBUTES };

const CONTEXTS: Record<string, unknown>[] = [
  { host: 'git.corp.example.com', port: 443, 'user.groups': ['eng'], 'device.trust_level': 3 },
  { host: 'git.corp.example.com', port: 443, 'user.groups': ['sales'] },
  { host: 'x.lab.example.com', port: 2000 },
  { host: 'a.test.example.com', port: 80 },
  { host: 'malware.example', port: 443 },
  { host: 'www.blocked.example', port: 443 },
  { host: 'h', 'dst.ip': '10.1.2.3', 'user.authenticated': true, 'device.patch_age': 60 },
  { host: 'h', 'dst.ip': 'fd00::1', 'user.authenticated': true, 'device.patch_age': 9e6 },
  { host: 'help.example', 'proxy.cmd': 'forward', path: '/help/me' },
  { host: 'other.example', port: 22 },
  {},
];

test('off the event loop, the fixture ACL decides exactly as loadAclFile', async () => {
  const path = join(FIXTURES, 'valid.acl');
  const sync = await loadAclFile(path, opts);
  const off = await loadAclOffThread(path, opts);
  assert.ok(sync.acl && off.acl, formatDiagnostics(off.diagnostics));
  assert.equal(off.acl.hash, sync.acl.hash);
  assert.deepEqual(off.acl.files, sync.acl.files);
  assert.deepEqual([...off.acl.attributes].sort(), [...sync.acl.attributes].sort());
  assert.deepEqual(off.diagnostics, sync.diagnostics);
  for (const c of CONTEXTS) {
    assert.deepEqual(evaluate(off.acl, ctx(c)), evaluate(sync.acl, ctx(c)), JSON.stringify(c));
  }
});

test('more blocks than one chunk: file order and the host index survive the chunks', async () => {
  const lines: string[] = [];
  for (let i = 0; i < 1234; i++)
    lines.push(
      `policy p${i} { when host == "h${i}.example" or host =~ "^r${i}\\\\." action allow }`,
    );
  lines.push('route r { when host in [".example", "*.x"] use ["par01"] }');
  lines.push('route s { when dst.ip in ["10.0.0.0/8"] use ["par02"] }');
  lines.push('policy rest { action deny }');
  const path = join(dir, 'many.acl');
  writeFileSync(path, `${lines.join('\n')}\n`);
  const sync = await loadAclFile(path, opts);
  const off = await loadAclOffThread(path, opts);
  assert.ok(sync.acl && off.acl, formatDiagnostics(off.diagnostics));
  assert.equal(off.acl.policies.length, 1235);
  for (const host of ['h0.example', 'h1233.example', 'r777.x', 'nope.example']) {
    const c = ctx({ host, 'dst.ip': '10.1.1.1' });
    assert.deepEqual(evaluate(off.acl, c), evaluate(sync.acl, c), host);
  }
});

test('errors come back positioned, nothing compiled', async () => {
  const path = join(dir, 'bad.acl');
  writeFileSync(path, 'policy a {\n  action alow\n}\n');
  const r = await loadAclOffThread(path, opts);
  assert.equal(r.acl, null);
  assert.match(formatDiagnostics(r.diagnostics), /bad\.acl:2:10: error/);
  writeFileSync(path, deepAcls(100_000)[1].source);
  const deep = await loadAclOffThread(path, opts);
  assert.equal(deep.acl, null);
  assert.match(
    formatDiagnostics(deep.diagnostics),
    /bad\.acl:2:264: error: expression nested too deeply/,
  );
});

test('a worker that overruns its deadline is a diagnostic, not an exception', async () => {
  const r = await loadAclOffThread(join(FIXTURES, 'valid.acl'), { ...opts, timeoutMs: 1 });
  assert.equal(r.acl, null);
  assert.equal(r.diagnostics.length, 1);
  assert.equal(r.diagnostics[0].line, 0);
  assert.match(r.diagnostics[0].message, /the ACL loader did not finish within 0\.001 s/);
});

test('a missing file is a diagnostic', async () => {
  const r = await loadAclOffThread(join(dir, 'nope.acl'), opts);
  assert.equal(r.acl, null);
  assert.match(formatDiagnostics(r.diagnostics), /cannot read ACL file/);
});
