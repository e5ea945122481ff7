// Preloaded into a daemon by tools/gc-tail.ts (`node --import=…/gc-observer.js`): records
// every garbage collection (wall-clock start in ms since the epoch, duration in ms, kind:
// 1 minor, 2 major, 4 incremental, 8 weak callbacks) and writes them as JSON to
// $PORTAIL_GC_LOG when the process gets SIGUSR2. Wall-clock times, so that the client's
// own timestamps (another process, same machine) can be laid over them.
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const out = process.env.PORTAIL_GC_LOG;
if (out) {
  const events: Array<[number, number, number]> = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
      events.push([performance.timeOrigin + e.startTime, e.duration, kind]);
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => writeFileSync(out, JSON.stringify(events)));
}
