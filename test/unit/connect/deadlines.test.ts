import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { addDeadline } from '../../../proxy/deadlines.js';
import { raceAbort, watchAbort } from '../../../proxy/net/abort.js';
import { ConnectError } from '../../../proxy/types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a deadline fires once, not before its time and within an eighth more', async () => {
  const t0 = performance.now();
  const fired: number[] = [];
  addDeadline(200, () => fired.push(performance.now() - t0));
  await sleep(150);
  assert.deepEqual(fired, [], 'not before its time');
  await sleep(150);
  assert.equal(fired.length, 1);
  assert.ok((fired[0] ?? 0) >= 200, `fired after ${fired[0]} ms`);
  assert.ok((fired[0] ?? 0) <= 200 + 25 + 40, `fired after ${fired[0]} ms (timer slack included)`);
  await sleep(100);
  assert.equal(fired.length, 1, 'once');
});

test('a cancelled deadline never fires; the others of its group still do', async () => {
  const fired: string[] = [];
  const cancelA = addDeadline(80, () => fired.push('a'));
  addDeadline(80, () => fired.push('b'));
  const cancelC = addDeadline(80, () => fired.push('c'));
  cancelA();
  cancelC();
  cancelC(); // twice is harmless
  await sleep(160);
  assert.deepEqual(fired, ['b']);
});

test('a deadline whose callback throws: the others of its group still fire, nothing is uncaught', async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const fired: string[] = [];
    addDeadline(70, () => {
      throw new Error('a bug in one connection');
    });
    addDeadline(70, () => fired.push('after'));
    await sleep(200);
    assert.deepEqual(fired, ['after']);
    assert.deepEqual(uncaught, []);
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
});

test('the same callback registered twice fires twice, each cancellable on its own', async () => {
  let n = 0;
  const f = () => n++;
  const first = addDeadline(50, f);
  addDeadline(50, f);
  first();
  await sleep(120);
  assert.equal(n, 1);
});

test('watchAbort: one listener per signal for any number of watchers; unwatch works', () => {
  const ac = new AbortController();
  const calls: string[] = [];
  const stops = ['a', 'b', 'c'].map((x) => watchAbort(ac.signal, () => calls.push(x)));
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  stops[1]?.();
  ac.abort();
  assert.deepEqual(calls, ['a', 'c']);
  ac.abort();
  assert.deepEqual(calls, ['a', 'c'], 'once');
});

test('watchAbort on a signal already aborted runs the watcher soon, unless unwatched', async () => {
  const ac = new AbortController();
  ac.abort();
  const calls: string[] = [];
  watchAbort(ac.signal, () => calls.push('late'));
  const stop = watchAbort(ac.signal, () => calls.push('cancelled'));
  stop();
  assert.deepEqual(calls, [], 'not synchronously');
  await sleep(0);
  assert.deepEqual(calls, ['late']);
});

test('raceAbort: the promise, or a timeout ConnectError on abort; one listener per signal', async () => {
  const ac = new AbortController();
  assert.equal(await raceAbort(Promise.resolve(7), ac.signal, 'x'), 7);
  await assert.rejects(raceAbort(Promise.reject(new Error('own')), ac.signal, 'x'), /own/);
  const never = new Promise<number>(() => {});
  const races = [1, 2, 3].map((i) => raceAbort(never, ac.signal, `wait ${i}`));
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  ac.abort(new Error('deadline'));
  for (const r of races) {
    await assert.rejects(r, (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.reason, 'timeout');
      assert.match(e.message, /^wait \d aborted: deadline$/);
      return true;
    });
  }
  await assert.rejects(raceAbort(never, ac.signal, 'late'), /late aborted/);
});
