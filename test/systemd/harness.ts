// A real systemd (PID 1) booted for one test file, isolated from the host:
//  - its own PID, mount, UTS, network and cgroup namespaces, started from fresh
//    sub-cgroups made for it in every mounted hierarchy (two sandboxes never share a unit
//    cgroup, so one's `systemctl restart` cannot touch another's service);
//  - private tmpfs on /run, /tmp, /var/tmp, /var/log/journal, /var/lib/systemd, and a
//    private /dev (systemd-tmpfiles or journald's /dev/log would otherwise write to the
//    host's), /proc/sys and /sys read-only (PID 1 raises global sysctls at boot);
//  - /etc copy-on-write (an overlay on a tmpfs): units may create /etc/portail, tests add
//    users and groups, and the host's /etc never changes;
//  - /etc/systemd/system replaced by a tmpfs holding only the test's units, plus masks
//    for every unit that touches host-global state, and a boot target of our own so that
//    nothing else starts;
//  - the checkout bind-mounted read-only at /srv/portail, the test's files at /srv/test.
// Then exec() runs commands inside through nsenter (the sandbox's own loopback, its own
// systemctl and journalctl), and stop() kills PID 1 and removes the sub-cgroups.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the checkout is mounted inside (units and stubs refer to it). */
export const CHECKOUT = '/srv/portail';
/** Where SandboxOptions.files are written inside. */
export const TEST_FILES = '/srv/test';
const TARGET = 'portail-sandbox.target';
const SYSTEMD = ['/lib/systemd/systemd', '/usr/lib/systemd/systemd'].find((p) => existsSync(p));

/** Units that write host-global state (or wait for hardware) — never started inside. */
const HOST_UNITS = [
  'systemd-tmpfiles-setup.service',
  'systemd-tmpfiles-setup-dev.service',
  'systemd-tmpfiles-clean.service',
  'systemd-tmpfiles-clean.timer',
  'systemd-sysusers.service',
  'systemd-sysctl.service',
  'systemd-binfmt.service',
  'proc-sys-fs-binfmt_misc.automount',
  'proc-sys-fs-binfmt_misc.mount',
  'systemd-modules-load.service',
  'kmod-static-nodes.service',
  'systemd-remount-fs.service',
  'systemd-timesyncd.service',
  'systemd-udevd.service',
  'systemd-udevd-control.socket',
  'systemd-udevd-kernel.socket',
  'systemd-udev-trigger.service',
  'systemd-udev-settle.service',
  'systemd-hwdb-update.service',
  'getty.target',
  'getty@.service',
  'serial-getty@.service',
  'console-getty.service',
  'container-getty@.service',
  'systemd-logind.service',
  'systemd-random-seed.service',
  'systemd-firstboot.service',
  'systemd-machine-id-commit.service',
  'systemd-journal-flush.service',
  'systemd-journal-catalog-update.service',
  'systemd-journald-audit.socket',
  'systemd-journald-dev-log.socket',
  'systemd-update-done.service',
  'systemd-update-utmp.service',
  'systemd-update-utmp-runlevel.service',
  'ldconfig.service',
  'systemd-pstore.service',
  'systemd-repart.service',
  'systemd-pcrphase.service',
  'systemd-pcrphase-sysinit.service',
  'systemd-networkd.service',
  'systemd-resolved.service',
  'systemd-rfkill.service',
  'systemd-rfkill.socket',
  'systemd-quotacheck.service',
  'quotaon.service',
  'e2scrub_reap.service',
  'dbus.service',
  'dbus.socket',
];
/** Statically wanted units that may run: the journal (the tests query it). */
const ALLOWED = new Set(['systemd-journald.service', 'systemd-journald.socket']);

