// Runs a program with a private /etc/resolv.conf (and /etc/hosts): a mount namespace of
// its own (`unshare --mount`) in which our files are bind-mounted over the system's. The
// system resolver of that program then asks our DNS server on 127.0.0.x, never the
// machine's nameserver. Needs root (CAP_SYS_ADMIN) and util-linux's unshare.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Owner } from './cleanup.js';
import { tmpDir } from './tmp.js';
import { type Skippable, which } from './tools.js';

export interface PrivateResolv {
  /** The command to put before the program (`unshare … sh -c 'mount …; exec "$@"'`). */
  prefix: string[];
  resolvConf: string;
  hosts: string;
}

/** Why a private mount namespace cannot be had here, or null when it can. */
export function privateMountProblem(): string | null {
  if (which('unshare') === undefined) return 'unshare not found (package util-linux)';
  if (process.getuid?.() !== 0) return 'a private mount namespace needs root';
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'true'], { stdio: 'ignore' });
    return null;
  } catch (err) {
    return `unshare --mount failed: ${(err as Error).message}`;
  }
}

/** Skips `t` (a failure under CI=true: scripts/test.mjs) when the namespace cannot be had. */
export function requirePrivateMount(t: Skippable): boolean {
  const why = privateMountProblem();
  if (why === null) return true;
  t.skip(why);
  return false;
}

/**
 * `resolvConf` and `hosts` (default: localhost only) become /etc/resolv.conf and
 * /etc/hosts of the program started with `prefix`.
 */
export function privateResolv(t: Owner, resolvConf: string, hosts?: string): PrivateResolv {
  const dir = tmpDir(t);
  const rc = join(dir, 'resolv.conf');
  const h = join(dir, 'hosts');
  writeFileSync(rc, resolvConf);
  writeFileSync(h, hosts ?? '127.0.0.1 localhost\n::1 localhost\n');
  const script =
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"';
  return {
    prefix: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', rc, h],
    resolvConf: rc,
    hosts: h,
  };
}
