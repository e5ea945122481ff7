// Shared by the configuration tests: write a config into a temporary folder, load it,
// and get at the diagnostics of a failed load.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Diagnostic } from '../../../acl-lang/types.js';
import { ConfigError } from '../../../proxy/config/errors.js';
import { loadConfig } from '../../../proxy/config/load.js';
import type { Config } from '../../../proxy/config/types.js';

/** The checkout (or package) root: this file is dist/test/unit/config/helpers.js. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

export function tempDir(prefix = 'portail-config-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let counter = 0;

/** Writes `text` as a config file in a fresh folder and loads it. */
export async function load(text: string, files: Record<string, string> = {}): Promise<Config> {
  const { dir, cleanup } = tempDir();
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const path = join(dir, `portail-${counter++}.toml`);
    writeFileSync(path, text);
    return await loadConfig(path);
  } finally {
    cleanup();
  }
}

/** Loads `text`, asserting that it fails, and returns the diagnostics. */
export async function loadErrors(text: string): Promise<readonly Diagnostic[]> {
  try {
    await load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    assert.ok(err.diagnostics.length > 0);
    return err.diagnostics;
  }
  assert.fail(`expected the configuration to be rejected:\n${text}`);
}

/** The error diagnostics' messages, in file order. */
export async function errorMessages(text: string): Promise<string[]> {
  return (await loadErrors(text)).filter((d) => d.severity === 'error').map((d) => d.message);
}

/** Asserts that exactly one error is reported and that its message matches `re`. */
export async function assertOneError(text: string, re: RegExp): Promise<Diagnostic> {
  const ds = (await loadErrors(text)).filter((d) => d.severity === 'error');
  assert.equal(ds.length, 1, `expected one error, got:\n${ds.map((d) => d.message).join('\n')}`);
  assert.match(ds[0].message, re);
  return ds[0];
}
