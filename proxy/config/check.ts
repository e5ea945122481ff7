// checkConfigFiles: every file the configuration names exists, is readable and holds what
// it should (certificates parse and are in their validity period, keys parse and match
// their certificate, the GeoIP file is a MaxMind database). ACL files are the ACL
// loader's business: `portail check` calls both.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import type { Diagnostic } from '../../acl-lang/types.js';
import {
  disabledLogin,
  disabledMessage,
  escaperLoginKey,
  rememberPin,
} from '../connect/pkcs11-login.js';
import { formatKeyPath, makeDiagnostic, sortDiagnostics } from './errors.js';
import { configSource } from './load.js';
import { findSpan, type KeyPath } from './locate.js';
import { parsePkcs11Uri } from './pkcs11-uri.js';
import type { Config } from './types.js';
import { writtenPath } from './upstream-keys.js';

export interface CheckOptions {
  /** The time certificates must be valid at (default: now). */
  now?: Date;
}

type Report = (at: KeyPath, message: string, severity?: 'error' | 'warning') => void;

/** A diagnostic about the key at `at` of a loaded configuration, placed on that key. */
export function keyDiagnostic(
  config: Config,
  at: KeyPath,
  message: string,
  severity: 'error' | 'warning' = 'error',
): Diagnostic {
  const source = configSource(config);
  const written = source ? writtenPath(at, source.renames) : at;
  const span = source ? findSpan(source.spans, written) : undefined;
  return makeDiagnostic(
    source?.name ?? config.file,
    source?.text ?? '',
    span,
    `${formatKeyPath(written)}: ${message}`,
    severity,
  );
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'a parent is not a folder';
  return (err as Error).message;
}

/** The file's bytes, or undefined after reporting why they cannot be had. */
async function readRegular(at: KeyPath, path: string, report: Report): Promise<Buffer | undefined> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) {
      report(at, `"${path}" is a folder, not a file`);
      return undefined;
    }
    return await readFile(path);
  } catch (err) {
    report(at, `cannot read "${path}": ${errnoText(err)}`);
    return undefined;
  }
}

