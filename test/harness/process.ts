// Starts a child process in its own process group and waits until it is ready: a TCP
// port accepts connections, or its output matches a pattern. The whole group is
// killed when the owning test ends (even on failure), so a daemon's workers (nginx,
// dante, squid fork) never outlive the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import process from 'node:process';
import { hookProcessExit, type Owner, track } from './cleanup.js';
import { groupMembers } from './proc.js';

export interface ReadyPort {
  port: number;
  host?: string;
}

export interface StartOptions {
  /** The test (or anything with `after`) that owns the process: stopped when it ends. */
  t?: Owner;
  /** Ready when this TCP port accepts a connection, or when output matches the regex. */
  readyWhen?: number | ReadyPort | RegExp;
  /** How long to wait for readiness (default 10 s). */
  timeoutMs?: number;
  cwd?: string;
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** Grace period between SIGTERM and SIGKILL on stop (default 2 s). */
  killGraceMs?: number;
  /** Name used in error messages (default: the command). */
  name?: string;
  /** Log files whose ends are quoted in error messages (daemons that log to a file). */
  logFiles?: string[];
  /**
   * Send stdout and stderr to this file instead of a pipe to this process: for a peer
   * that logs a line per connection (microsocks), whose output would otherwise be read
   * by the very process timing it. Quoted in error messages like `logFiles`.
   */
  outputFile?: string;
}

export interface Started {
  child: ChildProcess;
  pid: number;
  /** Everything written to stdout and stderr so far (last 256 KiB). */
  output(): string;
  /** Resolves with the exit code (or signal name) once the leader has exited. */
  exited: Promise<number | string>;
  /** SIGTERM to the group, SIGKILL after the grace period; idempotent. */
  stop(): Promise<void>;
}

const OUTPUT_LIMIT = 256 * 1024;

/** Whether `host:port` accepts a TCP connection right now. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

/** Whether any process of group `pgid` is still alive (zombies excluded). */
export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

export async function startProcess(
  cmd: string,
  args: readonly string[],
  opts: StartOptions = {},
): Promise<Started> {
  const name = opts.name ?? cmd;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const grace = opts.killGraceMs ?? 2_000;
  hookProcessExit();
  const outFd = opts.outputFile === undefined ? undefined : openSync(opts.outputFile, 'a');
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: outFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', outFd, outFd],
    detached: true, // own process group: killable as a whole
  });
  if (outFd !== undefined) closeSync(outFd);
  let out = '';
  // Trimmed to the limit only once it is twice as long: a chatty child then costs a copy
  // per 256 KiB of output, not one per chunk (which slowed a timed peer down).
  const append = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2 * OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);

  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (e) => reject(new Error(`${name}: cannot start: ${e.message}`)));
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', () => resolve('spawn-error'));
  });
  await spawned;
  const pid = child.pid as number;
  let leaderGone = false;
  void exited.then(() => {
    leaderGone = true;
  });

  const stop = track(
    opts.t,
    async () => {
      // The leader may be gone while its workers live on: always signal the group.
      killGroup(pid, 'SIGTERM');
      const deadline = Date.now() + grace;
      while (groupAlive(pid) && Date.now() < deadline) await sleep(20);
      if (groupAlive(pid)) killGroup(pid, 'SIGKILL');
      if (!leaderGone) {
        // A timer left pending would keep the test file alive for the whole grace period.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, grace)))]);
        clearTimeout(timer);
      }
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
    () => killGroup(pid, 'SIGKILL'),
  );
  const output = () =>
    opts.outputFile !== undefined
      ? fileTail(opts.outputFile)
      : out.length > OUTPUT_LIMIT
        ? out.slice(-OUTPUT_LIMIT)
        : out;
  const started: Started = { child, pid, output, exited, stop };

  if (opts.readyWhen === undefined) return started;
  try {
    await waitReady(started, opts.readyWhen, timeoutMs, name);
  } catch (e) {
    await stop();
    const logs = (opts.logFiles ?? []).map(logTail).join('');
    throw logs ? new Error(`${(e as Error).message}${logs}`) : e;
  }
  return started;
}

async function waitReady(
  p: Started,
  ready: number | ReadyPort | RegExp,
  timeoutMs: number,
  name: string,
): Promise<void> {
  let exitedWith: number | string | undefined;
  void p.exited.then((c) => {
    exitedWith = c;
  });
  const deadline = Date.now() + timeoutMs;
  const target = typeof ready === 'number' ? { port: ready } : ready;
  for (;;) {
    if (target instanceof RegExp) {
      if (target.test(p.output())) return;
    } else if (await canConnect(target.port, target.host ?? '127.0.0.1')) {
      return;
    }
    if (exitedWith !== undefined) {
      throw new Error(
        `${name} exited (${exitedWith}) before it was ready; output:\n${p.output().slice(-4000)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${name} not ready after ${timeoutMs} ms (waiting for ${
          target instanceof RegExp ? target : `${target.host ?? '127.0.0.1'}:${target.port}`
        }); output:\n${p.output().slice(-4000)}`,
      );
    }
    await sleep(25);
  }
}

function fileTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-OUTPUT_LIMIT);
  } catch {
    return '';
  }
}

function logTail(path: string): string {
  try {
    return `\n--- ${path} (end) ---\n${readFileSync(path, 'utf8').slice(-4000)}`;
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