export interface SandboxOptions {
  /** Unit files by name (installed in /etc/systemd/system). */
  units: Record<string, string>;
  /** Units started at boot (pulled in by the sandbox's boot target). */
  start?: string[];
  /** Files by path relative to /srv/test (stubs, clients). */
  files?: Record<string, string>;
  /** Files by path relative to /etc, written into the sandbox's copy-on-write /etc
   * (configuration under /etc/portail; lines for /etc/group go through `groups`). */
  etc?: Record<string, string>;
  /** Lines appended to the sandbox's /etc/passwd and /etc/group (test users). */
  passwd?: string[];
  group?: string[];
  /** The checkout to mount read-only at /srv/portail (default: this repository). */
  checkout?: string;
  bootTimeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Why the sandbox cannot run here, or null when it can. */
export function sandboxSkipReason(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (boots systemd as PID 1 in new namespaces)';
  if (!SYSTEMD) return 'needs systemd (apt-get install systemd)';
  for (const [tool, pkg] of [
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['ip', 'iproute2'],
    ['systemctl', 'systemd'],
  ]) {
    if (!onPath(tool)) return `needs ${tool} (apt-get install ${pkg})`;
  }
  if (!existsSync('/sys/fs/cgroup')) return 'needs cgroups mounted at /sys/fs/cgroup';
  return null;
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function repoRoot(): string {
  // dist/test/systemd/harness.js → the checkout root, three levels up.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface Hierarchy {
  mount: string;
  fstype: 'cgroup' | 'cgroup2';
  /** v1: the controllers (or name=…) to mount again inside; '' for cgroup2. */
  controllers: string;
  /** Our own cgroup in it, as /proc/self/cgroup says. */
  path: string;
}

const V1_GENERIC =
  /^(rw|ro|relatime|noatime|nosuid|nodev|noexec|clone_children|xattr|noprefix|cpuset_v2_mode|favordynmods|release_agent=.*)$/;

function hierarchies(): Hierarchy[] {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [id, ctrls, ...rest] = l.split(':');
      return { id, ctrls: ctrls.split(',').sort().join(','), path: rest.join(':') };
    });
  const out: Hierarchy[] = [];
  const seen = new Set<string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const [fstype, , superOpts] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mount = left
      .split(' ')[4]
      .replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
    let controllers = '';
    let path: string | undefined;
    if (fstype === 'cgroup2') {
      path = own.find((c) => c.id === '0')?.path;
    } else {
      controllers = superOpts
        .split(',')
        .filter((o) => !V1_GENERIC.test(o))
        .sort()
        .join(',');
      path = own.find((c) => c.id !== '0' && c.ctrls === controllers)?.path;
    }
    const key = `${fstype}:${controllers}`;
    if (path === undefined || seen.has(key)) continue;
    seen.add(key);
    out.push({ mount, fstype, controllers, path });
  }
  return out;
}

/** The units to mask: everything statically wanted by the distribution's targets, and
 * HOST_UNITS, except the journal and the test's own units. */
function masks(own: Set<string>): string[] {
  const names = new Set(HOST_UNITS);
  for (const base of ['/lib/systemd/system', '/usr/lib/systemd/system']) {
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base)) {
      if (!d.endsWith('.wants')) continue;
      for (const u of readdirSync(join(base, d))) names.add(u);
    }
  }
  return [...names].filter((u) => !ALLOWED.has(u) && !own.has(u)).sort();
}

