// Audit and diagnostics destinations, in child processes where stdout/stderr matter:
// every field of docs/reference/audit.md at top level, JSON lines for
// container/stdout/file, human lines for development, the journald fallback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { auditRecord, createLogging, keyValues } from '../../../proxy/audit/index.js';
import { isoTime } from '../../../proxy/audit/record.js';
import { tempDir } from '../pipeline/helpers.js';

const auditModule = fileURLToPath(new URL('../../../proxy/audit/index.js', import.meta.url));
const tmp = tempDir();
after(() => tmp.cleanup());

const SPEC_FIELDS = [
  'event',
  'trace_id',
  'protocol',
  'client',
  'uid',
  'user',
  'process',
  'device',
  'host',
  'port',
  'action',
  'policy',
  'route',
  'reason',
  'tags',
  'eval_us',
];

const decision = {
  trace_id: '0123456789abcdef0123456789abcdef',
  protocol: 'socks5',
  client: '127.0.0.1:40000',
  uid: 1000,
  host: 'example.com',
  port: 443,
  action: 'deny' as const,
  policy: 'deny_all',
  route: 'direct',
  reason: 'denied by policy deny_all',
  eval_us: 3,
};

/** Runs a snippet with createLogging/auditRecord in scope, in a child process. */
function runBoth(snippet: string): { stdout: string; stderr: string } {
  const code = `import { createLogging, auditRecord } from ${JSON.stringify(auditModule)};\n${snippet}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { stdout: r.stdout, stderr: r.stderr };
}

test('container: audit and diagnostics are JSON lines on stdout, nothing on stderr', () => {
  const { stdout, stderr } = runBoth(`
const l = createLogging({ preset: 'container' });
l.log.info('listening on 127.0.0.1:1080');
l.audit.write(auditRecord('decision', ${JSON.stringify(decision)}));
l.flush();`);
  assert.equal(stderr, '');
  const lines = stdout
    .trim()
    .split('\n')
    .map((x) => JSON.parse(x));
  assert.equal(lines.length, 2);
  // Diagnostics and audit are separate streams: their interleaving is not an ordering
  // promise, so find each line by what it is.
  assert.ok(lines.some((x) => x.msg === 'listening on 127.0.0.1:1080'));
  const a = lines.find((x) => x.event === 'decision');
  assert.ok(a, 'the audit record');
  for (const f of SPEC_FIELDS) assert.ok(f in a, `field ${f}`);
  assert.equal(a.event, 'decision');
  assert.equal(a.port, 443);
  assert.equal(a.action, 'deny');
  assert.deepEqual(a.tags, []);
  assert.equal(a.level, 'info');
  assert.match(a.time, /^\d{4}-\d\d-\d\dT/);
  assert.match(a.msg, /deny socks5 127\.0\.0\.1:40000 uid 1000 -> example\.com:443/);
});

test('development: human lines on stderr; [log] audit = stdout sends JSON to stdout', () => {
  const dev = runBoth(`
const l = createLogging({ preset: 'development' });
l.log.info('listening on 127.0.0.1:1080');
l.log.warn('careful');
l.log.debug('hidden at info level');
l.audit.write(auditRecord('decision', ${JSON.stringify(decision)}));
l.flush();`);
  assert.equal(dev.stdout, '');
  const lines = dev.stderr.trim().split('\n');
  assert.equal(lines[0], 'portail: listening on 127.0.0.1:1080');
  assert.equal(lines[1], 'portail: warning: careful');
  assert.match(
    lines[2],
    /^portail: audit event=decision trace_id=0123\S+ protocol=socks5 client=127\.0\.0\.1:40000 uid=1000 host=example\.com port=443 action=deny policy=deny_all route=direct reason="denied by policy deny_all" eval_us=3$/,
  );
  assert.equal(lines.length, 3);

  const mixed = runBoth(`
const l = createLogging({ preset: 'development', audit: { kind: 'stdout' } });
l.log.info('hello');
l.audit.write(auditRecord('close', { ...${JSON.stringify(decision)}, action: 'allow', bytes_up: 1, bytes_down: 2, duration_ms: 3, close_reason: 'completed' }));
l.flush();`);
  assert.equal(mixed.stderr, 'portail: hello\n');
  const rec = JSON.parse(mixed.stdout);
  assert.equal(rec.event, 'close');
  assert.equal(rec.bytes_up, 1);
  assert.equal(rec.bytes_down, 2);
  assert.equal(rec.duration_ms, 3);
  assert.equal(rec.close_reason, 'completed');
});

test('journald unreachable: audit falls back to stdout JSON with a warning', () => {
  const r = runBoth(`
const l = createLogging({ preset: 'development', audit: { kind: 'journald' }, journaldAvailable: () => false });
l.audit.write(auditRecord('error', { reason: 'x' }));
l.flush();`);
  assert.match(r.stderr, /warning: journald is not reachable: audit records go to stdout/);
  const rec = JSON.parse(r.stdout);
  assert.equal(rec.event, 'error');
  assert.equal(rec.level, 'error');
});

test('file: JSON lines appended; reopen() follows a rotation', async () => {
  const path = join(tmp.dir, 'logs', 'audit.jsonl');
  const l = createLogging({ preset: 'development', audit: { kind: 'file', path } });
  assert.equal(l.auditDestination, path);
  l.audit.write(auditRecord('decision', decision));
  l.flush();
  await new Promise((r) => setTimeout(r, 50));
  const first = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(first.length, 1);
  assert.equal(JSON.parse(first[0]).trace_id, decision.trace_id);
  renameSync(path, `${path}.1`);
  l.reopen();
  await new Promise((r) => setTimeout(r, 50));
  l.audit.write(auditRecord('reload', { reason: 'ok', result: 'ok' }));
  l.flush();
  await new Promise((r) => setTimeout(r, 50));
  const second = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(second.length, 1);
  const rec = JSON.parse(second[0]);
  assert.equal(rec.event, 'reload');
  assert.equal(rec.action, null);
  assert.equal(rec.result, 'ok');
});

test('file: a record is written as it was when written, not as it is at delivery', async () => {
  const path = join(tmp.dir, 'snap', 'audit.jsonl');
  const l = createLogging({ preset: 'development', audit: { kind: 'file', path } });
  const close = auditRecord('close', { ...decision, action: 'allow', bytes_up: 1 });
  l.audit.write(close); // batched (close records wait for company)
  close.bytes_up = 999; // the caller reuses its object
  close.reason = 'changed\nover two lines';
  l.audit.write(auditRecord('decision', { ...decision, reason: 'two\nlines  and\tspaces' }));
  l.flush();
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  const [c, d] = lines.map((x) => JSON.parse(x));
  assert.equal(c.event, 'close');
  assert.equal(c.bytes_up, 1);
  assert.equal(c.reason, decision.reason);
  // The message is one line; the reason field itself is kept as given.
  assert.equal(d.reason, 'two\nlines  and\tspaces');
  assert.equal(
    d.msg,
    'deny socks5 127.0.0.1:40000 uid 1000 -> example.com:443: two lines and spaces',
  );
});

test('key=value quoting', () => {
  assert.equal(
    keyValues({ a: 'x', b: 'two words', c: null, d: [], e: ['p', 'q'], f: 'say "hi"', g: '' }),
    'a=x b="two words" e=p,q f="say \\"hi\\"" g=""',
  );
});

test('isoTime is Date#toISOString, whatever the millisecond and the year', () => {
  const samples = [0, 1, 9, 10, 99, 100, 999, 1000, 1_764_000_000_007, 253_402_300_799_999];
  // Far past and future (6-digit years) and random instants around now.
  samples.push(-62_198_755_200_000, 253_402_300_800_000, 8.64e15);
  for (let i = 0; i < 2000; i++)
    samples.push(Math.floor(Date.now() + (Math.random() - 0.5) * 1e10));
  for (const ms of samples) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  // Same second twice, then back: the cached prefix follows.
  assert.equal(isoTime(5_001), new Date(5_001).toISOString());
  assert.equal(isoTime(5_999), new Date(5_999).toISOString());
  assert.equal(isoTime(4_999), new Date(4_999).toISOString());
});
