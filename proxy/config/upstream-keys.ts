// Upstream's spellings (docs/upstream.md, "Configuration keys"): before the strict schema
// sees the document, `request-timeout` becomes `connect-timeout` (upstream's serde alias)
// and a snake_case spelling of a key upstream knows (`tcp_nodelay` in upstream's own
// example) becomes its kebab-case key, with a warning. Upstream silently ignores those
// spellings; portail applies what they say, because ignoring `[listener] cacert_file`
// would serve TLS without the client certificates its writer asked for. Every other
// unknown key stays an error.
import type { KeyPath } from './locate.js';
import { isTable } from './rules.js';

/** The keys upstream's Settings knows, per table (kebab-case, as upstream's serde renames them). */
const UPSTREAM_KEYS: Record<string, readonly string[]> = {
  '': [
    'filter-acl-rules-path',
    'explain-acl-rules-path',
    'public-address',
    'handshake-timeout',
    'connect-timeout',
    'tcp-nodelay',
    'default-backend',
    'max-connections',
  ],
  dns: ['resolvers', 'timeout'],
  listener: ['cacert-file', 'tls-privkey', 'tls-chain'],
  escaper: ['cacert-file', 'tls-privkey', 'tls-certificate', 'pkcs11-uri'],
  rpc: ['admin-groups', 'trusted-groups'],
  backend: ['target-address', 'dynamic', 'identity-aware', 'tls-server-name'],
};

/** Upstream's serde aliases: old name → key (top level). */
const ALIASES: Record<string, string> = { 'request-timeout': 'connect-timeout' };

export interface UpstreamRename {
  /** Where the key was written. */
  from: KeyPath;
  /** The key it stands for. */
  to: KeyPath;
}

export interface UpstreamIssue {
  path: KeyPath;
  message: string;
  severity: 'error' | 'warning';
}

/**
 * Rewrites upstream's spellings in `doc` (in place) and returns what was renamed, with
 * the warnings (a snake_case spelling) and errors (both spellings of one key) to report.
 */
export function applyUpstreamSpellings(doc: Record<string, unknown>): {
  renames: UpstreamRename[];
  issues: UpstreamIssue[];
} {
  const renames: UpstreamRename[] = [];
  const issues: UpstreamIssue[] = [];
  const visit = (table: Record<string, unknown>, at: KeyPath, known: readonly string[]) => {
    for (const key of Object.keys(table)) {
      let to: string | undefined;
      let warn = false;
      if (at.length === 0 && Object.hasOwn(ALIASES, key)) to = ALIASES[key];
      else if (key.includes('_')) {
        const kebab = key.replaceAll('_', '-');
        if (known.includes(kebab)) {
          to = kebab;
          warn = true;
        }
      }
      if (to === undefined) continue;
      if (Object.hasOwn(table, to)) {
        issues.push({
          path: [...at, key],
          message: `is "${to}" written another way, and "${to}" is set too: keep one`,
          severity: 'error',
        });
        // Reported once, here, not again as an unknown key.
        delete table[key];
        continue;
      }
      table[to] = table[key];
      delete table[key];
      renames.push({ from: [...at, key], to: [...at, to] });
      if (warn) {
        issues.push({
          path: [...at, key],
          message: `read as "${to}" (upstream ignores this spelling; portail applies it): write "${to}"`,
          severity: 'warning',
        });
      }
    }
  };
  visit(doc, [], UPSTREAM_KEYS['']);
  for (const section of ['dns', 'listener', 'escaper', 'rpc']) {
    const t = doc[section];
    if (isTable(t)) visit(t, [section], UPSTREAM_KEYS[section]);
  }
  if (isTable(doc.backends)) {
    for (const [name, b] of Object.entries(doc.backends)) {
      if (isTable(b)) visit(b, ['backends', name], UPSTREAM_KEYS.backend);
    }
  }
  return { renames, issues };
}

/** `path` as the user wrote it: a renamed key is shown (and located) under its written name. */
export function writtenPath(path: KeyPath, renames: readonly UpstreamRename[]): KeyPath {
  for (const r of renames) {
    if (r.to.length <= path.length && r.to.every((seg, i) => path[i] === seg)) {
      return [...r.from, ...path.slice(r.to.length)];
    }
  }
  return path;
}