function bootScript(
  state: string,
  checkout: string,
  cgroups: Hierarchy[],
  machineId: string,
): string {
  const unifiedAtRoot = cgroups.some((h) => h.fstype === 'cgroup2' && h.mount === '/sys/fs/cgroup');
  const lines = [
    'set -eu',
    // Everything below is private to this mount namespace (unshare --propagation private).
    'mount -t tmpfs -o mode=0755 tmpfs /srv',
    `mkdir -p ${CHECKOUT} ${TEST_FILES} /srv/dev`,
    `mount --bind ${q(checkout)} ${CHECKOUT}`,
    `mount -o remount,bind,ro ${CHECKOUT}`,
    `cp -a ${q(`${state}/files`)}/. ${TEST_FILES}/`,
    // /etc copy-on-write: ConfigurationDirectory=, test users and groups, the daemon's
    // configuration — none of it may reach the host's /etc.
    'mkdir /srv/etc-rw && mount -t tmpfs -o mode=0755 tmpfs /srv/etc-rw',
    'mkdir /srv/etc-rw/upper /srv/etc-rw/work',
    'mount -t overlay overlay -o lowerdir=/etc,upperdir=/srv/etc-rw/upper,workdir=/srv/etc-rw/work /etc',
    `cp -a ${q(`${state}/etc`)}/. /etc/`,
    `printf '%s\\n' ${machineId} > /srv/machine-id`,
    'mount --bind /srv/machine-id /etc/machine-id',
    'mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system',
    `cp -a ${q(`${state}/units`)}/. /etc/systemd/system/`,
    // A /dev of our own: a few device nodes bound from the host, new pts and shm.
    'mount -t tmpfs -o mode=0755,nosuid tmpfs /srv/dev',
    'for n in null zero full random urandom tty; do : > /srv/dev/$n; mount --bind /dev/$n /srv/dev/$n; done',
    'mkdir /srv/dev/pts /srv/dev/shm /srv/dev/mqueue',
    'mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /srv/dev/pts',
    'ln -s pts/ptmx /srv/dev/ptmx',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /srv/dev/shm',
    'ln -s /proc/self/fd /srv/dev/fd; ln -s /proc/self/fd/0 /srv/dev/stdin',
    'ln -s /proc/self/fd/1 /srv/dev/stdout; ln -s /proc/self/fd/2 /srv/dev/stderr',
    'mount --move /srv/dev /dev',
    'mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run',
    'mkdir -p /run/lock /run/systemd/journald.conf.d',
    `printf '[Journal]\\nStorage=volatile\\nRateLimitBurst=0\\n' > /run/systemd/journald.conf.d/sandbox.conf`,
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp',
    'if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi',
    'if [ -d /var/lib/systemd ]; then mount -t tmpfs -o mode=0755 tmpfs /var/lib/systemd; fi',
    'mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys',
    'if [ -e /proc/sysrq-trigger ]; then mount --bind /proc/sysrq-trigger /proc/sysrq-trigger; mount -o remount,bind,ro /proc/sysrq-trigger; fi',
    'mount -o remount,bind,ro /sys',
  ];
  // The cgroup namespace's root is our fresh sub-cgroup: mount the hierarchies again so
  // that systemd sees it as the whole tree.
  if (unifiedAtRoot) {
    lines.push('mount -t cgroup2 cgroup2 /sys/fs/cgroup');
  } else {
    lines.push('mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup');
    for (const h of cgroups) {
      lines.push(`mkdir -p ${q(h.mount)}`);
      lines.push(
        h.fstype === 'cgroup2'
          ? `mount -t cgroup2 cgroup2 ${q(h.mount)}`
          : `mount -t cgroup -o ${q(h.controllers)} cgroup ${q(h.mount)}`,
      );
    }
  }
  lines.push(
    'ip link set lo up',
    'export container=portail-test',
    `exec ${SYSTEMD} --system --unit=${TARGET} --log-target=journal --show-status=no </dev/null`,
  );
  return `${lines.join('\n')}\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const live = new Set<number>();
process.once('exit', () => {
  // Last resort when a test file dies without stop(): never leave a systemd behind.
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

export class Sandbox {
  private constructor(
    /** Host PID of the sandbox's systemd (PID 1 inside). */
    readonly pid: number,
    private readonly state: string,
    private readonly cgroupDirs: string[],
    private readonly launcher: ChildProcess,
  ) {}

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const reason = sandboxSkipReason();
    if (reason) throw new Error(reason);
    const checkout = opts.checkout ?? repoRoot();
    const state = mkdtempSync('/var/tmp/portail-sandbox.');
    const units = join(state, 'units');
    mkdirSync(units);
    const own = new Set(Object.keys(opts.units));
    for (const [name, text] of Object.entries(opts.units)) {
      mkdirSync(dirname(join(units, name)), { recursive: true });
      writeFileSync(join(units, name), text);
    }
    for (const name of masks(own)) symlinkSync('/dev/null', join(units, name));
    writeFileSync(
      join(units, TARGET),
      `[Unit]\nDescription=portail test sandbox\nAllowIsolate=yes\n${(opts.start ?? []).map((u) => `Wants=${u}\nAfter=${u}\n`).join('')}`,
    );
    const etc = join(state, 'etc');
    mkdirSync(etc, { mode: 0o755 });
    for (const [rel, text] of Object.entries(opts.etc ?? {})) {
      mkdirSync(dirname(join(etc, rel)), { recursive: true, mode: 0o755 });
      writeFileSync(join(etc, rel), text, { mode: 0o644 });
    }
    for (const [db, lines] of [
      ['passwd', opts.passwd],
      ['group', opts.group],
    ] as const) {
      if (lines?.length)
        writeFileSync(join(etc, db), `${readFileSync(`/etc/${db}`, 'utf8')}${lines.join('\n')}\n`, {
          mode: 0o644,
        });
    }
    const files = join(state, 'files');
    mkdirSync(files, { mode: 0o755 });
    for (const [rel, text] of Object.entries(opts.files ?? {})) {
      mkdirSync(dirname(join(files, rel)), { recursive: true, mode: 0o755 });
      writeFileSync(join(files, rel), text, { mode: 0o644 });
    }
    const cgroups = hierarchies();
    const script = bootScript(state, checkout, cgroups, randomBytes(16).toString('hex'));
    writeFileSync(join(state, 'boot.sh'), script, { mode: 0o755 });
    const log = openSync(join(state, 'boot.log'), 'w');
    // The launcher waits for "go" on stdin while we move it into fresh sub-cgroups; only
    // then does it create the namespaces, whose cgroup root is therefore that sub-cgroup.
    const launcher = spawn(
      '/bin/sh',
      [
        '-c',
        'read go && exec unshare --pid --fork --kill-child --mount --mount-proc --uts --net --cgroup --propagation private /bin/sh "$0"',
        join(state, 'boot.sh'),
      ],
      { detached: true, stdio: ['pipe', log, log] },
    );
    const launcherPid = launcher.pid;
    if (launcherPid === undefined) throw new Error('cannot spawn the sandbox launcher');
    const name = `portail-sandbox-${process.pid}-${randomBytes(4).toString('hex')}`;
    const cgroupDirs: string[] = [];
    for (const h of cgroups) {
      const dir = join(h.mount, h.path, name);
      try {
        mkdirSync(dir);
      } catch {
        continue; // a hierarchy we may not write to: systemd copes without it
      }
      cgroupDirs.push(dir);
      if (existsSync(join(dir, 'cpuset.cpus'))) {
        for (const f of ['cpuset.cpus', 'cpuset.mems'])
          writeFileSync(join(dir, f), readFileSync(join(dir, '..', f)));
      }
      writeFileSync(join(dir, 'cgroup.procs'), String(launcherPid));
    }
    writeFileSync(join(state, 'cgroup-dirs'), cgroupDirs.join('\n'));
    launcher.stdin?.end('go\n');
    const bootLog = () => readFileSync(join(state, 'boot.log'), 'utf8');
    let pid = 0;
    let exited = false;
    launcher.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + (opts.bootTimeoutMs ?? 20_000);
    while (!pid) {
      if (exited || Date.now() > deadline) {
        await cleanupCgroups(cgroupDirs);
        throw new Error(`systemd did not start (state in ${state}):\n${bootLog()}`);
      }
      const children = readText(`/proc/${launcherPid}/task/${launcherPid}/children`)
        .trim()
        .split(/\s+/);
      for (const c of children) {
        if (c && readText(`/proc/${c}/comm`).trim() === 'systemd') pid = Number(c);
      }
      if (!pid) await sleep(20);
    }
    live.add(pid);
    const box = new Sandbox(pid, state, cgroupDirs, launcher);
    for (;;) {
      const r = await box.exec(['systemctl', 'is-system-running'], { timeoutMs: 5000 });
      const s = r.stdout.trim();
      if (s === 'running' || s === 'degraded') break;
      if (Date.now() > deadline || exited) {
        const jobs = await box.exec(['systemctl', 'list-jobs', '--no-pager']).catch(() => null);
        await box.stop();
        throw new Error(
          `sandbox did not finish booting (${s} ${r.stderr.trim()})\n${jobs?.stdout ?? ''}\n${bootLog()}`,
        );
      }
      await sleep(50);
    }
    return box;
  }

  /** The sub-cgroups made for this sandbox (removed by stop()). */
  get cgroups(): string[] {
    return [...this.cgroupDirs];
  }

  /** Runs argv inside every namespace of the sandbox; never rejects on a non-zero exit. */
  exec(
    argv: string[],
    opts: { input?: string | Buffer; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const child = this.spawn(argv);
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (c) => {
        stdout += c;
      });
      child.stderr?.on('data', (c) => {
        stderr += c;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
      if (opts.input === undefined) child.stdin?.end();
      else child.stdin?.end(opts.input);
    });
  }

  /** Like exec() but resolves with stdout and rejects on a non-zero exit. */
  async run(
    argv: string[],
    opts: { input?: string | Buffer; timeoutMs?: number } = {},
  ): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) {
      throw new Error(`${argv.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}${r.stdout}`);
    }
    return r.stdout;
  }

  /** A long-running process inside (stdio piped), e.g. a client kept open across a restart. */
  spawn(argv: string[]): ChildProcess {
    const child = spawn('nsenter', ['-t', String(this.pid), '-a', '--wd=/', ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        LANG: 'C.UTF-8',
        SYSTEMD_PAGER: '',
        SYSTEMD_COLORS: '0',
      },
    });
    // A command that exits without reading its input must not fail the test with EPIPE.
    child.stdin?.on('error', () => {});
    return child;
  }

  systemctl(...args: string[]): Promise<ExecResult> {
    return this.exec(['systemctl', '--no-pager', ...args]);
  }

  /** `systemctl show -p …` as an object. */
  async show(unit: string, ...props: string[]): Promise<Record<string, string>> {
    const out = await this.run(['systemctl', 'show', '-p', props.join(','), unit]);
    const result: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) result[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return result;
  }

  /** Polls until check() returns a value other than undefined/false; rejects after the
   * timeout with `what` and the last value seen. */
  async waitFor<T>(
    what: string,
    check: () => Promise<T | undefined | false>,
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
      await sleep(30);
    }
  }

  /** Waits until the unit's properties include every given value. */
  waitForState(unit: string, want: Record<string, string | RegExp>, timeoutMs = 10_000) {
    return this.waitFor(
      `${unit} ${JSON.stringify(want, (_, v) => (v instanceof RegExp ? String(v) : v))}`,
      async () => {
        const got = await this.show(unit, ...Object.keys(want));
        const ok = Object.entries(want).every(([k, v]) =>
          typeof v === 'string' ? got[k] === v : v.test(got[k] ?? ''),
        );
        return ok ? got : undefined;
      },
      timeoutMs,
    );
  }

  /** Journal entries (journalctl -o json …args), parsed. */
  async journal(...args: string[]): Promise<Record<string, unknown>[]> {
    const out = await this.run(['journalctl', '--no-pager', '-o', 'json', ...args]);
    return out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Kills the sandbox's PID 1 (the kernel then kills everything inside) and removes its
   * sub-cgroups and state directory. Safe to call twice. */
  async stop(): Promise<void> {
    if (!live.has(this.pid)) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    live.delete(this.pid);
    const deadline = Date.now() + 5000;
    while (
      this.launcher.exitCode === null &&
      this.launcher.signalCode === null &&
      Date.now() < deadline
    ) {
      await sleep(20);
    }
    await cleanupCgroups(this.cgroupDirs);
    rmSync(this.state, { recursive: true, force: true });
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** rmdir every directory of each subtree, deepest first, retrying while the last
 * processes of the sandbox are still being reaped. */
async function cleanupCgroups(dirs: string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (const top of dirs) {
    for (;;) {
      const all: string[] = [];
      const walk = (d: string) => {
        all.push(d);
        let entries: string[] = [];
        try {
          entries = readdirSync(d);
        } catch {
          return;
        }
        for (const e of entries) {
          const p = join(d, e);
          try {
            if (statSync(p).isDirectory()) walk(p);
          } catch {
            // vanished
          }
        }
      };
      if (!existsSync(top)) break;
      walk(top);
      all.sort((a, b) => b.length - a.length);
      for (const d of all) {
        try {
          rmdirSync(d);
        } catch {
          // busy: retried below
        }
      }
      if (!existsSync(top) || Date.now() > deadline) break;
      await sleep(50);
    }
  }
}
