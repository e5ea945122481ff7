// The served proxy auto-config: `[pac] direct` entries checked at load, and the script
// itself run in node:vm (with the browsers' shExpMatch) for a range of URLs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import vm from 'node:vm';
import { type PacEntry, pacScript, parsePacEntry } from '../../../common/pac.js';
import { assertOneError, load } from '../config/helpers.js';

/** shExpMatch as browsers define it: a shell glob (`*`, `?`) over the whole string. */
function shExpMatch(s: string, glob: string): boolean {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(s);
}

function findProxy(entries: string[], proxy = '127.0.0.1:1080') {
  const parsed = entries.map((e) => {
    const p = parsePacEntry(e);
    if ('error' in p) throw new Error(p.error);
    return p as PacEntry;
  });
  const ctx = vm.createContext({ shExpMatch });
  vm.runInContext(pacScript(parsed, proxy), ctx);
  return (url: string) => {
    const host = new URL(url).hostname;
    return (ctx.FindProxyForURL as (u: string, h: string) => string)(url, host);
  };
}

test('DIRECT for the globs and networks, SOCKS5 then HTTP through portail for the rest', () => {
  const f = findProxy(['*.local', 'intranet.example.com', '10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
  const VIA = 'SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080';
  const cases: [string, string][] = [
    ['http://printer.local/', 'DIRECT'],
    ['https://A.B.LOCAL:8443/x', 'DIRECT'],
    ['http://local/', VIA], // "*.local" needs a dot before
    ['http://intranet.example.com/', 'DIRECT'],
    ['http://www.intranet.example.com/', VIA],
    ['http://10.1.2.3/', 'DIRECT'],
    ['http://10.255.255.255:81/', 'DIRECT'],
    ['http://11.0.0.1/', VIA],
    ['http://192.168.1.7/', 'DIRECT'],
    ['http://192.168.1.8/', VIA],
    ['http://[fd12::1]/', 'DIRECT'],
    ['http://[fe80::1]/', VIA],
    ['http://[::ffff:10.0.0.1]/', VIA], // an IPv6 form of an IPv4 address is not 10/8 here
    // Names that look like addresses are names: never DIRECT by a network.
    ['http://10.0.0.1.evil.example/', VIA],
    ['http://example.com/', VIA],
  ];
  for (const [url, want] of cases) assert.equal(f(url), want, url);
  // An IPv6 listener is named in brackets.
  assert.equal(findProxy([], '[::1]:1080')('http://x/'), 'SOCKS5 [::1]:1080; PROXY [::1]:1080');
});

test('entries are checked: what is wrong, and what was probably meant', () => {
  const bad: [string, RegExp][] = [
    ['10.0.0.1/8', /has bits set beyond \/8: did you mean 10\.0\.0\.0\/8\?/],
    ['10.0.0.0/33', /prefix length must be 0 to 32/],
    ['fd00::1/8', /did you mean fd00::\/8/],
    ['fd00::/129', /0 to 128/],
    ['host/8', /expected a host name pattern .* or a network \("10\.0\.0\.0\/8"\)/],
    ['*', /every host direct/],
    ['exa mple.com', /expected a host name pattern/],
    ['http://x.local/', /expected a host name pattern/],
  ];
  for (const [text, re] of bad) {
    const r = parsePacEntry(text);
    assert.ok('error' in r, text);
    assert.match(r.error, re, text);
  }
  assert.deepEqual(parsePacEntry('::/0'), { kind: 'net', bytes: new Array(16).fill(0), prefix: 0 });
  assert.deepEqual(parsePacEntry('*.CORP'), { kind: 'host', glob: '*.corp' });
});

test('[pac] direct in the configuration: errors on the element, parsed entries', async () => {
  await assertOneError('[pac]\ndirect = "*.local"', /^pac\.direct: expected an array of host/);
  const d = await assertOneError(
    '[pac]\ndirect = ["*.local", "10.0.0.1/8"]\n',
    /^pac\.direct\[2\]: "10\.0\.0\.1\/8" has bits set/,
  );
  assert.equal(d.line, 2);
  await assertOneError('[pac]\nbogus = 1', /bogus/);
  const c = await load('[pac]\ndirect = ["*.local", "10.0.0.0/8"]');
  assert.deepEqual(c.pac.direct, [
    { kind: 'host', glob: '*.local' },
    { kind: 'net', bytes: [10, 0, 0, 0], prefix: 8 },
  ]);
  assert.deepEqual((await load('')).pac.direct, []);
});
