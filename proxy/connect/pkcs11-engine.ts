// How OpenSSL's pkcs11 engine (libp11) is loaded into this process, kept apart from
// pkcs11.ts (which needs the native pkcs11js) so that reload validation
// (state/engine-restart.ts) can ask "would this identity need a restart?" cheaply.
//
// The engine is asked for by its id, `pkcs11`, with OPENSSL_ENGINES pointing at the
// folder of the engine file. Asking by absolute path (what Node documents) makes
// OpenSSL first try ENGINE_by_id(path), which loads the file with the path as id; libp11
// then prints "bad engine id" on stderr before Node retries through the dynamic engine,
// and every such load is a new engine instance (a second one fails "init failed"). By
// id, OpenSSL loads the engine once, keeps it in its list, and every later context
// reuses that instance: several keys — other objects or tokens of the same module —
// can be used by one process, so a reload may change `pkcs11-uri`.
//
// What the instance cannot change is its module: libp11 reads PKCS11_MODULE_PATH once,
// when the engine is created. A different module needs a new process.
import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parsePkcs11Uri } from '../config/pkcs11-uri.js';
import type { EscaperConfig } from '../config/types.js';

export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** The engine's id (libp11 refuses to bind under any other). */
export const ENGINE_ID = 'pkcs11';

/** Where distributions install libp11's engine (Debian multiarch first). */
export const ENGINE_CANDIDATES = [
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/engines-3/pkcs11.so`,
  '/usr/lib64/engines-3/pkcs11.so',
  '/usr/lib/engines-3/pkcs11.so',
];

/** The module the engine of this process was created with; undefined until first use. */
let boundModule: string | undefined;

/** The engine file, or undefined when libengine-pkcs11-openssl is not installed. */
export function findEngineFile(): string | undefined {
  return ENGINE_CANDIDATES.find((p) => existsSync(p));
}

/** The PKCS#11 module an [escaper] section names (key, then URI, then the default). */
export function effectiveModule(escaper: EscaperConfig): string | undefined {
  if (escaper.pkcs11Uri === undefined) return undefined;
  if (escaper.pkcs11Module !== undefined) return escaper.pkcs11Module;
  try {
    return parsePkcs11Uri(escaper.pkcs11Uri).modulePath ?? DEFAULT_PKCS11_MODULE;
  } catch {
    // A malformed URI is reported where it is used.
    return DEFAULT_PKCS11_MODULE;
  }
}

export function engineModule(): string | undefined {
  return boundModule;
}

/**
 * Why this process cannot use `escaper`'s PKCS#11 key without a restart, or undefined.
 * Only a different module is a reason: other keys of the same module work.
 */
export function engineRestartReason(escaper: EscaperConfig): string | undefined {
  const want = effectiveModule(escaper);
  if (want === undefined || boundModule === undefined || want === boundModule) return undefined;
  return `the OpenSSL pkcs11 engine of this process is bound to module ${boundModule} (it reads its module once); using ${want} needs a restart of portail`;
}

/**
 * Prepares the environment for the engine's first load with `module` and returns the
 * `privateKeyEngine` value for tls.createSecureContext. Throws (a message) when the
 * engine is bound to another module.
 */
export function prepareEngine(engineFile: string, module: string): string {
  if (boundModule !== undefined && boundModule !== module)
    throw new Error(
      `the OpenSSL pkcs11 engine of this process is bound to module ${boundModule} (it reads its module once): restart portail to use ${module}`,
    );
  if (boundModule === undefined) {
    // Read by libp11 when OpenSSL creates the engine, i.e. at the first context.
    process.env.PKCS11_MODULE_PATH = module;
    // OpenSSL looks for `<id>.so` in this folder (ENGINE_by_id → dynamic DIR_LOAD).
    process.env.OPENSSL_ENGINES = dirname(engineFile);
  }
  if (basename(engineFile) !== `${ENGINE_ID}.so`)
    throw new Error(`unexpected OpenSSL engine file name ${engineFile} (want ${ENGINE_ID}.so)`);
  return ENGINE_ID;
}

/** A context was made: the engine now exists and keeps this module for good. */
export function engineBound(module: string): void {
  boundModule ??= module;
}
