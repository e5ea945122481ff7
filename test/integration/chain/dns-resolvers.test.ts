// `[dns] resolvers`: portail resolves names it is asked for through the configured
// server only (a dnsmasq on loopback that knows `internal.test`). A SOCKS5 client that
// resolves locally (`curl --socks5`) cannot reach those names; one that hands the name
// to the proxy (`--socks5-hostname`, HTTP CONNECT, plain HTTP) can.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { curl, requireTool } from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { origin, startDnsmasq } from './helpers.js';

test('[dns] resolvers: names only the configured dnsmasq knows work with proxy-side resolution', async (t) => {
  if (!requireTool(t, 'dnsmasq') || !requireTool(t, 'curl')) return;
  const dns = await startDnsmasq(t);
  const o = await origin(t);
  const p = await startPortail(t, { config: `[dns]\nresolvers = ["127.0.0.1:${dns.port}"]\n` });
  const proxy = `127.0.0.1:${p.port}`;
  const url = `http://app.internal.test:${o.port}/`;

  // Unhappy paths first. curl --socks5 resolves on the client, where the name is unknown.
  const local = await curl(['--socks5', proxy, url]);
  assert.equal(local.code, 97, `--socks5 must fail on the client side: ${local.stderr}`);
  assert.match(local.stderr, /resolve|SOCKS/i);
  assert.equal(o.seen.length, 0, 'nothing reached the origin');
  // A name outside internal.test: dnsmasq has no upstream (--no-resolv), so it fails in portail.
  const unknown = await curl([
    '--socks5-hostname',
    proxy,
    `http://nope.example.invalid:${o.port}/`,
  ]);
  assert.notEqual(unknown.code, 0, 'an unknown name must not connect');

  const cases: [string, string[]][] = [
    ['socks5-hostname', ['--socks5-hostname', proxy, url]],
    ['http CONNECT', ['-x', `http://${proxy}`, '-p', url]],
    ['http plain', ['-x', `http://${proxy}`, url]],
  ];
  for (const [name, args] of cases) {
    const r = await curl(args);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.equal(r.stdout, 'from 127.0.0.1', name);
  }
  assert.equal(o.seen.length, 3);

  // The resolver really is the one in use: without dnsmasq the name no longer resolves.
  await dns.proc.stop();
  const gone = await curl(['--socks5-hostname', proxy, url], { timeoutMs: 15_000 });
  assert.notEqual(gone.code, 0, 'with the resolver stopped the name must not resolve');
  assert.equal(o.seen.length, 3);
});
