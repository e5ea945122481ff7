// Runs every benchmark: each compiled file directly in dist/test/bench/ (helpers live in
// sub-folders), one after the other in its own process, printing its figures.
//   node scripts/bench.mjs                  all of them (npm run bench builds first)
//   node scripts/bench.mjs dataplane acl    only these (file names without .js)
//   node scripts/bench.mjs dataplane --quick      options go to every bench run
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist/test/bench');
// Options (anything starting with '-') go to every bench, so that
// `npm run bench:dataplane -- --quick` works.
const argv = process.argv.slice(2).filter((a) => a !== '--');
const names = argv.filter((a) => !a.startsWith('-'));
const extra = argv.filter((a) => a.startsWith('-'));

if (!existsSync(dir)) {
  console.error('no dist/test/bench: build first (npm run build)');
  process.exit(1);
}
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.js') && statSync(join(dir, f)).isFile())
  .map((f) => f.slice(0, -3))
  .sort();
const unknown = names.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`unknown bench: ${unknown.join(', ')} (have: ${all.join(', ')})`);
  process.exit(2);
}
let failed = 0;
for (const name of names.length ? names : all) {
  console.log(`\n=== bench: ${name} ===`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`), ...extra], {
    cwd: root,
    stdio: 'inherit',
  });
  const status = r.status ?? r.signal;
  console.log(
    `=== ${name}: ${status === 0 ? 'done' : `FAILED (${status})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s ===`,
  );
  if (status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
