// [escaper] pkcs11-uri in the configuration checks: a malformed URI is an error at load,
// the pin-source file is read once per load (an unreadable one is an error) and warned
// about when other users can read it (like a private key), and a token disabled by a
// refused login is reported on the next reload. No token needed: nothing logs in here.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkConfigFiles } from '../../../proxy/config/check.js';
import { formatDiagnostics } from '../../../proxy/config/errors.js';
import { loadConfig } from '../../../proxy/config/load.js';
import {
  disableLogin,
  escaperLoginKey,
  flagRefusal,
  loginRefusal,
  rememberedPin,
  tokenState,
} from '../../../proxy/connect/pkcs11-login.js';
import { tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('portail-pin-source-');
after(cleanup);

async function check(uri: string) {
  const path = join(dir, 'portail.toml');
  writeFileSync(path, `[escaper]\npkcs11-uri = "${uri}"\n`);
  const config = await loadConfig(path);
  const ds = await checkConfigFiles(config);
  return { config, ds, text: formatDiagnostics(ds) };
}

test('a pin-source readable by group or others is a warning; 0600 is quiet', async () => {
  const pin = join(dir, 'pin');
  writeFileSync(pin, '123456\n');
  for (const [mode, warned] of [
    [0o644, true],
    [0o640, true],
    [0o604, true],
    [0o600, false],
    [0o400, false],
  ] as const) {
    chmodSync(pin, mode);
    const { ds, text } = await check(`pkcs11:token=dev?pin-source=file:${pin}`);
    assert.equal(ds.filter((d) => d.severity === 'error').length, 0, text);
    const w = ds.filter((d) => /holds a PIN and is readable by other users/.test(d.message));
    assert.equal(w.length, warned ? 1 : 0, `mode ${mode.toString(8)}: ${text}`);
    if (warned) {
      assert.equal(w[0].severity, 'warning');
      assert.equal(w[0].line, 2);
    }
    assert.ok(!text.includes('123456'));
  }
});

test('the pin-source content is read at load, for that loaded configuration only', async () => {
  const pin = join(dir, 'pin2');
  writeFileSync(pin, '4321\n', { mode: 0o600 });
  const { config } = await check(`pkcs11:token=dev?pin-source=file:${pin}`);
  assert.deepEqual(rememberedPin(config.escaper), { pin: '4321' });
  writeFileSync(pin, '9999\n');
  // The file changed, the loaded configuration did not: same PIN until a reload.
  assert.deepEqual(rememberedPin(config.escaper), { pin: '4321' });
  const next = await check(`pkcs11:token=dev?pin-source=file:${pin}`);
  assert.deepEqual(rememberedPin(next.config.escaper), { pin: '9999' });
  assert.notEqual(escaperLoginKey(config.escaper), escaperLoginKey(next.config.escaper));
});

test('unreadable or relative pin-source and a malformed URI are errors at load', async () => {
  let r = await check(`pkcs11:token=dev?pin-source=file:${join(dir, 'nope')}`);
  assert.match(r.text, /escaper\.pkcs11-uri: cannot read ".*nope": no such file/);
  r = await check('pkcs11:token=dev?pin-source=file:pin');
  assert.match(r.text, /pin-source must be an absolute file path/);
  r = await check('pkcs11:token=dev;objet=k?pin-value=77889900');
  assert.match(r.text, /unknown attribute "objet" in the path/);
  assert.ok(!r.text.includes('77889900'));
});

test('a disabled token is reported by the next check of the same settings, not of others', async () => {
  const { config } = await check('pkcs11:token=dis;object=k?pin-value=1111');
  const key = escaperLoginKey(config.escaper) as string;
  assert.equal(tokenState(config.escaper)?.state, 'unused');
  disableLogin(key, {
    uri: 'pkcs11:token=dis;object=k?pin-value=***',
    token: 'dis',
    reason: 'wrong PIN for PKCS#11 token "dis"',
    since: new Date(0),
  });
  const same = await check('pkcs11:token=dis;object=k?pin-value=1111');
  assert.match(same.text, /warning: escaper\.pkcs11-uri: wrong PIN .*token disabled since 1970/);
  assert.equal(tokenState(same.config.escaper)?.state, 'disabled');
  const changed = await check('pkcs11:token=dis;object=k?pin-value=2222');
  assert.equal(changed.ds.length, 0, changed.text);
  assert.equal(tokenState(changed.config.escaper)?.state, 'unused');
});

test('which login answers and token flags disable the token', () => {
  assert.equal(loginRefusal(0xa0), 'wrong PIN'); // CKR_PIN_INCORRECT
  assert.equal(loginRefusal(0xa1), 'wrong PIN'); // CKR_PIN_INVALID
  assert.equal(loginRefusal(0xa2), 'wrong PIN'); // CKR_PIN_LEN_RANGE
  assert.equal(loginRefusal(0xa3), 'the PIN has expired'); // CKR_PIN_EXPIRED
  assert.equal(loginRefusal(0xa4), 'the PIN is locked'); // CKR_PIN_LOCKED
  assert.equal(loginRefusal(0x30), undefined); // CKR_DEVICE_ERROR: transient, retried
  assert.equal(loginRefusal(0xe0), undefined); // CKR_TOKEN_NOT_PRESENT
  assert.equal(flagRefusal(0x40000), 'the PIN is locked'); // CKF_USER_PIN_LOCKED
  assert.equal(flagRefusal(0x80000), 'the PIN has expired'); // CKF_USER_PIN_TO_BE_CHANGED
  assert.equal(flagRefusal(0x10000 | 0x20000 | 0x400), undefined); // count low, final try
});
