// Rules that tie several keys together: listener and escaper TLS material, identity-aware
// backends, default-backend, the reserved name `direct`, SSH backends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertOneError, errorMessages, load, loadErrors } from './helpers.js';

const ESCAPER = '[escaper]\ntls-privkey = "c.key"\ntls-certificate = "c.pem"\n';

test('[listener] tls-privkey and tls-chain go together', async () => {
  let d = await assertOneError(
    '[listener]\ntls-privkey = "k.pem"\n',
    /^listener\.tls-privkey: needs tls-chain too/,
  );
  assert.equal(d.line, 2);
  d = await assertOneError(
    '[listener]\ntls-chain = "c.pem"\n',
    /^listener\.tls-chain: needs tls-privkey too/,
  );
  assert.equal(d.line, 2);
  await load('[listener]\ntls-chain = "c.pem"\ntls-privkey = "k.pem"\n');
});

test('[listener] require-tls needs a TLS listener; cacert-file alone is trust anchors (upstream)', async () => {
  // Upstream's node: [listener] cacert-file without a TLS listener names the trust
  // anchors of identity-aware backends (docs/upstream.md).
  const alone = await load('[listener]\ncacert-file = "ca.pem"\n');
  assert.match(alone.listener.cacertFile ?? '', /ca\.pem$/);
  assert.deepEqual(alone.warnings, []);
  // Beside [escaper] cacert-file it would do nothing: a warning, not an error.
  const both = await load('[listener]\ncacert-file = "ca.pem"\n[escaper]\ncacert-file = "e.pem"\n');
  assert.match(both.warnings[0]?.message ?? '', /^listener\.cacert-file: has no effect/);
  await assertOneError(
    '[listener]\nrequire-tls = true\n',
    /^listener\.require-tls: needs a TLS listener/,
  );
  const c = await load(
    '[listener]\ncacert-file = "ca.pem"\ntls-chain = "c.pem"\ntls-privkey = "k.pem"\nrequire-tls = true\n',
  );
  assert.equal(c.listener.requireTls, true);
  assert.deepEqual(c.warnings, []);
  await load('[listener]\nrequire-tls = false\n');
});

test('[escaper] identity: a key file with its certificate, or a PKCS#11 URI, not both', async () => {
  await assertOneError(
    '[escaper]\ntls-privkey = "k"\n',
    /^escaper\.tls-privkey: needs tls-certificate too/,
  );
  await assertOneError(
    '[escaper]\ntls-certificate = "c"\n',
    /^escaper\.tls-certificate: needs tls-privkey or pkcs11-uri/,
  );
  await assertOneError(
    '[escaper]\ntls-privkey = "k"\ntls-certificate = "c"\npkcs11-uri = "pkcs11:object=k"\n',
    /^escaper\.pkcs11-uri: set either tls-privkey or pkcs11-uri, not both/,
  );
  await assertOneError(
    '[escaper]\npkcs11-module = "/lib/p11.so"\n',
    /^escaper\.pkcs11-module: is only used with pkcs11-uri/,
  );
  await assertOneError(
    '[escaper]\npkcs11-uri = "token=dev"\n',
    /^escaper\.pkcs11-uri: must start with "pkcs11:"/,
  );
  await load(ESCAPER);
  await load(
    '[escaper]\npkcs11-uri = "pkcs11:token=dev;object=k"\npkcs11-module = "/lib/p11.so"\n',
  );
  // The certificate may come from a file while the key stays on the token.
  await load('[escaper]\npkcs11-uri = "pkcs11:token=dev;object=k"\ntls-certificate = "c.pem"\n');
  // cacert-file alone is only trust anchors: fine without an identity.
  await load('[escaper]\ncacert-file = "ca.pem"\n');
});

test('identity-aware backends: TLS with or without a client certificate (upstream)', async () => {
  const backend = '[backends.gw]\ntarget-address = "gw.example.com:443"\nidentity-aware = true\n';
  // Upstream's node config: trust anchors only, no client identity.
  const c = await load(`${backend}[listener]\ncacert-file = "ca.pem"\n`);
  assert.equal(c.backends.gw.identityAware, true);
  await load(backend);
  await load(`${backend}[escaper]\ncacert-file = "ca.pem"\n`);
  await load(backend + ESCAPER);
  await load(`${backend}[escaper]\npkcs11-uri = "pkcs11:object=k"\n`);
});

