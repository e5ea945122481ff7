// PKCS#11 (hardware-backed) client key for identity-aware backends. pkcs11js opens the
// module to find the token, check the PIN and find the key and its certificate, so
// that every mistake is reported here in plain words; the TLS handshake itself signs
// through OpenSSL's pkcs11 engine (libp11), which Node loads by absolute path.
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import tls from 'node:tls';
import pkcs11js from 'pkcs11js';
import {
  encodeAttr,
  type Pkcs11Uri,
  parsePkcs11Uri,
  redactPkcs11Uri,
} from '../config/pkcs11-uri.js';
import type { EscaperConfig } from '../config/types.js';
import { ConnectError } from '../types.js';
import {
  DEFAULT_PKCS11_MODULE,
  ENGINE_CANDIDATES,
  engineBound,
  findEngineFile,
  prepareEngine,
} from './pkcs11-engine.js';
import {
  disabledLogin,
  disabledMessage,
  disableLogin,
  flagRefusal,
  loginKey,
  loginRefusal,
  loginSucceeded,
  rememberedPin,
} from './pkcs11-login.js';

export { DEFAULT_PKCS11_MODULE };

/** Debian's bundle of the system's trust anchors (ca-certificates). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

// PKCS#11 return values we explain (pkcs11js reports them as Pkcs11Error.code).
const CKR_USER_ALREADY_LOGGED_IN = 0x100;
const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

function fail(message: string): ConnectError {
  return new ConnectError('internal', message);
}

function codeOf(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

function engineFile(): string {
  const found = findEngineFile();
  if (!found)
    throw fail(
      'OpenSSL pkcs11 engine not found (apt-get install libengine-pkcs11-openssl): looked for ' +
        ENGINE_CANDIDATES.join(', '),
    );
  return found;
}

async function readPin(escaper: EscaperConfig, uri: Pkcs11Uri): Promise<string | undefined> {
  if (uri.pinValue !== undefined) return uri.pinValue;
  if (uri.pinSource === undefined) return undefined;
  // Read when the configuration was loaded (check.ts): a file being rewritten must not
  // cost a login attempt between two reloads.
  const remembered = rememberedPin(escaper);
  if (remembered) return remembered.pin;
  const path = uri.pinSource.startsWith('file:')
    ? uri.pinSource.slice('file:'.length)
    : uri.pinSource;
  if (!isAbsolute(path))
    throw fail(`pin-source must be an absolute file path (file:/…), got "${uri.pinSource}"`);
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (e) {
    throw fail(`cannot read the PIN from pin-source ${path}: ${(e as Error).message}`);
  }
}

const trimPad = (s: string) => s.replace(/[\s\0]+$/, '');

interface Found {
  slot: Buffer;
  label: string;
  serial: string;
}

function findToken(p11: pkcs11js.PKCS11, uri: Pkcs11Uri, module: string): Found {
  const slots = p11.C_GetSlotList(true);
  const seen: string[] = [];
  const matches: Found[] = [];
  for (const slot of slots) {
    const info = p11.C_GetTokenInfo(slot);
    // SoftHSM (and some readers) always show one blank, uninitialized token.
    if (!(info.flags & pkcs11js.CKF_TOKEN_INITIALIZED)) continue;
    const label = trimPad(info.label);
    const serial = trimPad(info.serialNumber);
    seen.push(`"${label}"`);
    if (uri.token !== undefined && uri.token !== label) continue;
    if (uri.serial !== undefined && uri.serial !== serial) continue;
    if (uri.manufacturer !== undefined && uri.manufacturer !== trimPad(info.manufacturerID))
      continue;
    if (uri.model !== undefined && uri.model !== trimPad(info.model)) continue;
    if (uri.slotId !== undefined && BigInt(uri.slotId) !== slotNumber(slot)) continue;
    matches.push({ slot, label, serial });
  }
  const wanted = uri.token !== undefined ? `token "${uri.token}"` : 'the token the URI names';
  if (matches.length === 0)
    throw fail(
      `PKCS#11 ${wanted} is not present in ${module} (tokens present: ${seen.join(', ') || 'none'})`,
    );
  if (matches.length > 1)
    throw fail(
      `PKCS#11 URI matches ${matches.length} tokens in ${module} (${seen.join(', ')}): add token= or serial=`,
    );
  return matches[0];
}

function slotNumber(slot: Buffer): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0));
}

function findObjects(p11: pkcs11js.PKCS11, session: Buffer, template: pkcs11js.Template): Buffer[] {
  p11.C_FindObjectsInit(session, template);
  try {
    return p11.C_FindObjects(session, 64);
  } finally {
    p11.C_FindObjectsFinal(session);
  }
}

function attr(
  p11: pkcs11js.PKCS11,
  session: Buffer,
  handle: Buffer,
  type: number,
): Buffer | undefined {
  try {
    const [a] = p11.C_GetAttributeValue(session, handle, [{ type }]);
    return Buffer.isBuffer(a?.value) ? a.value : undefined;
  } catch {
    return undefined;
  }
}

/** Signs a challenge with the token key and checks it with `cert`'s public key. */
function keyMatches(
  p11: pkcs11js.PKCS11,
  session: Buffer,
  key: Buffer,
  keyType: number,
  cert: X509Certificate,
): boolean {
  const challenge = Buffer.from(`portail pkcs11 key check ${Date.now()}`);
  try {
    if (keyType === pkcs11js.CKK_RSA) {
      if (cert.publicKey.asymmetricKeyType !== 'rsa') return false;
      p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, key);
      const sig = p11.C_Sign(session, challenge, Buffer.alloc(1024));
      return verifySignature('sha256', challenge, cert.publicKey, sig);
    }
    if (keyType === pkcs11js.CKK_EC) {
      if (cert.publicKey.asymmetricKeyType !== 'ec') return false;
      const digest = createHash('sha256').update(challenge).digest();
      p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key);
      const sig = p11.C_Sign(session, digest, Buffer.alloc(512));
      // CKM_ECDSA signs the digest as given and returns raw r||s.
      return verifySignature(
        'sha256',
        challenge,
        { key: cert.publicKey, dsaEncoding: 'ieee-p1363' },
        sig,
      );
    }
  } catch {
    return false;
  }
  return false;
}

