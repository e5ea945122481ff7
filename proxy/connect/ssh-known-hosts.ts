// OpenSSH known_hosts, read the way `ssh -o StrictHostKeyChecking=yes` reads it: plain
// and hashed (`|1|salt|hash`) host patterns, `[host]:port` for ports other than 22,
// wildcards and negations, `@revoked` lines. There is no trust-on-first-use: a host
// that is not listed is refused like a host whose key changed.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface KnownHostKey {
  /** Key type as written (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …). */
  type: string;
  /** The public key blob (SSH wire format), decoded from base64. */
  blob: Buffer;
}

export interface KnownHostsEntry extends KnownHostKey {
  marker?: 'revoked' | 'cert-authority';
  /** Comma-separated patterns, or one hashed `|1|salt|hash` name. */
  hosts: string;
  line: number;
}

/** Parses known_hosts text; malformed lines are skipped (as OpenSSH does). */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fields = lines[i].trim().split(/\s+/);
    if (fields[0] === '' || fields[0].startsWith('#')) continue;
    let marker: KnownHostsEntry['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [hosts, type, b64] = fields;
    if (!hosts || !type || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) continue;
    const blob = Buffer.from(b64, 'base64');
    // The blob starts with its own type name: a line whose two disagree is corrupt.
    if (blobType(blob) !== type) continue;
    out.push({ marker, hosts, type, blob, line: i + 1 });
  }
  return out;
}

/** The key type string at the start of an SSH public key blob. */
export function blobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) return undefined;
  return blob.subarray(4, 4 + n).toString('latin1');
}

/** The name known_hosts stores for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** `?` and `*` wildcards, case-insensitive (OpenSSH match_pattern). */
function globMatch(pattern: string, name: string): boolean {
  let re = '^';
  for (const ch of pattern.toLowerCase()) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`${re}$`, 's').test(name);
}

function hashedMatch(hosts: string, name: string): boolean {
  const parts = hosts.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Whether an entry's host field names `name` (a negated match wins over everything). */
export function hostMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|')) return hashedMatch(hosts, name);
  let matched = false;
  for (const p of hosts.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

export interface HostKeys {
  /** Keys listed for the host (no `@revoked` or `@cert-authority` lines). */
  keys: KnownHostKey[];
  /** Revoked keys, whatever host they name. */
  revoked: KnownHostKey[];
  /**
   * `@cert-authority` lines naming the host. Host certificates are not supported (ssh2
   * cannot verify them): these never make a key pass, they only explain a refusal.
   */
  certAuthorities: number;
}

/** The keys known_hosts lists for `name`. */
export function keysFor(entries: readonly KnownHostsEntry[], name: string): HostKeys {
  const keys: KnownHostKey[] = [];
  const revoked: KnownHostKey[] = [];
  let certAuthorities = 0;
  for (const e of entries) {
    if (e.marker === 'revoked') {
      // OpenSSH refuses a revoked key for any host the line's pattern covers; a
      // revoked key is refused everywhere here, which is never less safe.
      revoked.push(e);
    } else if (e.marker === 'cert-authority') {
      if (hostMatches(e.hosts, name)) certAuthorities++;
    } else if (hostMatches(e.hosts, name)) keys.push(e);
  }
  return { keys, revoked, certAuthorities };
}

export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; why: 'revoked' | 'unknown-host' | 'mismatch' };

/** Whether `blob` (the key the server presented) is one known_hosts trusts for the host. */
export function verifyHostKey(known: HostKeys, blob: Buffer): HostKeyVerdict {
  if (known.revoked.some((k) => k.blob.equals(blob))) return { ok: false, why: 'revoked' };
  if (known.keys.length === 0) return { ok: false, why: 'unknown-host' };
  if (known.keys.some((k) => k.blob.equals(blob))) return { ok: true };
  return { ok: false, why: 'mismatch' };
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Host key algorithms to offer, from the key types known for the host (as OpenSSH
 * orders its offer), so that a server with several host keys presents one we can check.
 */
export function hostKeyAlgorithms(
  keys: readonly KnownHostKey[],
  supported: readonly string[],
): string[] {
  const out: string[] = [];
  for (const k of keys) {
    const algs = k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type];
    for (const a of algs) if (supported.includes(a) && !out.includes(a)) out.push(a);
  }
  return out;
}
