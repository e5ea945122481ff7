// The benchmarks run the daemon the way its bin runs it: with the Node flags of the
// script's `#!/usr/bin/env -S node FLAGS` line (proxy/cli/portail.ts says why).
import { readFileSync } from 'node:fs';

export function shebangFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node\s+(.*)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}