async function warnIfWorldReadable(
  at: KeyPath,
  path: string,
  report: Report,
  what = 'is a private key readable by every user (chmod o-r)',
  mask = 0o004,
): Promise<void> {
  try {
    if (((await stat(path)).mode & mask) !== 0) report(at, `"${path}" ${what}`, 'warning');
  } catch {
    // Already reported by the read.
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ') || '(no subject)';
}

/** Parses every certificate of a PEM file; reports what is unusable. */
function certificates(
  at: KeyPath,
  path: string,
  bytes: Buffer,
  report: Report,
): X509Certificate[] | undefined {
  const blocks = bytes.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    report(at, `"${path}" holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
    return undefined;
  }
  const out: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      out.push(new X509Certificate(block));
    } catch (err) {
      report(at, `"${path}": certificate ${i + 1} cannot be parsed: ${(err as Error).message}`);
      return undefined;
    }
  }
  return out;
}

/** Expired or not-yet-valid certificates; for a CA bundle only when none is usable. */
function checkValidity(
  at: KeyPath,
  path: string,
  certs: X509Certificate[],
  now: Date,
  bundle: boolean,
  report: Report,
): void {
  const problems = certs.map((c) => {
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    if (to < now) return `certificate "${subjectOf(c)}" expired on ${to.toISOString()}`;
    if (from > now)
      return `certificate "${subjectOf(c)}" is not valid before ${from.toISOString()}`;
    return undefined;
  });
  const bad = problems.filter((p): p is string => p !== undefined);
  if (bad.length === 0) return;
  const severity = bundle && bad.length < certs.length ? 'warning' : 'error';
  for (const p of bad) report(at, `"${path}": ${p}`, severity);
}

async function privateKey(
  at: KeyPath,
  path: string,
  report: Report,
): Promise<KeyObject | undefined> {
  const bytes = await readRegular(at, path, report);
  if (!bytes) return undefined;
  await warnIfWorldReadable(at, path, report);
  const pem = bytes.toString('latin1');
  if (
    pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') ||
    pem.includes('Proc-Type: 4,ENCRYPTED')
  ) {
    report(at, `"${path}" is an encrypted private key: a daemon cannot ask for its passphrase`);
    return undefined;
  }
  try {
    return createPrivateKey(bytes);
  } catch (err) {
    report(at, `"${path}" is not a usable private key: ${(err as Error).message}`);
    return undefined;
  }
}

/** A certificate file (chain: leaf first) and, when given, the private key it must match. */
async function identity(
  certAt: KeyPath,
  certPath: string | undefined,
  keyAt: KeyPath,
  keyPath: string | undefined,
  now: Date,
  report: Report,
): Promise<void> {
  const [bytes, key] = await Promise.all([
    certPath ? readRegular(certAt, certPath, report) : undefined,
    keyPath ? privateKey(keyAt, keyPath, report) : undefined,
  ]);
  if (!certPath || !bytes) return;
  const certs = certificates(certAt, certPath, bytes, report);
  if (!certs) return;
  checkValidity(certAt, certPath, certs, now, false, report);
  if (key && !certs[0].checkPrivateKey(key)) {
    report(
      keyAt,
      `"${keyPath}" does not match the certificate "${subjectOf(certs[0])}" of "${certPath}"`,
    );
  }
}

async function caBundle(
  at: KeyPath,
  path: string | undefined,
  now: Date,
  report: Report,
): Promise<void> {
  if (!path) return;
  const bytes = await readRegular(at, path, report);
  if (!bytes) return;
  const certs = certificates(at, path, bytes, report);
  if (certs) checkValidity(at, path, certs, now, true, report);
}

async function plainFile(
  at: KeyPath,
  path: string | undefined,
  report: Report,
): Promise<Buffer | undefined> {
  return path ? readRegular(at, path, report) : undefined;
}

// Every MaxMind DB ends with its metadata, introduced by this marker.
const MAXMIND_MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com')]);

async function auditFile(at: KeyPath, path: string, report: Report): Promise<void> {
  try {
    const st = await stat(path);
    if (!st.isFile()) {
      report(at, `"${path}" is not a regular file`);
      return;
    }
    await access(path, constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      report(at, `cannot write "${path}": ${errnoText(err)}`);
      return;
    }
    // Created on first record: its folder must exist and be writable.
    try {
      const dir = dirname(path);
      if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' });
      await access(dir, constants.W_OK);
    } catch (e) {
      report(at, `cannot create "${path}": ${errnoText(e)}`);
    }
  }
}

/**
 * `[escaper] pkcs11-uri`: a well-formed URI, and its pin-source file read now, once per
 * load (pkcs11.ts logs in with what was read here, so that a file being rewritten
 * cannot cost a PIN try between two reloads). A token disabled by a refused login for
 * these very settings is reported (docs/security.md, "Hardware tokens (PKCS#11)").
 */
async function pkcs11Settings(escaper: Config['escaper'], report: Report): Promise<void> {
  if (escaper.pkcs11Uri === undefined) return;
  const at = ['escaper', 'pkcs11-uri'];
  let source: string | undefined;
  try {
    source = parsePkcs11Uri(escaper.pkcs11Uri).pinSource;
  } catch (err) {
    report(at, (err as Error).message);
    return;
  }
  if (source !== undefined) {
    const path = source.startsWith('file:') ? source.slice('file:'.length) : source;
    if (!isAbsolute(path)) {
      report(at, 'pin-source must be an absolute file path (file:/…)');
      return;
    }
    const bytes = await readRegular(at, path, report);
    if (!bytes) return;
    await warnIfWorldReadable(
      at,
      path,
      report,
      'holds a PIN and is readable by other users (chmod go-r)',
      0o044,
    );
    rememberPin(escaper, bytes.toString('utf8').replace(/\r?\n$/, ''));
  }
  const key = escaperLoginKey(escaper);
  const off = key === undefined ? undefined : disabledLogin(key);
  if (off) report(at, disabledMessage(off), 'warning');
}

/**
 * Checks every file `config` refers to, except the ACL files. Returns diagnostics
 * (errors and warnings) positioned on the key that names each file.
 */
export async function checkConfigFiles(
  config: Config,
  opts: CheckOptions = {},
): Promise<Diagnostic[]> {
  const now = opts.now ?? new Date();
  const diagnostics: Diagnostic[] = [];
  const report: Report = (at, message, severity = 'error') => {
    diagnostics.push(keyDiagnostic(config, at, message, severity));
  };

  const { listener, escaper } = config;
  const jobs: Promise<unknown>[] = [
    caBundle(['listener', 'cacert-file'], listener.cacertFile, now, report),
    identity(
      ['listener', 'tls-chain'],
      listener.tlsChain,
      ['listener', 'tls-privkey'],
      listener.tlsPrivkey,
      now,
      report,
    ),
    caBundle(['escaper', 'cacert-file'], escaper.cacertFile, now, report),
    identity(
      ['escaper', 'tls-certificate'],
      escaper.tlsCertificate,
      ['escaper', 'tls-privkey'],
      escaper.tlsPrivkey,
      now,
      report,
    ),
    plainFile(['escaper', 'pkcs11-module'], escaper.pkcs11Module, report),
    pkcs11Settings(escaper, report),
  ];
  if (config.geoip.database) {
    const at = ['geoip', 'database'];
    const path = config.geoip.database;
    jobs.push(
      plainFile(at, path, report).then((bytes) => {
        if (bytes && bytes.lastIndexOf(MAXMIND_MARKER) < 0)
          report(at, `"${path}" is not a MaxMind database`);
      }),
    );
  }
  if (config.log.audit?.kind === 'file')
    jobs.push(auditFile(['log', 'audit'], config.log.audit.path, report));
  for (const b of Object.values(config.backends)) {
    if (b.identityFile) {
      const at = ['backends', b.name, 'identity-file'];
      const path = b.identityFile;
      jobs.push(
        plainFile(at, path, report).then(async (bytes) => {
          if (!bytes) return;
          if (!bytes.toString('latin1').includes('PRIVATE KEY-----')) {
            report(at, `"${path}" is not an SSH private key (no "PRIVATE KEY" block)`);
            return;
          }
          await warnIfWorldReadable(at, path, report);
        }),
      );
    }
    if (b.knownHosts) {
      const at = ['backends', b.name, 'known-hosts'];
      const path = b.knownHosts;
      jobs.push(
        plainFile(at, path, report).then((bytes) => {
          if (!bytes) return;
          const entries = bytes
            .toString('utf8')
            .split('\n')
            .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
          if (entries.length === 0) {
            report(
              at,
              `"${path}" lists no host key: every connection through this backend will fail`,
              'warning',
            );
          }
        }),
      );
    }
  }
  await Promise.all(jobs);
  return sortDiagnostics(diagnostics);
}
