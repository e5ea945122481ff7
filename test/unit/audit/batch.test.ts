import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBatcher } from '../../../proxy/audit/batch.js';
import { tempDir } from '../pipeline/helpers.js';

const auditModule = fileURLToPath(new URL('../../../proxy/audit/index.js', import.meta.url));
const tmp = tempDir();
after(() => tmp.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('push waits for the delay; pushNow delivers what waited first, in order', async () => {
  const got: string[][] = [];
  const b = createBatcher<string>((items) => got.push(items), { delayMs: 30, maxItems: 100 });
  b.push('close-1');
  b.push('close-2');
  assert.deepEqual(got, [], 'nothing before the delay');
  b.pushNow('decision-3');
  assert.deepEqual(got, [['close-1', 'close-2', 'decision-3']]);
  b.push('close-4');
  await sleep(80);
  assert.deepEqual(got[1], ['close-4'], 'delivered once the delay passed');
  assert.equal(got.length, 2, 'one delivery per batch, no empty ones');
});

test('a batch reaching maxItems is delivered at once; a throwing sink loses nothing else', () => {
  const got: number[][] = [];
  let fail = true;
  const b = createBatcher<number>(
    (items) => {
      if (fail) {
        fail = false;
        throw new Error('sink down');
      }
      got.push(items);
    },
    { delayMs: 10_000, maxItems: 3 },
  );
  for (const i of [1, 2, 3]) b.push(i); // the first delivery throws: it must not escape
  for (const i of [4, 5, 6]) b.push(i);
  assert.deepEqual(got, [[4, 5, 6]]);
  b.push(7);
  b.flush();
  assert.deepEqual(got, [[4, 5, 6], [7]]);
});

/** A child process writes records and ends abruptly; returns the audit file's records. */
function crash(how: string): Array<Record<string, unknown>> {
  const path = join(tmp.dir, `audit-${how.replace(/\W+/g, '-')}.jsonl`);
  const code = `import { createLogging, auditRecord } from ${JSON.stringify(auditModule)};
const l = createLogging({ preset: 'development', audit: { kind: 'file', path: ${JSON.stringify(path)} } });
l.audit.write(auditRecord('decision', { trace_id: 't1', action: 'allow' }));
l.audit.write(auditRecord('close', { trace_id: 't1', close_reason: 'completed', bytes_up: 1, bytes_down: 2, duration_ms: 3 }));
${how}`;
  spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.ok(existsSync(path));
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('a close record still waiting is written when the process exits or crashes', () => {
  for (const how of [
    'process.exit(3);',
    "throw new Error('crash');",
    "setTimeout(() => { throw new Error('later'); }, 1);",
  ]) {
    const records = crash(how);
    assert.deepEqual(
      records.map((r) => r.event),
      ['decision', 'close'],
      `after: ${how}`,
    );
    assert.equal(records[1]?.trace_id, 't1');
  }
});
