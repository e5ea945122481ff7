// Which process holds a socket: the /proc/PID/fd/N that links to socket:[INODE]. The
// kernel has no cheaper answer (netlink's sock_diag gives the owner uid, not the pid),
// and with thousands of descriptors in the client (a browser) a full scan costs tens
// of milliseconds: listing /proc/PID/fd alone is ~1 µs per descriptor, each readlink
// ~2–3 µs more.
//
// So the scanner remembers, per recent client process, where new sockets are likely
// to appear, and probes those descriptors first: the kernel gives a new socket the
// lowest free descriptor, which is one that was free at the last scan or one that held
// a socket found before (a connection that has closed since). Hints only order the
// work: a process is named only by a readlink that shows the socket itself, never by
// what a hint remembers. When the probes miss, the full scan runs as before (recently
// seen pids first, then processes of the socket's owner, then everybody else, since a
// descriptor may have been passed on) and refreshes the hints.
import { promises as fs, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The full scan works with synchronous procfs calls in slices of at most SLICE calls,
 * yielding to the event loop between slices: about twice as fast as one thread-pool
 * round trip per readlink, and never blocks the loop for more than a fraction of a
 * millisecond.
 */
const SLICE = 128;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * Descriptors probed from hints, in all, before a full scan: ~2–3 µs each, so a miss
 * costs under a millisecond more than the scan (tens of milliseconds with thousands of
 * descriptors). Generous, because sockets found earlier and still open (a browser's
 * long-lived connections) sit below the new one and cost a probe each.
 */
export const MAX_PROBES = 256;
/** Descriptor numbers remembered per process (free ones, sockets found). */
const MAX_HINTS = 256;
/** Descriptors above the highest one seen that count as free. */
const ABOVE_TOP = 8;
/** Processes remembered (recently found first); their hints go with them. */
const MAX_RECENT = 32;

interface Hints {
  /** Descriptor numbers free at the last scan, ascending. */
  free: number[];
  /** Descriptors where a socket was found → its inode (oldest first). */
  found: Map<number, number>;
}

export class ProcessScanner {
  /** Pids that recently held a client socket, most recent first. */
  private readonly recent: number[] = [];
  private readonly hints = new Map<number, Hints>();
  /** Lookups answered by a probe, and full scans run (tests, benchmarks). */
  readonly stats = { probed: 0, scans: 0 };

  constructor(
    private readonly proc: string,
    private readonly budgetMs: number,
  ) {}

  /** The pid holding socket `inode`; `uid` (the socket's owner) orders a full scan. */
  async holder(inode: number, uid: number | undefined): Promise<number | undefined> {
    const link = `socket:[${inode}]`;
    const pid =
      (await this.probe(link, inode)) ??
      (await this.scan(link, inode, uid, Date.now() + this.budgetMs));
    if (pid !== undefined) this.seen(pid);
    return pid;
  }

  /** Hinted descriptors of recent processes, at most MAX_PROBES readlinks (hints may
   * change while it yields: each is read again when its turn comes). */
  private async probe(link: string, inode: number): Promise<number | undefined> {
    let used = 0;
    for (const pid of [...this.recent]) {
      const h = this.hints.get(pid);
      if (h === undefined) continue;
      const dir = join(this.proc, String(pid), 'fd');
      for (const fd of candidates(h, inode)) {
        if (used === MAX_PROBES) return undefined;
        // Like the full scan, never more than SLICE system calls in one turn.
        if (used > 0 && used % SLICE === 0) await yieldToLoop();
        used++;
        let target: string;
        try {
          target = readlinkSync(join(dir, String(fd)));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') {
            // Free now: a socket found there has closed.
            if (h.found.delete(fd)) insertSorted(h.free, fd);
            continue;
          }
          break; // not ours to look at any more (EACCES…): the full scan decides
        }
        if (target === link) {
          this.found(h, fd, inode);
          this.stats.probed++;
          return pid;
        }
        // The socket found there before, still open: it stays a candidate for when it
        // closes. Anything else lives there now: no longer a hint.
        const before = h.found.get(fd);
        if (before !== undefined && target === `socket:[${before}]`) continue;
        h.found.delete(fd);
        removeSorted(h.free, fd);
      }
    }
    return undefined;
  }

  private async scan(
    link: string,
    inode: number,
    uid: number | undefined,
    deadline: number,
  ): Promise<number | undefined> {
    const proc = this.proc;
    this.stats.scans++;
    const all = (await fs.readdir(proc)).filter((n) => /^\d+$/.test(n)).map(Number);
    const alive = new Set(all);
    for (const pid of this.hints.keys()) if (!alive.has(pid)) this.hints.delete(pid);
    const first = this.recent.filter((p) => alive.has(p));
    const tried = new Set(first);
    let rest = all.filter((p) => !tried.has(p));
    if (uid !== undefined) {
      const owners = new Map<number, number>();
      for (let i = 0; i < rest.length; i += SLICE) {
        for (const p of rest.slice(i, i + SLICE)) {
          try {
            owners.set(p, statSync(join(proc, String(p))).uid);
          } catch {
            // exited meanwhile
          }
        }
        await yieldToLoop();
      }
      const mine = rest.filter((p) => owners.get(p) === uid);
      first.push(...mine);
      rest = rest.filter((p) => owners.has(p) && owners.get(p) !== uid);
    }
    for (const pid of [...first, ...rest]) {
      if (Date.now() >= deadline) return undefined;
      const got = await holds(proc, pid, link, deadline);
      if (got !== undefined) {
        this.learn(pid, got.fds, got.fd, inode);
        return pid;
      }
    }
    return undefined;
  }

  private seen(pid: number): void {
    const i = this.recent.indexOf(pid);
    if (i >= 0) this.recent.splice(i, 1);
    this.recent.unshift(pid);
    while (this.recent.length > MAX_RECENT) {
      const gone = this.recent.pop() as number;
      this.hints.delete(gone);
    }
  }

  /** After a full scan of `pid`'s descriptors (`fds`, as listed), `inode` found at `fd`. */
  private learn(pid: number, fds: string[], fd: number, inode: number): void {
    const open = fds.map(Number).sort((a, b) => a - b);
    const free: number[] = [];
    let expect = 0;
    for (const n of open) {
      while (expect < n && free.length < MAX_HINTS) free.push(expect++);
      expect = n + 1;
    }
    for (let k = 0; k < ABOVE_TOP && free.length < MAX_HINTS; k++) free.push(expect + k);
    const h: Hints = { free, found: this.hints.get(pid)?.found ?? new Map() };
    this.hints.set(pid, h);
    this.found(h, fd, inode);
  }

  private found(h: Hints, fd: number, inode: number): void {
    removeSorted(h.free, fd);
    h.found.delete(fd);
    h.found.set(fd, inode);
    if (h.found.size > MAX_HINTS) h.found.delete(h.found.keys().next().value as number);
  }
}

