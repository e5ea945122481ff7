// Runs the compiled tests with Node's own test runner.
//   node scripts/test.mjs            every suite (unit, integration, systemd)
//   node scripts/test.mjs unit ...   only the named suites
// Under CI=true a skipped test is a failure: the runner's summary is read and the exit
// code set accordingly, so that a missing tool can never pass silently.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const suites = process.argv.slice(2);
const wanted = suites.length ? suites : ['unit', 'integration', 'systemd'];

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = wanted.flatMap((s) => walk(join(root, 'dist/test', s), []));
if (files.length === 0) {
  console.error(`no test files found for: ${wanted.join(', ')}`);
  process.exit(1);
}
// A hung test must fail, not eat CI's time: 5 minutes per test at most.
const args = ['--test', '--test-reporter=spec', '--test-timeout=300000', ...files];
const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let skipped = 0;
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4000);
});
child.on('close', (code) => {
  const m = /ℹ skipped (\d+)/.exec(tail);
  skipped = m ? Number(m[1]) : 0;
  if (code === 0 && skipped > 0 && process.env.CI === 'true') {
    console.error(`\nCI=true: ${skipped} test(s) skipped; a skip is a failure under CI.`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