export interface Pkcs11Identity {
  /** PEM certificate. */
  cert: string;
  /** The engine's id (see pkcs11-engine.ts). */
  privateKeyEngine: string;
  /** URI for the engine, without the PIN (engineContext hands the PIN over in a file). */
  privateKeyIdentifier: string;
  /** Trust anchors: [escaper] cacert-file, else the system bundle. */
  ca?: string;
  /**
   * The context built from the fields above, made once per identity and shared: each
   * context costs a token login and key lookup, and tls.connect must not build its own.
   */
  secureContext: tls.SecureContext;
}

/**
 * Contexts already made with the engine, by identity. They are never dropped: besides
 * saving a login per reload, a live context keeps the engine initialised (libp11 would
 * otherwise finalise the module and log out when the last one goes).
 */
const contexts = new Map<string, tls.SecureContext>();

/** A temporary folder whose path needs no escaping inside a PKCS#11 URI. */
const SAFE_TMP = /^\/[A-Za-z0-9/._-]*$/;

function engineContext(
  options: tls.SecureContextOptions,
  keyName: string,
  module: string,
  pin: string | undefined,
): tls.SecureContext {
  const key = JSON.stringify([
    options.privateKeyEngine,
    options.privateKeyIdentifier,
    pin === undefined ? null : createHash('sha256').update(pin).digest('hex'),
    options.cert,
    options.ca,
  ]);
  let ctx = contexts.get(key);
  if (ctx) return ctx;
  // libp11 prints the key URI on stderr when it cannot load the key: the PIN must not
  // be in it. It reads `pin-source=file:` while the key is loaded (here, once), so the
  // PIN goes through a file of our own, readable by us only, removed right after.
  let pinDir: string | undefined;
  try {
    let identifier = options.privateKeyIdentifier as string;
    if (pin !== undefined) {
      pinDir = mkdtempSync(join(SAFE_TMP.test(tmpdir()) ? tmpdir() : '/tmp', 'portail-pin-'));
      const pinFile = join(pinDir, 'pin');
      writeFileSync(pinFile, pin, { mode: 0o600 });
      identifier += `;pin-source=file:${pinFile}`;
    }
    ctx = tls.createSecureContext({ ...options, privateKeyIdentifier: identifier });
  } catch (e) {
    const msg = (e as Error).message;
    // Once OpenSSL created the engine, its module is fixed, success or not.
    if (!/DSO support routines/.test(msg)) engineBound(module);
    throw fail(`the OpenSSL pkcs11 engine cannot use private key ${keyName}: ${msg}`);
  } finally {
    if (pinDir !== undefined) rmSync(pinDir, { recursive: true, force: true });
  }
  engineBound(module);
  contexts.set(key, ctx);
  return ctx;
}

