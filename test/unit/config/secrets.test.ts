// Configuration diagnostics never quote a secret (a PKCS#11 PIN, a URL's password, a
// password-like key's value) and never print raw control characters; the caret stays
// under the same characters (docs/security.md, "Secrets in diagnostics").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  displayLine,
  formatDiagnostic as formatAclDiagnostic,
  makeDiagnostic as makeAclDiagnostic,
  maskSecrets,
} from '../../../acl-lang/diagnostics.js';
import { formatDiagnostics } from '../../../proxy/config/errors.js';
import { loadErrors } from './helpers.js';

const SECRET = 'S3cr3t-PIN';

/** C0 (newline aside) and C1 control characters in `s`. */
function controls(s: string): string[] {
  return [...s].filter((c) => {
    const cp = c.codePointAt(0) as number;
    return c !== '\n' && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f));
  });
}

/** The printed diagnostics; asserts no secret anywhere in them or in the objects. */
async function printed(text: string): Promise<string> {
  const ds = await loadErrors(text);
  assert.ok(!JSON.stringify(ds).includes(SECRET), `secret in ${JSON.stringify(ds)}`);
  const out = formatDiagnostics(ds);
  assert.ok(!out.includes(SECRET), out);
  return out;
}

/** The column (0-based, in the printed line) of the first caret, and the caret count. */
function caret(out: string, lineIndex = 2): { at: number; width: number; text: string } {
  const lines = out.split('\n');
  const quoted = lines[lineIndex - 1];
  const carets = lines[lineIndex];
  const at = carets.indexOf('^');
  return { at, width: carets.lastIndexOf('^') - at + 1, text: quoted.slice(at) };
}

test('a syntax error on the pkcs11-uri line (missing quote) does not quote the PIN', async () => {
  const out = await printed(
    `[escaper]\npkcs11-uri = "pkcs11:token=dev;object=k?pin-value=${SECRET}\n`,
  );
  assert.match(out, /:2:\d+: error: TOML syntax error/);
  assert.match(out, /pin-value=\*\*\*$/m);
  // The parser points past the end of the line: so does the caret.
  const c = caret(out);
  assert.equal(c.text, '', out);
  assert.equal(c.at, out.split('\n')[1].length, out);
});

test('a typo in the key name (pkcs11-ur) keeps the caret on the key, the PIN hidden', async () => {
  const out = await printed(`[escaper]\npkcs11-ur = "pkcs11:token=dev?pin-value=${SECRET}"\n`);
  assert.match(out, /escaper\.pkcs11-ur: unknown key \(did you mean "pkcs11-uri"\?\)/);
  const c = caret(out);
  assert.equal(c.width, 'pkcs11-ur'.length);
  assert.ok(c.text.startsWith('pkcs11-ur ='), out);
});

test('pin-value in the path form, in a query with other attributes, and a wrong type', async () => {
  await printed(`[escaper]\npkcs11-uri = "pkcs11:token=dev;pin-value=${SECRET};object=k\n`);
  await printed(
    `[escaper]\npkcs11-uri = "pkcs11:token=dev?module-path=/x.so&pin-value=${SECRET}" x\n`,
  );
  // An error caret after the secret moves with it.
  const out = await printed(
    `[escaper]\npkcs11-uri = "pkcs11:token=dev?pin-value=${SECRET}" junk\n`,
  );
  const c = caret(out);
  assert.ok(c.text.startsWith('junk'), out);
});

test("a URL's password and a password-like key are hidden, wherever they are", async () => {
  let out = await printed(`[backends.x]\ntarget-address = "user:${SECRET}@host:1080"\n`);
  assert.match(out, /"user:\*\*\*@host:1080"/);
  out = await printed(`[backends.x]\ntarget-address = "127.0.0.1:1080"\npassword = "${SECRET}"\n`);
  assert.match(out, /unknown key/);
  assert.match(out, /password = "\*\*\*"/);
  await printed(`[escaper]\napi-token = '${SECRET}' # mine\n`);
  await printed(`[metrics]\nlisten = "http://admin:${SECRET}@127.0.0.1:9100/"\n`);
});

test('control characters in a quoted line are escaped and the caret is still aligned', async () => {
  // TOML refuses raw control characters in strings: the error quotes the line.
  const out = formatDiagnostics(await loadErrors('default-backend = "a\x1b[2J\x07b\x00"\n'));
  assert.deepEqual(controls(out), [], JSON.stringify(out));
  assert.match(out, /default-backend = "a\\x1b\[2J/);
  const c = caret(out, 2);
  assert.ok(c.text.startsWith('\\x1b'), JSON.stringify(out));
  assert.equal(c.width, 4, 'the caret covers the escaped character');
});

test('displayLine maps the caret through masks and escapes', () => {
  const line = `a\x1bb pin-value=${SECRET};x c`;
  const masked = maskSecrets(line);
  assert.equal(masked.length, line.length);
  assert.ok(!masked.includes(SECRET));
  const col = line.indexOf(';x') + 2; // the `x` after the secret
  for (const l of [line, masked]) {
    const d = displayLine(l, col, 1);
    assert.equal(d.text, 'a\\x1bb pin-value=***;x c');
    assert.equal(d.text[d.column - 1], 'x');
    const esc = displayLine(l, 2, 1);
    assert.equal(d.text.slice(esc.column - 1, esc.column - 1 + esc.length), '\\x1b');
  }
  // C1, bidi override, line separator.
  assert.equal(displayLine('\u009b1m\u202eab\u2028', 1, 1).text, '\\x9b1m\\u{202e}ab\\u{2028}');
});

test('ACL diagnostics share the masking and escaping (message and line)', () => {
  const src = `policy p {\n  when user.name == "x\x1b]0;title\x07" pin-value=${SECRET} oops\n}\n`;
  const col = src.split('\n')[1].indexOf('oops') + 1;
  const d = makeAclDiagnostic(
    'error',
    'f.acl',
    src,
    { line: 2, column: col, length: 4 },
    `unexpected \`\x1b\` near pin-value=${SECRET}`,
  );
  assert.ok(!JSON.stringify(d).includes(SECRET));
  const out = formatAclDiagnostic(d);
  assert.ok(!out.includes(SECRET));
  assert.deepEqual(controls(out), [], JSON.stringify(out));
  const c = caret(out);
  assert.equal(c.text.slice(0, 4), 'oops');
  assert.equal(c.width, 4);
});
