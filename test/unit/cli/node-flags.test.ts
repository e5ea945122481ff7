// The Node flags the daemon runs with are written twice: in the bin's `#!` line (how an
// installed `portail` starts) and in `npm start` (the README's first command). The
// benchmarks read the `#!` line. They must not drift apart, and the `#!` line must stay
// one that `env -S` runs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { shebangFlags } from '../../bench/lib/daemons.js';
import { repoRoot } from '../config/helpers.js';

const source = join(repoRoot, 'proxy/cli/portail.ts');
const built = join(repoRoot, 'dist/proxy/cli/portail.js');

test('the bin runs Node through env -S with the young-generation cap', () => {
  const first = readFileSync(source, 'utf8').split('\n')[0] as string;
  assert.match(first, /^#!\/usr\/bin\/env -S node( --[a-z0-9-]+(=\S+)?)+$/);
  assert.ok(shebangFlags(source).includes('--max-semi-space-size=8'), first);
  // tsc keeps the line: the installed bin is the built file.
  assert.equal(readFileSync(built, 'utf8').split('\n')[0], first);
});

test('npm start passes the same Node flags as the bin', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const m = /&& node ((?:--\S+ )*)dist\/proxy\/cli\/portail\.js daemon/.exec(
    pkg.scripts.start ?? '',
  );
  assert.ok(m, `unexpected start script: ${pkg.scripts.start}`);
  const flags = (m[1] as string).trim().split(/\s+/).filter(Boolean);
  assert.deepEqual(flags, shebangFlags(source));
});