/**
 * TLS options that present the certificate of the token key `[escaper] pkcs11-uri` and
 * sign with it through the engine. Errors are ConnectError('internal') with a message
 * that never contains the PIN.
 */
export async function pkcs11TlsOptions(
  escaper: EscaperConfig,
  opts: { cacertFile?: string } = {},
): Promise<tls.SecureContextOptions> {
  if (!escaper.pkcs11Uri) throw fail('[escaper] pkcs11-uri is not set');
  let uri: Pkcs11Uri;
  try {
    uri = parsePkcs11Uri(escaper.pkcs11Uri);
  } catch (e) {
    throw fail(
      `[escaper] pkcs11-uri ${redactPkcs11Uri(escaper.pkcs11Uri)}: ${(e as Error).message}`,
    );
  }
  const module = escaper.pkcs11Module ?? uri.modulePath ?? DEFAULT_PKCS11_MODULE;
  const engine = engineFile();
  const pin = await readPin(escaper, uri);
  // One login attempt per module + URI + PIN at a time, and none after a refusal.
  const key = loginKey(module, escaper.pkcs11Uri, pin);
  const off = disabledLogin(key);
  if (off) throw fail(disabledMessage(off));
  let running = inflight.get(key);
  if (!running) {
    running = openIdentity(escaper, uri, module, engine, pin, key, opts.cacertFile);
    inflight.set(key, running);
    const done = () => inflight.delete(key);
    running.then(done, done);
  }
  return running;
}

/** Logins under way, by login key (concurrent first requests share one). */
const inflight = new Map<string, Promise<tls.SecureContextOptions>>();

