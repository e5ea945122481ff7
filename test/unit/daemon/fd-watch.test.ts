import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Log } from '../../../proxy/audit/logging.js';
import { type FdUsage, watchFds } from '../../../proxy/daemon/fd-watch.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recorder() {
  const lines: string[] = [];
  const log = {
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  } as unknown as Log;
  return { lines, log };
}

test('with no connection open and usage normal, the checks sleep until wake()', async () => {
  let checks = 0;
  let busy = false;
  const usage = (): FdUsage => {
    checks++;
    return { open: 10, limit: 1000 };
  };
  const w = watchFds(recorder().log, { intervalMs: 10, usage, busy: () => busy });
  await sleep(60);
  assert.equal(checks, 1, 'one check, then asleep');
  busy = true;
  w.wake();
  await sleep(60);
  assert.ok(checks >= 3, `checks resumed (${checks})`);
  busy = false;
  await sleep(30);
  const settled = checks;
  await sleep(50);
  assert.equal(checks, settled, 'asleep again once idle');
  w.stop();
  w.wake();
  await sleep(30);
  assert.equal(checks, settled, 'a stopped watch stays stopped');
});

test('usage above normal keeps the checks going without connections, until back to normal', async () => {
  let open = 950;
  const { lines, log } = recorder();
  const w = watchFds(log, {
    intervalMs: 10,
    usage: () => ({ open, limit: 1000 }),
    busy: () => false,
  });
  await sleep(40);
  assert.match(lines[0] ?? '', /^warn file descriptors nearly exhausted/);
  open = 10;
  await sleep(40);
  assert.match(lines[1] ?? '', /^info file descriptors back to normal/);
  w.stop();
});
