// A reload cannot move the running OpenSSL pkcs11 engine to another module: libp11 reads
// its module once, when the engine is created (connect/pkcs11-engine.ts). Such a reload
// is refused rather than go on signing with the old module's key under the new
// configuration (docs/backends.md, "PKCS#11 client keys"). Only a reload can meet it:
// at start and in `portail check` no engine is bound yet.
import { type Config, keyDiagnostic } from '../config/index.js';
import type { Diagnostic } from '../config/types.js';
import { engineRestartReason } from '../connect/pkcs11-engine.js';

/** The error that refuses a reload to `next`, placed on its `[escaper]` key; undefined when none. */
export function engineRestartDiagnostic(next: Config): Diagnostic | undefined {
  const restart = engineRestartReason(next.escaper);
  if (restart === undefined) return undefined;
  const at = next.escaper.pkcs11Module !== undefined ? 'pkcs11-module' : 'pkcs11-uri';
  return keyDiagnostic(next, ['escaper', at], `cannot change without a restart: ${restart}`);
}
