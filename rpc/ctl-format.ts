// portailctl's human-readable output, from the wire replies (snake_case, as
// io.portail.Control and fr.gouv.portail.Control define them).

import { formatHostPort } from '../common/host-port.js';

type Obj = Record<string, unknown>;

/** `key: value` lines with the values aligned; multi-line values are indented under theirs. */
export function aligned(rows: [string, string][]): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length)) + 2;
  return rows
    .map(([k, v]) => {
      const [first, ...rest] = v.split('\n');
      return [
        `${`${k}:`.padEnd(width)}${first}`,
        ...rest.map((l) => `${' '.repeat(width)}${l}`),
      ].join('\n');
    })
    .join('\n');
}

export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', `${s}s`].filter(Boolean);
  return (d || h || m) && s === 0 ? parts.slice(0, -1).join(' ') : parts.join(' ');
}

function aclRows(label: string, acl: Obj | null): [string, string][] {
  if (!acl) return [[label, 'none']];
  const state = acl.loaded
    ? `loaded ${acl.loaded_at ?? ''}`.trim()
    : 'NOT LOADED (everything is denied)';
  return [
    [label, String(acl.file ?? 'none')],
    [`${label} sha256`, String(acl.hash ?? '-')],
    [`${label} state`, state],
  ];
}

export function formatStatus(s: Obj): string {
  const rows: [string, string][] = [
    ['version', String(s.version)],
    ['pid', String(s.pid)],
    ['uptime', `${duration(Number(s.uptime_seconds))} (since ${s.started_at})`],
    ['config', String(s.config_file ?? 'none (built-in defaults)')],
  ];
  const listeners = (s.listeners as Obj[]) ?? [];
  if (listeners.length === 0) rows.push(['listeners', 'none']);
  for (const l of listeners) rows.push([`listener ${l.name}`, `${l.address} (${l.source})`]);
  rows.push(
    ...aclRows('acl', s.acl as Obj),
    ...aclRows('explain acl', (s.explain_acl as Obj) ?? null),
  );
  rows.push(['active connections', String(s.active_connections)]);
  rows.push(['default backend', String(s.default_backend ?? 'none (direct exit)')]);
  const r = s.last_reload as Obj | null;
  if (!r) rows.push(['last reload', 'none since start']);
  else {
    const diag = String(r.diagnostics ?? '').trim();
    rows.push(['last reload', `${r.ok ? 'ok' : 'FAILED'} at ${r.at}${diag ? `\n${diag}` : ''}`]);
  }
  for (const h of (s.backends as Obj[] | undefined) ?? []) {
    const err = h.last_error ? `\n${h.last_error}` : '';
    rows.push([`backend ${h.name}`, `${healthText(h)}${h.healthy ? '' : err}`]);
  }
  const p = s.pkcs11 as Obj | null | undefined;
  if (p) {
    const state =
      p.state === 'disabled' ? `DISABLED since ${p.since}\n${p.reason}` : String(p.state);
    rows.push(['pkcs11 token', `${state}\n${p.uri}`]);
  }
  return aligned(rows);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `healthy`, or `UNHEALTHY (2 failures, retry at …)` from a wire BackendHealth. */
export function healthText(h: Obj): string {
  const n = Number(h.consecutive_failures ?? 0);
  if (h.healthy)
    return n ? `healthy (${n} failure${n > 1 ? 's' : ''} since last success)` : 'healthy';
  return `UNHEALTHY (${n} failure${n === 1 ? '' : 's'}${h.retry_at ? `, retry at ${h.retry_at}` : ''})`;
}

/** `health`: io.portail.Control.Status `backends` (by name); a HEALTH column when given. */
export function formatBackends(backends: Obj[], health?: Obj[]): string {
  if (backends.length === 0) return 'no backends configured';
  const byName = new Map((health ?? []).map((h) => [String(h.name), h]));
  const header = ['BACKEND', 'DEFAULT', 'DYNAMIC', 'TARGET', 'TLS'];
  if (health) header.push('HEALTH');
  return table(
    header,
    backends.map((b) => {
      const spec = b.spec as Obj | null;
      const tls = spec?.identity_aware
        ? `identity-aware${spec.tls_server_name ? ` (${spec.tls_server_name})` : ''}`
        : '-';
      const row = [
        String(b.id),
        b.current ? 'yes' : '-',
        b.dynamic ? 'yes' : '-',
        spec ? String(spec.target_address) : '(not set)',
        spec ? tls : '-',
      ];
      if (health) {
        const h = byName.get(String(b.id));
        row.push(h ? healthText(h) : '-');
      }
      return row;
    }),
  );
}

export function formatExplain(e: Obj, target: string): string {
  const backends = (e.backends as string[]) ?? [];
  const routes = (e.routes as string[]) ?? [];
  const route = backends.length
    ? `${backends.join(', ')}${routes.length ? ` (route ${routes.join(', ')})` : ' (default backend)'}`
    : 'direct';
  const rows: [string, string][] = [
    ['request', target],
    ['decision', String(e.action)],
    [
      'policy',
      e.policy ? String(e.policy) : e.redacted ? '(withheld)' : 'none (no policy matched)',
    ],
    ['route', route],
    ['reason', String(e.reason)],
  ];
  if (e.redirect) rows.push(['redirect', String(e.redirect)]);
  const tags = (e.tags as string[]) ?? [];
  if (tags.length) rows.push(['tags', tags.join(', ')]);
  const out = [aligned(rows)];
  const failed = (e.failed as Obj[]) ?? [];
  if (failed.length) {
    out.push('failed requirements:');
    for (const f of failed) {
      out.push(`  policy ${f.policy} (${f.action}): ${f.clause} ${f.expression} — ${f.result}`);
      for (const c of (f.comparisons as Obj[]) ?? []) {
        const seen = c.seen === null ? 'missing' : String(c.seen);
        out.push(`    ${c.text}: ${c.result} (${c.attribute} = ${seen})`);
      }
    }
  }
  const missing = (e.missing as string[]) ?? [];
  if (missing.length) out.push(`missing attributes: ${missing.join(', ')}`);
  if (e.redacted) out.push(String(e.explanation));
  return out.join('\n');
}

/** Denials, oldest first; entries of another uid than `ownUid` name their user. */
export function formatDenials(denials: Obj[], ownUid: number | undefined): string {
  if (denials.length === 0) return ownUid === 0 ? 'no recent denials' : 'no recent denials for you';
  return denials
    .map((d) => {
      const other = d.uid !== ownUid;
      const who = other ? ` ${d.user ?? (d.uid === null ? '(unknown user)' : `uid ${d.uid}`)}` : '';
      const what = formatHostPort({ host: String(d.host), port: d.port as number });
      const proc = d.process ? ` (${d.process})` : '';
      const head = `${d.time}${who} ${what}${proc}: ${d.reason}`;
      const expl = String(d.explanation ?? '').trim();
      const extra = expl && expl !== d.reason ? `\n${expl.replace(/^/gm, '    ')}` : '';
      return head + extra;
    })
    .join('\n');
}
