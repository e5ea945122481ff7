// ACL benchmark (issue: ACL language). Prints load time, evaluation p50/p99 and RSS
// after load for three ACL shapes. Each scenario runs in its own process so that RSS
// is its own. Run: `npm run build && node dist/test/bench/acl.js` (or `npm run bench`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AclContext, AttrValue } from '../../acl-lang/index.js';
import { evaluate, loadAclFile } from '../../acl-lang/index.js';

const SCENARIOS = {
  a: 'one policy over a 1,000,000-entry host list (exact + .suffix)',
  b: '100,000 policies `when host == "hN.example.com" and port == 443`',
  c: '1,000 policies with regexes',
} as const;
type Scenario = keyof typeof SCENARIOS;

/** Evaluations per scenario (the regex scenario is slow by nature: fewer). */
const EVALS: Record<Scenario, number> = { a: 200_000, b: 200_000, c: 5_000 };

function writeScenario(dir: string, s: Scenario): string {
  const acl = join(dir, 'bench.acl');
  if (s === 'a') {
    const lines: string[] = [];
    for (let i = 0; i < 1_000_000; i++)
      lines.push(i % 2 ? `host${i}.blocked.test` : `.zone${i}.test`);
    writeFileSync(join(dir, 'blocked.txt'), `${lines.join('\n')}\n`);
    writeFileSync(
      acl,
      'policy blocked {\n  when host in file("blocked.txt")\n  action deny\n}\npolicy rest {\n  action allow\n}\n',
    );
  } else if (s === 'b') {
    const out: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      out.push(
        `policy p${i} {\n  when host == "h${i}.example.com" and port == 443\n  action allow\n}\n`,
      );
    }
    out.push('policy deny_all {\n  action deny\n}\n');
    writeFileSync(acl, out.join(''));
  } else {
    const out: string[] = [];
    for (let i = 0; i < 1_000; i++) {
      out.push(
        `policy r${i} {\n  when host =~ "^(www|api)\\.svc${i}\\.example\\.(com|org)$"\n  action allow\n}\n`,
      );
    }
    out.push('policy deny_all {\n  action deny\n}\n');
    writeFileSync(acl, out.join(''));
  }
  return acl;
}

function hostsFor(s: Scenario): string[] {
  const hosts: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const n = (i * 7919) % (s === 'a' ? 1_000_000 : s === 'b' ? 100_000 : 1_000);
    if (s === 'a')
      hosts.push(
        i % 3 === 0
          ? `deep.sub.zone${n - (n % 2)}.test`
          : i % 3 === 1
            ? `host${n | 1}.blocked.test`
            : `free${n}.example.net`,
      );
    else if (s === 'b') hosts.push(i % 4 === 3 ? `miss${n}.example.com` : `h${n}.example.com`);
    else hosts.push(i % 4 === 3 ? `miss${n}.example.com` : `www.svc${n}.example.org`);
  }
  return hosts;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runScenario(s: Scenario): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portail-bench-acl-'));
  try {
    const path = writeScenario(dir, s);
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const t0 = process.hrtime.bigint();
    const loaded = await loadAclFile(path, { backends: new Set() });
    const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!loaded.acl)
      throw new Error(`scenario ${s} failed to load: ${loaded.diagnostics[0]?.message}`);
    global.gc?.();
    const rssAfter = process.memoryUsage().rss;
    const hosts = hostsFor(s);
    const values = new Map<string, AttrValue>([
      ['port', 443],
      ['host', ''],
    ]);
    const ctx: AclContext = { get: (k) => values.get(k) };
    const n = EVALS[s];
    const times = new Float64Array(n);
    let allowed = 0;
    for (let i = 0; i < n; i++) {
      values.set('host', hosts[i % hosts.length]);
      const a = process.hrtime.bigint();
      const d = evaluate(loaded.acl, ctx);
      times[i] = Number(process.hrtime.bigint() - a) / 1000;
      if (d.action === 'allow') allowed++;
    }
    times.sort();
    console.log(
      JSON.stringify({
        scenario: s,
        description: SCENARIOS[s],
        load_ms: Math.round(loadMs),
        eval_p50_us: Number(percentile(times, 50).toFixed(2)),
        eval_p99_us: Number(percentile(times, 99).toFixed(2)),
        rss_after_load_mb: Math.round(rssAfter / 2 ** 20),
        rss_delta_mb: Math.round((rssAfter - rssBefore) / 2 ** 20),
        allowed_ratio: Number((allowed / n).toFixed(2)),
        evaluations: n,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const arg = process.argv[2] as Scenario | undefined;
if (arg && arg in SCENARIOS) {
  await runScenario(arg);
} else {
  console.log('ACL benchmark (load once, then evaluate over 1,000 varied hosts)');
  const targets: Record<Scenario, string> = {
    a: 'load < 1000 ms, p99 < 10 µs',
    b: 'load < 2000 ms, p99 < 20 µs',
    c: 'reported',
  };
  for (const s of Object.keys(SCENARIOS) as Scenario[]) {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), s], {
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      console.log(`(${s}) FAILED: ${r.stderr}`);
      process.exitCode = 1;
      continue;
    }
    const m = JSON.parse(r.stdout.trim().split('\n').pop() as string);
    console.log(
      `(${s}) ${m.description}\n    load ${m.load_ms} ms, ${m.evaluations} evaluations, eval p50 ${m.eval_p50_us} µs, p99 ${m.eval_p99_us} µs, RSS after load ${m.rss_after_load_mb} MB (+${m.rss_delta_mb} MB); target: ${targets[s]}`,
    );
  }
}
