// Chaining through real upstream proxies on loopback: microsocks and dante (SOCKS5),
// tinyproxy and squid (HTTP CONNECT). Each upstream sends from its own 127.0.0.x
// address, so the origin proves which way every connection really went.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  requireTool,
  startDante,
  startMicrosocks,
  startSquid,
  startTinyproxy,
} from '../../harness/index.js';
import { startPortail } from '../daemon/portail.js';
import { type ClientKind, origin, via } from './helpers.js';

const backend = (name: string, port: number, type?: string) =>
  `[backends.${name}]\n${type ? `type = "${type}"\n` : ''}target-address = "127.0.0.1:${port}"\n`;

const allowAll = (routeTo: string) =>
  `route up { use ["${routeTo}"] }\npolicy all { action allow }\n`;

async function expectVia(kind: ClientKind, proxyPort: number, o: { port: number }, from: string) {
  const r = await via(kind, proxyPort, o.port);
  assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
  assert.equal(r.stdout, `from ${from}`, kind);
}

test('microsocks: a SOCKS5 client goes through a SOCKS5 backend without type; a route sends only some ports upstream', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.11' });
  const viaUp = await origin(t);
  const direct = await origin(t);
  const p = await startPortail(t, {
    acl: `route up { when port == ${viaUp.port} use ["ms"] }\npolicy all { action allow }\n`,
    config: backend('ms', ms.port),
  });
  await expectVia('socks5', p.port, viaUp, '127.0.0.11');
  await expectVia('socks5', p.port, direct, '127.0.0.1');
  const decisions = p.records().filter((r) => r.event === 'decision');
  assert.deepEqual(
    decisions.map((d) => d.route),
    ['ms', 'direct'],
  );
  assert.deepEqual(viaUp.seen, ['127.0.0.11']);
  assert.deepEqual(direct.seen, ['127.0.0.1']);
});

test('dante: type = "socks5" makes HTTP clients (CONNECT and plain) use SOCKS5 upstream', async (t) => {
  if (!requireTool(t, 'danted') || !requireTool(t, 'curl')) return;
  const dante = await startDante({ t, outgoingAddress: '127.0.0.12' });
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: allowAll('dante'),
    config: backend('dante', dante.port, 'socks5'),
  });
  await expectVia('http-connect', p.port, o, '127.0.0.12');
  await expectVia('http-forward', p.port, o, '127.0.0.12');
  await expectVia('socks5', p.port, o, '127.0.0.12');
  assert.deepEqual(o.seen, ['127.0.0.12', '127.0.0.12', '127.0.0.12']);
});

test('tinyproxy: an HTTP client goes through an HTTP CONNECT backend without type', async (t) => {
  if (!requireTool(t, 'tinyproxy') || !requireTool(t, 'curl')) return;
  const tp = await startTinyproxy({ t, bind: '127.0.0.13' });
  const o = await origin(t);
  const p = await startPortail(t, { acl: allowAll('tp'), config: backend('tp', tp.port) });
  await expectVia('http-connect', p.port, o, '127.0.0.13');
  await expectVia('http-forward', p.port, o, '127.0.0.13');
  const close = await p.waitRecord((r) => r.event === 'close');
  assert.equal(close.route, 'tp');
});

test('squid: type = "http" makes SOCKS5 clients use HTTP CONNECT upstream', async (t) => {
  if (!requireTool(t, 'squid') || !requireTool(t, 'curl')) return;
  const sq = await startSquid({ t, outgoingAddress: '127.0.0.14' });
  const o = await origin(t);
  const p = await startPortail(t, { acl: allowAll('sq'), config: backend('sq', sq.port, 'http') });
  await expectVia('socks5', p.port, o, '127.0.0.14');
  await expectVia('http-connect', p.port, o, '127.0.0.14');
  assert.deepEqual(o.seen, ['127.0.0.14', '127.0.0.14']);
});

test('an upstream refusal maps to the client protocol and keeps the backend healthy', async (t) => {
  if (!requireTool(t, 'microsocks') || !requireTool(t, 'curl')) return;
  const ms = await startMicrosocks({ t, bindOutgoing: '127.0.0.11' });
  const o = await origin(t);
  const p = await startPortail(t, {
    acl: allowAll('ms'),
    config: `fallback-to-direct = false\n${backend('ms', ms.port)}`,
  });
  // Port 1 on loopback: the upstream itself answers "connection refused".
  const r = await via('socks5', p.port, 1);
  assert.notEqual(r.code, 0);
  const d = await p.waitRecord((x) => x.event === 'decision');
  assert.match(String(d.reason), /ms .*rejected the request/);
  // Not backed off: the next request goes through at once.
  await expectVia('socks5', p.port, o, '127.0.0.11');
});