test('default-backend must name a configured backend', async () => {
  let d = await assertOneError(
    'default-backend = "par01"\n',
    /^default-backend: "par01" is not a configured backend \(no backends are configured\)$/,
  );
  assert.equal(d.line, 1);
  d = await assertOneError(
    'default-backend = "par1"\n[backends.par01]\ndynamic = true\n[backends.par02]\ndynamic = true\n',
    /^default-backend: "par1" is not a configured backend \(configured: "par01", "par02"\)$/,
  );
  await assertOneError(
    'default-backend = "direct"\n',
    /"direct" is not a backend: leave default-backend out/,
  );
  const c = await load(
    'default-backend = "par01"\n[backends.par01]\ntarget-address = "127.0.0.1:1"\n',
  );
  assert.equal(c.defaultBackend, 'par01');
});

test('the backend name "direct" is reserved', async () => {
  const d = await assertOneError(
    '[backends.direct]\ntarget-address = "127.0.0.1:1"\n',
    /^backends\.direct: the backend name "direct" is reserved/,
  );
  assert.deepEqual([d.line, d.column], [1, 11]);
});

test('backend names are restricted to a safe alphabet', async () => {
  await assertOneError(
    '[backends."par 01"]\ndynamic = true\n',
    /^backends\."par 01": invalid backend name/,
  );
  await assertOneError('[backends."-x"]\ndynamic = true\n', /invalid backend name/);
  await assertOneError('[backends."a\\u0007"]\ndynamic = true\n', /invalid backend name/);
  const c = await load('[backends."par-01_a.b"]\ndynamic = true\n');
  assert.ok(Object.hasOwn(c.backends, 'par-01_a.b'));
});

test('a backend needs target-address unless it is dynamic', async () => {
  await assertOneError(
    '[backends.a]\ntype = "http"\n',
    /^backends\.a: target-address is required \(or dynamic = true/,
  );
  await assertOneError('[backends.a]\ndynamic = false\n', /target-address is required/);
  const c = await load(
    '[backends.a]\ndynamic = true\n[backends.b]\ndynamic = true\ntarget-address = "h.example:1"\n',
  );
  assert.equal(c.backends.a?.targetAddress, undefined);
  assert.deepEqual(c.backends.b?.targetAddress, { host: 'h.example', port: 1 });
});

test('ssh backends need user, known-hosts and identity-file or agent', async () => {
  const ms = await errorMessages(
    '[backends.b]\ntype = "ssh"\ntarget-address = "bastion.example.com:22"\n',
  );
  assert.deepEqual(ms, [
    'backends.b: type = "ssh" requires user',
    'backends.b: type = "ssh" requires known-hosts (the server host key must be verified)',
    'backends.b: type = "ssh" requires identity-file or agent = true',
  ]);
  const base =
    '[backends.b]\ntype = "ssh"\ntarget-address = "bastion.example.com:22"\nuser = "alice"\nknown-hosts = "kh"\n';
  await assertOneError(`${base}agent = false\n`, /requires identity-file or agent = true/);
  const c = await load(`${base}agent = true\n`);
  assert.equal(c.backends.b?.agent, true);
  assert.equal(c.backends.b?.user, 'alice');
  await load(`${base}identity-file = "id"\n`);
});

test('ssh-only keys are refused on other backends', async () => {
  const d = await assertOneError(
    '[backends.a]\ntype = "socks5"\ntarget-address = "127.0.0.1:1080"\nuser = "alice"\n',
    /^backends\.a\.user: is only valid with type = "ssh"$/,
  );
  assert.equal(d.line, 4);
  await assertOneError(
    '[backends.a]\ntarget-address = "127.0.0.1:1080"\nknown-hosts = "kh"\n',
    /known-hosts: is only valid with type = "ssh"/,
  );
});

test('a bad backend type', async () => {
  await assertOneError(
    '[backends.a]\ntype = "socks4"\ntarget-address = "127.0.0.1:1080"\n',
    /^backends\.a\.type: expected one of "socks5", "http", "ssh", got a string \("socks4"\)$/,
  );
});

test('tls-server-name without identity-aware is accepted with a warning (as upstream)', async () => {
  const c = await load(
    '[backends.a]\ntarget-address = "127.0.0.1:1080"\ntls-server-name = "gw.example.com"\n',
  );
  assert.equal(c.warnings.length, 1);
  assert.equal(c.warnings[0].severity, 'warning');
  assert.match(
    c.warnings[0].message,
    /^backends\.a\.tls-server-name: has no effect without identity-aware = true$/,
  );
  assert.equal(c.warnings[0].line, 3);
  await assertOneError(
    '[backends.a]\ntarget-address = "127.0.0.1:1080"\ntls-server-name = "bad name"\n',
    /is not a valid host name/,
  );
});

test('warnings ride along with errors in a failed load', async () => {
  const ds = await loadErrors('[backends.a]\ntls-server-name = "gw.example.com"\n');
  assert.deepEqual(
    ds.map((d) => d.severity),
    ['error', 'warning'],
  );
});
