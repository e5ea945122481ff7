// Temporary folders removed when their owner ends. PORTAIL_KEEP_TMP=1 keeps them, to
// read a peer's logs after a failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { type Owner, track } from './cleanup.js';

/** A fresh, private (0700) folder under the system's temporary folder. */
export function tmpDir(t?: Owner, prefix = 'portail-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => {
    if (process.env.PORTAIL_KEEP_TMP === '1') return;
    rmSync(dir, { recursive: true, force: true });
  };
  track(
    t,
    async () => remove(),
    () => remove(),
  );
  return dir;
}
