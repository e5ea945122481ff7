// Who may log in to a PKCS#11 token, per configuration. A wrong PIN is tried once: a
// YubiKey PIV or a TPM locks its PIN after about three failures, so after a refused
// login (or a locked or expired PIN) the token is not used again until its settings
// change — [escaper] pkcs11-uri, pkcs11-module, or the content of the pin-source file,
// read at load (docs/security.md, "Hardware tokens (PKCS#11)"). A reload of an
// unchanged configuration does not retry; a restart does.
//
// No native code here: the configuration checks and the control socket read it too.
import { createHash } from 'node:crypto';
import type { Pkcs11TokenInfo } from '../../rpc/control-api.js';
import { parsePkcs11Uri, redactPkcs11Uri } from '../config/pkcs11-uri.js';
import type { EscaperConfig } from '../config/types.js';
import { effectiveModule } from './pkcs11-engine.js';

export interface TokenDisabled {
  /** The configured URI, PIN redacted. */
  uri: string;
  /** The token's label, when it was found. */
  token?: string;
  /** Why, in plain words (never the PIN). */
  reason: string;
  since: Date;
}

// PKCS#11 2.40: the C_Login answers that say the PIN itself is refused, and the token
// flags that say it would be.
const CKR_PIN_INCORRECT = 0xa0;
const CKR_PIN_INVALID = 0xa1;
const CKR_PIN_LEN_RANGE = 0xa2;
const CKR_PIN_EXPIRED = 0xa3;
const CKR_PIN_LOCKED = 0xa4;
const CKF_USER_PIN_LOCKED = 0x40000;
const CKF_USER_PIN_TO_BE_CHANGED = 0x80000;

/** Why a C_Login error disables the token (a retry would burn a PIN try), or undefined. */
export function loginRefusal(code: number | undefined): string | undefined {
  if (code === CKR_PIN_INCORRECT || code === CKR_PIN_INVALID || code === CKR_PIN_LEN_RANGE)
    return 'wrong PIN';
  if (code === CKR_PIN_LOCKED) return 'the PIN is locked';
  if (code === CKR_PIN_EXPIRED) return 'the PIN has expired';
  return undefined;
}

/** Why a token's flags forbid trying its PIN at all, or undefined. */
export function flagRefusal(flags: number): string | undefined {
  if (flags & CKF_USER_PIN_LOCKED) return 'the PIN is locked';
  if (flags & CKF_USER_PIN_TO_BE_CHANGED) return 'the PIN has expired';
  return undefined;
}

/** PINs read from pin-source when the configuration was loaded, by loaded [escaper]. */
const pins = new WeakMap<EscaperConfig, { pin: string }>();
const disabled = new Map<string, TokenDisabled>();
const ready = new Set<string>();
const listeners = new Set<(d: TokenDisabled) => void>();

/** The login identity: module, URI and PIN (hashed: the PIN is not kept in a key). */
export function loginKey(module: string, uri: string, pin: string | undefined): string {
  return createHash('sha256')
    .update(JSON.stringify([module, uri, pin ?? null]))
    .digest('hex');
}

/** The pin-source content read by the configuration checks for this [escaper]. */
export function rememberPin(escaper: EscaperConfig, pin: string): void {
  pins.set(escaper, { pin });
}

export function rememberedPin(escaper: EscaperConfig): { pin: string } | undefined {
  return pins.get(escaper);
}

const UNTIL =
  'not retried until [escaper] pkcs11-uri, pkcs11-module or the pin-source file changes (then reload)';

/** What a refused request, a reload warning and the daemon's log say. */
export function disabledMessage(d: TokenDisabled): string {
  return `${d.reason}: token disabled since ${d.since.toISOString()}, ${UNTIL}`;
}

export function disabledLogin(key: string): TokenDisabled | undefined {
  return disabled.get(key);
}

/** Records a refused login; listeners hear of it once per key. */
export function disableLogin(key: string, d: TokenDisabled): void {
  if (disabled.has(key)) return;
  disabled.set(key, d);
  ready.delete(key);
  for (const l of listeners) {
    try {
      l(d);
    } catch {
      // a listener's failure is not the token's
    }
  }
}

export function loginSucceeded(key: string): void {
  ready.add(key);
}

/** Called once each time a token gets disabled (the daemon logs and audits it). */
export function onTokenDisabled(listener: (d: TokenDisabled) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The PIN this [escaper] logs in with, when known without reading a file. */
function knownPin(escaper: EscaperConfig): { pin: string | undefined } | undefined {
  if (escaper.pkcs11Uri === undefined) return undefined;
  const remembered = pins.get(escaper);
  if (remembered) return remembered;
  try {
    const uri = parsePkcs11Uri(escaper.pkcs11Uri);
    return uri.pinSource === undefined ? { pin: uri.pinValue } : undefined;
  } catch {
    return undefined;
  }
}

/** The login key of a loaded [escaper], when its PIN is known. */
export function escaperLoginKey(escaper: EscaperConfig): string | undefined {
  const known = knownPin(escaper);
  const module = effectiveModule(escaper);
  if (!known || module === undefined || escaper.pkcs11Uri === undefined) return undefined;
  return loginKey(module, escaper.pkcs11Uri, known.pin);
}

/** What `portailctl status` shows for the token of this [escaper]; undefined without one. */
export function tokenState(escaper: EscaperConfig): Pkcs11TokenInfo | undefined {
  if (escaper.pkcs11Uri === undefined) return undefined;
  const uri = redactPkcs11Uri(escaper.pkcs11Uri);
  const key = escaperLoginKey(escaper);
  const off = key === undefined ? undefined : disabled.get(key);
  if (off) return { state: 'disabled', uri, reason: `${off.reason}: ${UNTIL}`, since: off.since };
  return { state: key !== undefined && ready.has(key) ? 'ready' : 'unused', uri };
}
