// Property test: structure-aware HTTP/2 inputs (test/fuzz/h2-input.ts: valid and
// invalid frames, odd stream ids, lying lengths, random chunking, reset/FIN/silence at
// the end) fed to the real listener and HTTP/2 front-end over in-memory connections.
// No uncaught exception, no internal error, and every connection closed by its
// deadline. A few seconds; the long run is `npm run fuzz -- http2` (docs/testing.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createHttp2Target } from '../../fuzz/targets/http2.js';

test('HTTP/2 frames, valid and not, in random chunks: no crash, no internal error, no leak', async (t) => {
  const target = createHttp2Target();
  const uncaught: string[] = [];
  const onUncaught = (err: unknown) => uncaught.push(String((err as Error)?.stack ?? err));
  process.on('uncaughtException', onUncaught);
  let runs = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(target.arbitrary, { minLength: 1, maxLength: 32 }),
        async (batch) => {
          runs += batch.length;
          await Promise.all(batch.map((input) => target.run(input)));
          assert.deepEqual(uncaught, []);
        },
      ),
      { numRuns: 400, interruptAfterTimeLimit: 3000 },
    );
    const report = await target.finish();
    t.diagnostic(`${runs} inputs, drained in ${report.drainMs} ms`);
    assert.ok(runs >= 200, `only ${runs} inputs in the time limit`);
    assert.deepEqual(uncaught, []);
    assert.deepEqual(report.internalErrors, []);
    assert.equal(report.leaks, 0, `leaked: ${report.leaked.join('\n')}`);
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
});