/**
 * The order of probes: where this very socket was found before, then the free and
 * formerly-socket descriptors, lowest first (the kernel hands out the lowest free one).
 */
function candidates(h: Hints, inode: number): number[] {
  const out: number[] = [];
  const rest: number[] = [];
  for (const [fd, ino] of h.found) (ino === inode ? out : rest).push(fd);
  rest.sort((a, b) => a - b);
  // Merge two ascending lists, without duplicates.
  let i = 0;
  let j = 0;
  const free = h.free;
  while (out.length < MAX_PROBES && (i < free.length || j < rest.length)) {
    const a = free[i] ?? Number.POSITIVE_INFINITY;
    const b = rest[j] ?? Number.POSITIVE_INFINITY;
    if (a <= b) i++;
    if (b <= a) j++;
    out.push(Math.min(a, b));
  }
  return out;
}

function insertSorted(list: number[], n: number): void {
  if (list.length >= MAX_HINTS) return;
  let i = 0;
  while (i < list.length && (list[i] as number) < n) i++;
  if (list[i] !== n) list.splice(i, 0, n);
}

function removeSorted(list: number[], n: number): void {
  const i = list.indexOf(n);
  if (i >= 0) list.splice(i, 1);
}

/** Whether `pid` holds `link`: the descriptor and the listing it was found in. */
async function holds(
  proc: string,
  pid: number,
  link: string,
  deadline: number,
): Promise<{ fd: number; fds: string[] } | undefined> {
  const dir = join(proc, String(pid), 'fd');
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return undefined; // exited, or not ours to look at
  }
  for (let i = 0; i < fds.length; i += SLICE) {
    if (i > 0) {
      await yieldToLoop();
      if (Date.now() >= deadline) return undefined;
    }
    for (const fd of fds.slice(i, i + SLICE)) {
      try {
        if (readlinkSync(join(dir, fd)) === link) return { fd: Number(fd), fds };
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}
