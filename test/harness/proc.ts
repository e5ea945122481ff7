// Reads /proc to find a process group's live members and their CPU time and memory:
// the benchmark's CPU-seconds and RSS figures, and the harness's "is anything of this
// group still running" check (zombies do not count).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  /** CPU seconds in user + kernel mode, of the process itself. */
  cpuSelf: number;
  /** CPU seconds of its waited-for children (already reaped). */
  cpuChildren: number;
  rssBytes: number;
}

function conf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}
let clk: number | undefined;
let page: number | undefined;

/** Parses /proc/PID/stat; undefined when the process is gone. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  clk ??= conf('CLK_TCK', 100);
  page ??= conf('PAGESIZE', 4096);
  // The command name is in parentheses and may itself contain spaces or parentheses.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i]);
  return {
    pid,
    state: f[0] ?? '?',
    ppid: n(1),
    pgrp: n(2),
    cpuSelf: (n(11) + n(12)) / clk,
    cpuChildren: (n(13) + n(14)) / clk,
    rssBytes: n(21) * page,
  };
}

/** Live (non-zombie) processes whose process group is `pgid`. */
export function groupMembers(pgid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s && s.pgrp === pgid && s.state !== 'Z') out.push(s);
  }
  return out;
}

/**
 * CPU seconds used so far by a process group: each live member's own time plus the time
 * of the children it has reaped (a worker that exited is counted through its parent).
 */
export function groupCpuSeconds(pgid: number): number {
  return groupMembers(pgid).reduce((sum, s) => sum + s.cpuSelf + s.cpuChildren, 0);
}

/** Sum of the resident set sizes of a group's live members (shared pages count once per process). */
export function groupRssBytes(pgid: number): number {
  return groupMembers(pgid).reduce((sum, s) => sum + s.rssBytes, 0);
}
