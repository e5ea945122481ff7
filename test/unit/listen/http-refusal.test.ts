import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endToEndHeaders, hostHeader } from '../../../proxy/listen/http-forward.js';
import {
  acceptsHtml,
  rawResponse,
  refusalAnswer,
  statusFor,
} from '../../../proxy/listen/http-refusal.js';
import type { RejectReason } from '../../../proxy/types.js';

test('statuses per docs/reference/wire.md', () => {
  const expected: [RejectReason, number][] = [
    ['denied', 403],
    ['bad-request', 400],
    ['dns', 502],
    ['unreachable', 502],
    ['refused', 502],
    ['internal', 502],
    ['timeout', 504],
    ['overloaded', 503],
  ];
  for (const [reason, status] of expected) {
    assert.equal(statusFor({ reason, message: '' }, true), status, reason);
  }
  const redirect = { reason: 'denied' as const, message: 'm', redirect: 'https://h/' };
  assert.equal(statusFor(redirect, false), 302);
  assert.equal(statusFor(redirect, true), 403);
});

test('text/html only when Accept names it with a non-zero weight', () => {
  assert.equal(acceptsHtml(undefined), false);
  assert.equal(acceptsHtml('*/*'), false);
  assert.equal(acceptsHtml('text/*'), false);
  assert.equal(acceptsHtml('text/html'), true);
  assert.equal(acceptsHtml('application/json, TEXT/HTML ; q=0.5'), true);
  assert.equal(acceptsHtml('text/html;q=0'), false);
  assert.equal(acceptsHtml('text/html;q=0.0'), false);
  assert.equal(acceptsHtml(['application/json', 'text/html']), true);
});

test('bodies: the message (plain) or an escaped page (html); never cached', () => {
  const plain = refusalAnswer(
    { reason: 'denied', message: 'denied by policy web' },
    { isConnect: true, accept: undefined },
  );
  assert.equal(plain.body.toString(), 'denied by policy web\n');
  assert.equal(plain.headers['Content-Type'], 'text/plain; charset=utf-8');
  assert.equal(plain.headers['Content-Length'], String(plain.body.length));
  assert.equal(plain.headers['Cache-Control'], 'no-store');
  const html = refusalAnswer(
    { reason: 'denied', message: '<script>x</script>', redirect: 'https://h/"x' },
    { isConnect: true, accept: 'text/html' },
  );
  assert.equal(html.headers['Content-Type'], 'text/html; charset=utf-8');
  assert.doesNotMatch(html.body.toString(), /<script>|"x/);
  assert.match(html.body.toString(), /&#60;script&#62;/);
  const raw = rawResponse(plain).toString();
  assert.match(raw, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(raw, /\r\nConnection: close\r\n\r\ndenied by policy web\n$/);
});

test('redirect: Location only on 302, header-safe', () => {
  const r = refusalAnswer(
    { reason: 'denied', message: 'see help', redirect: 'https://help.example/é x' },
    { isConnect: false, accept: undefined },
  );
  assert.equal(r.status, 302);
  assert.equal(r.headers.Location, 'https://help.example/%C3%A9%20x');
  const c = refusalAnswer(
    { reason: 'denied', message: 'see help', redirect: 'https://help.example/' },
    { isConnect: true, accept: undefined },
  );
  assert.equal(c.headers.Location, undefined);
  assert.equal(c.body.toString(), 'see help\nhttps://help.example/\n');
});

test('hop-by-hop fields and those named by Connection are not forwarded', () => {
  const raw = [
    'Host',
    'h',
    'Connection',
    'keep-alive, X-Hop',
    'connection',
    'Other',
    'X-Hop',
    '1',
    'other',
    '2',
    'Keep-Alive',
    'timeout=5',
    'Proxy-Connection',
    'keep-alive',
    'Proxy-Authorization',
    'Basic c2VjcmV0',
    'TE',
    'trailers',
    'Trailer',
    'X',
    'Transfer-Encoding',
    'chunked',
    'Upgrade',
    'websocket',
    'Accept',
    'a',
    'Accept',
    'b',
  ];
  assert.deepEqual(endToEndHeaders(raw, new Set(['host'])), ['Accept', 'a', 'Accept', 'b']);
});

test('Host header: port omitted when 80, IPv6 in brackets', () => {
  assert.equal(hostHeader({ host: 'a.b', port: 80 }), 'a.b');
  assert.equal(hostHeader({ host: 'a.b', port: 8080 }), 'a.b:8080');
  assert.equal(hostHeader({ host: '::1', port: 80 }), '[::1]');
  assert.equal(hostHeader({ host: '::1', port: 81 }), '[::1]:81');
});
