import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFloodGuard, OVERFLOW_KIND } from '../../../proxy/audit/flood-guard.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the first `burst` of a kind pass; the rest are counted and summarised once', async () => {
  const summaries: [string, number][] = [];
  const g = createFloodGuard({
    burst: 3,
    intervalMs: 60,
    summarise: (kind, n) => summaries.push([kind, n]),
  });
  const passed = Array.from({ length: 10 }, () => g.admit('a')).filter(Boolean).length;
  assert.equal(passed, 3);
  assert.equal(g.admit('b'), true, 'kinds are counted apart');
  assert.equal(g.suppressed, 7);
  assert.deepEqual(summaries, [], 'no summary before the interval ends');
  await sleep(150);
  assert.deepEqual(summaries, [['a', 7]], 'one summary, for the kind that had some left out');
  // A new interval: the first ones pass again.
  assert.equal(g.admit('a'), true);
});

test('a summary given with the occurrence is the one used; flush writes pending ones now', () => {
  const own: number[] = [];
  const g = createFloodGuard({ burst: 1, intervalMs: 60_000 });
  for (let i = 0; i < 5; i++) g.admit('x', (n) => own.push(n));
  assert.deepEqual(own, []);
  g.flush();
  assert.deepEqual(own, [4]);
  g.flush();
  assert.deepEqual(own, [4], 'nothing twice');
});

test('kinds beyond maxKinds share the overflow kind (bounded memory)', () => {
  const summaries: [string, number][] = [];
  const g = createFloodGuard({
    burst: 1,
    intervalMs: 60_000,
    maxKinds: 4,
    summarise: (kind, n) => summaries.push([kind, n]),
  });
  for (let i = 0; i < 1000; i++) g.admit(`kind-${i}`);
  // 4 own kinds, then the overflow kind admits one and counts the rest.
  assert.equal(g.suppressed, 1000 - 4 - 1);
  g.flush();
  assert.deepEqual(summaries, [[OVERFLOW_KIND, 995]]);
});

test('a throwing summary does not escape', () => {
  const g = createFloodGuard({
    burst: 0,
    summarise: () => {
      throw new Error('logger down');
    },
  });
  g.admit('a');
  assert.doesNotThrow(() => g.flush());
});
