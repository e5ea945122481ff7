// Preloaded into a daemon by tools/alloc.ts (`node --import=…/heap-sampler.js`): V8's
// sampling heap profiler, started at the first SIGUSR2 and stopped at the second, which
// writes the profile as JSON to $PORTAIL_HEAP_PROFILE. $PORTAIL_HEAP_SURVIVORS=1 leaves
// out what a scavenge collected (what is left outlived at least one).
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';

const out = process.env.PORTAIL_HEAP_PROFILE;
if (out) {
  const session = new inspector.Session();
  session.connect();
  let sampling = false;
  process.on('SIGUSR2', () => {
    if (!sampling) {
      sampling = true;
      session.post('HeapProfiler.startSampling', {
        samplingInterval: 256,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: process.env.PORTAIL_HEAP_SURVIVORS !== '1',
      });
      return;
    }
    session.post('HeapProfiler.stopSampling', (err, r) => {
      writeFileSync(out, err ? JSON.stringify({ error: err.message }) : JSON.stringify(r.profile));
    });
  });
}
