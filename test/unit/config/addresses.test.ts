// HOST:PORT for target-address and metrics.listen; IPv6 in brackets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHostPort, parseHostPort } from '../../../common/host-port.js';
import { assertOneError, load } from './helpers.js';

const target = (addr: string) => `[backends.a]\ntarget-address = ${JSON.stringify(addr)}\n`;

test('bad target addresses', async () => {
  const cases: [string, RegExp][] = [
    ['gw.example.com', /expected HOST:PORT \(a port is required\)/],
    ['::1:1080', /write an IPv6 address in brackets/],
    ['[::1]', /a port is required/],
    ['[::1:1080', /missing "\]"/],
    ['[127.0.0.1]:80', /is not an IPv6 address/],
    ['gw.example.com:0', /port must be a number from 1 to 65535/],
    ['gw.example.com:65536', /port must be a number from 1 to 65535/],
    ['gw.example.com:http', /port must be a number/],
    ['gw.example.com:', /port must be a number/],
    [':1080', /is not a valid host name or IP address/],
    ['gw example.com:1080', /is not a valid host name/],
    ['gw..example.com:1080', /is not a valid host name/],
    ['-gw.example.com:1080', /is not a valid host name/],
  ];
  for (const [addr, re] of cases) {
    const d = await assertOneError(target(addr), re);
    assert.match(d.message, /^backends\.a\.target-address: /);
    assert.equal(d.line, 2);
  }
  await assertOneError(
    '[backends.a]\ntarget-address = 1080\n',
    /expected "HOST:PORT", got an integer/,
  );
});

test('good target addresses', async () => {
  const cases: [string, string, number][] = [
    ['gw1.example.com:8443', 'gw1.example.com', 8443],
    ['127.0.0.1:1080', '127.0.0.1', 1080],
    ['[::1]:1080', '::1', 1080],
    ['[2001:db8::1]:443', '2001:db8::1', 443],
    ['localhost:65535', 'localhost', 65535],
    ['gw.example.com.:1', 'gw.example.com.', 1],
  ];
  for (const [addr, host, port] of cases) {
    const c = await load(target(addr));
    assert.deepEqual(c.backends.a?.targetAddress, { host, port });
  }
});

test('formatHostPort is the inverse of parseHostPort', () => {
  for (const text of ['[::1]:1080', '127.0.0.1:80', 'gw.example.com:8443']) {
    const hp = parseHostPort(text);
    assert.ok(!('error' in hp));
    assert.equal(formatHostPort(hp), text);
  }
});

test("upstream's public-address: an IP address, kept; anything else refused", async () => {
  assert.equal((await load('public-address = "192.0.2.7"\n')).publicAddress, '192.0.2.7');
  assert.equal((await load('')).publicAddress, undefined);
  const d = await assertOneError('public-address = "gw.example.com"\n', /public-address/);
  assert.equal(d.line, 1);
});