async function openIdentity(
  escaper: EscaperConfig,
  uri: Pkcs11Uri,
  module: string,
  engine: string,
  pin: string | undefined,
  loginId: string,
  cacertFile: string | undefined,
): Promise<tls.SecureContextOptions> {
  const shownUri = redactPkcs11Uri(escaper.pkcs11Uri as string);
  // The shared context carries the trust anchors too (tls.connect ignores `ca` next to
  // a `secureContext`): [escaper] cacert-file, else the system bundle, else Node's roots.
  // A caller that falls back to [listener] cacert-file passes it as cacertFile.
  let ca: string | undefined;
  const caFile =
    cacertFile ?? escaper.cacertFile ?? (existsSync(SYSTEM_BUNDLE) ? SYSTEM_BUNDLE : undefined);
  if (caFile) {
    try {
      ca = await readFile(caFile, 'utf8');
    } catch (e) {
      throw fail(`trust anchors ${caFile}: ${(e as Error).message}`);
    }
  }
  let configuredCert: X509Certificate | undefined;
  if (escaper.tlsCertificate) {
    try {
      configuredCert = new X509Certificate(await readFile(escaper.tlsCertificate));
    } catch (e) {
      throw fail(`[escaper] tls-certificate ${escaper.tlsCertificate}: ${(e as Error).message}`);
    }
  }

  if (!existsSync(module)) throw fail(`PKCS#11 module ${module} does not exist (pkcs11-module)`);
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(module);
  } catch (e) {
    throw fail(`cannot load PKCS#11 module ${module}: ${(e as Error).message}`);
  }
  // The engine shares this process's copy of the module: finalizing it under the
  // engine's feet would break its sessions, so only finalize what we initialized.
  let ownInit = true;
  try {
    p11.C_Initialize();
  } catch (e) {
    if (codeOf(e) !== CKR_CRYPTOKI_ALREADY_INITIALIZED)
      throw fail(`PKCS#11 module ${module} failed to initialize: ${(e as Error).message}`);
    ownInit = false;
  }
  let session: Buffer | undefined;
  let found: { options: tls.SecureContextOptions; keyName: string; module: string } | undefined;
  try {
    const token = findToken(p11, uri, module);
    const disable = (why: string) => {
      const d = {
        uri: shownUri,
        token: token.label,
        reason: `${why} for PKCS#11 token "${token.label}" (${shownUri})`,
        since: new Date(),
      };
      disableLogin(loginId, d);
      return fail(disabledMessage(d));
    };
    session = p11.C_OpenSession(token.slot, pkcs11js.CKF_SERIAL_SESSION);
    if (pin !== undefined) {
      // A token that says its PIN is locked or must be changed is not asked at all.
      const flagged = flagRefusal(p11.C_GetTokenInfo(token.slot).flags);
      if (flagged) throw disable(flagged);
      try {
        p11.C_Login(session, pkcs11js.CKU_USER, pin);
      } catch (e) {
        const code = codeOf(e);
        const why = loginRefusal(code);
        if (why) throw disable(why);
        if (code !== CKR_USER_ALREADY_LOGGED_IN)
          throw fail(`login to PKCS#11 token "${token.label}" failed: ${(e as Error).message}`);
      }
      loginSucceeded(loginId);
    }

    const template: pkcs11js.Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    ];
    if (uri.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: uri.object });
    if (uri.id !== undefined) template.push({ type: pkcs11js.CKA_ID, value: uri.id });
    const keys = findObjects(p11, session, template);
    const what = [
      uri.object !== undefined ? `object "${uri.object}"` : '',
      uri.id !== undefined ? `id ${encodeAttr(uri.id)}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    if (keys.length === 0)
      throw fail(
        `no private key${what ? ` with ${what}` : ''} on PKCS#11 token "${token.label}"` +
          (pin === undefined
            ? ' (no PIN given: private keys are only visible after login; add pin-value or pin-source)'
            : ''),
      );
    if (keys.length > 1)
      throw fail(
        `${keys.length} private keys match on PKCS#11 token "${token.label}": add object= or id= to the URI`,
      );
    const key = keys[0];
    const keyId = attr(p11, session, key, pkcs11js.CKA_ID) ?? Buffer.alloc(0);
    const keyLabel = attr(p11, session, key, pkcs11js.CKA_LABEL)?.toString('utf8');
    const keyTypeBuf = attr(p11, session, key, pkcs11js.CKA_KEY_TYPE);
    const keyType = keyTypeBuf
      ? Number(keyTypeBuf.length >= 8 ? keyTypeBuf.readBigUInt64LE(0) : keyTypeBuf.readUInt32LE(0))
      : -1;
    const keyName = keyLabel ? `"${keyLabel}"` : `id ${encodeAttr(keyId)}`;

    let cert: X509Certificate | undefined;
    if (configuredCert) {
      if (!keyMatches(p11, session, key, keyType, configuredCert))
        throw fail(
          `[escaper] tls-certificate ${escaper.tlsCertificate} does not match private key ${keyName} on token "${token.label}"`,
        );
      cert = configuredCert;
    } else {
      // Same id first (how tokens pair them), then every certificate on the token.
      const byId = keyId.length
        ? findObjects(p11, session, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
            { type: pkcs11js.CKA_ID, value: keyId },
          ])
        : [];
      const all = findObjects(p11, session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
      ]);
      for (const handle of [...byId, ...all]) {
        const der = attr(p11, session, handle, pkcs11js.CKA_VALUE);
        if (!der) continue;
        let candidate: X509Certificate;
        try {
          candidate = new X509Certificate(der);
        } catch {
          continue;
        }
        if (keyMatches(p11, session, key, keyType, candidate)) {
          cert = candidate;
          break;
        }
      }
      if (!cert)
        throw fail(
          `no certificate matching private key ${keyName} on PKCS#11 token "${token.label}" (import one with the key's id, or set [escaper] tls-certificate)`,
        );
    }

    // The engine finds the module through PKCS11_MODULE_PATH (read once, when OpenSSL
    // creates it): one PKCS#11 module per portail process, any of its keys.
    let engineId: string;
    try {
      engineId = prepareEngine(engine, module);
    } catch (e) {
      throw fail((e as Error).message);
    }
    const parts = [`token=${encodeAttr(token.label)}`];
    if (token.serial) parts.push(`serial=${encodeAttr(token.serial)}`);
    if (keyLabel) parts.push(`object=${encodeAttr(keyLabel)}`);
    if (keyId.length) parts.push(`id=${encodeAttr(keyId)}`);
    parts.push('type=private');
    const options: tls.SecureContextOptions = {
      cert: cert.toString(),
      privateKeyEngine: engineId,
      privateKeyIdentifier: `pkcs11:${parts.join(';')}`,
    };
    if (ca !== undefined) options.ca = ca;
    found = { options, keyName: `${keyName} on token "${token.label}"`, module };
  } finally {
    if (session !== undefined) {
      try {
        p11.C_CloseSession(session);
      } catch {
        // the module may already be gone
      }
    }
    if (ownInit) {
      try {
        p11.C_Finalize();
      } catch {
        // nothing to do
      }
    }
  }
  // Only now: the engine must not find the module still initialized by us.
  const identity: Pkcs11Identity = {
    ...(found.options as Omit<Pkcs11Identity, 'secureContext'>),
    secureContext: engineContext(found.options, found.keyName, found.module, pin),
  };
  return identity;
}
