// GET /proxy.pac on the proxy port, with real curl against the real daemon: the script,
// its content type, the address the client reached, a reload applying [pac] at once, and
// every other origin-form request still refused (docs/usage.md "Browsers and desktops").
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { curl, requireTool } from '../../harness/index.js';
import { startPortail } from './portail.js';

test('GET /proxy.pac answers the PAC for the address reached; a reload applies [pac]', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const p = await startPortail(t, {
    config: 'watch-acl = false\n[pac]\ndirect = ["*.local", "10.0.0.0/8"]\n',
    bind: ['127.0.0.1:0', '[::1]:0'],
  });
  const v4 = p.addresses[0] as string;
  const v6 = p.addresses[1] as string;
  const r = await curl(['-i', `http://${v4}/proxy.pac`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^HTTP\/1\.1 200 /);
  assert.match(r.stdout, /\r\ncontent-type: application\/x-ns-proxy-autoconfig\r\n/i);
  assert.match(r.stdout, /function FindProxyForURL\(url, host\)/);
  assert.match(r.stdout, /"\*\.local"/);
  assert.match(r.stdout, /\[\[10,0,0,0\],8\]/);
  assert.ok(r.stdout.includes(`"SOCKS5 ${v4}; PROXY ${v4}"`), r.stdout);
  // Through the IPv6 listener: that address, in brackets.
  const r6 = await curl(['-g', `http://${v6}/proxy.pac`]);
  assert.ok(r6.stdout.includes(`"SOCKS5 ${v6}; PROXY ${v6}"`), r6.stdout);
  // HEAD: the headers alone; a query string is ignored.
  const head = await curl(['-I', `http://${v4}/proxy.pac?v=2`]);
  assert.match(head.stdout, /^HTTP\/1\.1 200 /);
  // The same connection goes on (keep-alive): two requests, one connection.
  const two = await curl(['-v', `http://${v4}/proxy.pac`, `http://${v4}/proxy.pac`]);
  assert.match(two.stderr, /Re-using existing connection/i);

  // A reload changes the script at once.
  const text = readFileSync(p.configPath, 'utf8');
  writeFileSync(p.configPath, text.replace('"10.0.0.0/8"', '"192.168.0.0/16"'));
  p.signal('SIGHUP');
  await p.waitRecord((x) => x.event === 'reload' && x.result === 'ok');
  const after = await curl([`http://${v4}/proxy.pac`]);
  assert.match(after.stdout, /\[\[192,168,0,0\],16\]/);
  assert.doesNotMatch(after.stdout, /\[10,0,0,0\]/);
});

test('other methods and other origin-form paths are still refused', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const p = await startPortail(t);
  const at = p.addresses[0] as string;
  const post = await curl(['-i', '-X', 'POST', '--data', 'x', `http://${at}/proxy.pac`]);
  assert.match(post.stdout, /^HTTP\/1\.1 405 /);
  assert.match(post.stdout, /\r\nallow: GET, HEAD\r\n/i);
  for (const path of ['/', '/proxy.pac.bak', '/x/proxy.pac', '/wpad.dat']) {
    const r = await curl(['-i', `http://${at}${path}`]);
    assert.match(r.stdout, /^HTTP\/1\.1 400 /, path);
    assert.match(r.stdout, /this is a proxy/, path);
  }
  // Without [pac]: everything through the proxy.
  const r = await curl([`http://${at}/proxy.pac`]);
  assert.match(r.stdout, /var globs = \[\];\n {2}var nets = \[\];/);
});
