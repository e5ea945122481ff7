// Long fuzz runs (docs/testing.md, "Fuzzing"), after a build:
//   npm run fuzz -- http2 --runs=1000000 [--seed=N] [--concurrency=64]
// Runs the named target (dist/test/fuzz/targets/) on `runs` generated inputs, a batch of
// `concurrency` at a time, then waits for every connection's deadline. Prints inputs
// run, inputs/s, crashes (uncaught exceptions, unhandled rejections), internal errors
// reported and leaks (connections still open past every deadline), and exits non-zero
// on any. The inputs in flight at a crash are written to fuzz-crashes/<target>-<seed>.txt.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { TARGETS } = await import(join(root, 'dist/test/fuzz/targets/index.js'));

const args = process.argv.slice(2);
const name = args.find((a) => !a.startsWith('--'));
const option = (key, fallback) => {
  const a = args.find((x) => x.startsWith(`--${key}=`));
  if (a === undefined) return fallback;
  const n = Number(a.slice(key.length + 3));
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${key} must be a non-negative integer`);
    process.exit(2);
  }
  return n;
};
if (name === undefined || !(name in TARGETS)) {
  console.error(`usage: npm run fuzz -- <target> [--runs=N] [--seed=N] [--concurrency=N]`);
  console.error(`targets: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
const runs = option('runs', 100_000);
const seed = option('seed', Date.now() % 2 ** 31);
const concurrency = Math.max(1, option('concurrency', 64));
const target = TARGETS[name]();

const crashes = [];
let inFlight = [];
const onCrash = (kind) => (err) => {
  crashes.push(`${kind}: ${err?.stack ?? err}`);
  if (crashes.length <= 10) {
    const dir = join(root, 'fuzz-crashes');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name}-${seed}.txt`);
    writeFileSync(
      file,
      `${crashes.join('\n\n')}\n\ninputs in flight:\n${inFlight.map((i) => target.describe(i)).join('\n')}\n`,
    );
  }
};
process.on('uncaughtException', onCrash('uncaught exception'));
process.on('unhandledRejection', onCrash('unhandled rejection'));

const BATCH = 1000;
const start = performance.now();
let done = 0;
let maxOpen = 0;
let lastPrint = start;
const figures = () => {
  const s = (performance.now() - start) / 1000;
  return `${done} inputs, ${Math.round(done / s)} inputs/s, ${crashes.length} crashes, ${s.toFixed(1)} s`;
};
console.log(`fuzz ${name}: ${runs} inputs, seed ${seed}, concurrency ${concurrency}`);
for (let b = 0; done < runs; b++) {
  const n = Math.min(BATCH, runs - done);
  const inputs = fc.sample(target.arbitrary, { seed: (seed + b) | 0, numRuns: n });
  for (let i = 0; i < inputs.length; i += concurrency) {
    inFlight = inputs.slice(i, i + concurrency);
    await Promise.all(inFlight.map((input) => target.run(input)));
    done += inFlight.length;
  }
  maxOpen = Math.max(maxOpen, target.open);
  if (performance.now() - lastPrint > 10_000) {
    lastPrint = performance.now();
    console.log(`  ${figures()}, ${target.open} connections open`);
  }
}
const ranFor = (performance.now() - start) / 1000;
const report = await target.finish();
console.log(
  [
    `target:            ${name} (seed ${seed}, concurrency ${concurrency})`,
    `inputs run:        ${done}`,
    `inputs/s:          ${Math.round(done / ranFor)}`,
    `crashes:           ${crashes.length}`,
    `internal errors:   ${report.internalErrors.length}`,
    `leaks:             ${report.leaks} (connections open past every deadline; at most ${maxOpen} open at once)`,
    `elapsed:           ${ranFor.toFixed(1)} s, then ${(report.drainMs / 1000).toFixed(1)} s for the last deadlines`,
  ].join('\n'),
);
for (const c of crashes.slice(0, 5)) console.log(`\n${c}`);
for (const e of report.internalErrors.slice(0, 5)) console.log(`\ninternal error: ${e}`);
for (const l of report.leaked) console.log(`\nleaked: ${l}`);
process.exit(crashes.length + report.internalErrors.length + report.leaks > 0 ? 1 : 0);
