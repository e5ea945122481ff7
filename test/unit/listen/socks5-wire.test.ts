import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeAddress,
  encodeAddress,
  encodeReply,
  replyCodeFor,
} from '../../../proxy/listen/socks5-wire.js';
import type { RejectReason } from '../../../proxy/types.js';

test('reply codes per docs/reference/wire.md', () => {
  const expected: Record<RejectReason, number> = {
    denied: 0x02,
    dns: 0x04,
    unreachable: 0x04,
    refused: 0x05,
    timeout: 0x06,
    'unsupported-command': 0x07,
    'unsupported-address': 0x08,
    'bad-request': 0x01,
    overloaded: 0x01,
    internal: 0x01,
  };
  for (const [reason, code] of Object.entries(expected)) {
    assert.equal(replyCodeFor(reason as RejectReason), code, reason);
  }
});

test('replies carry the bound address in its family', () => {
  assert.deepEqual(
    encodeReply(0, { address: '10.1.2.3', port: 4660 }),
    Buffer.from([5, 0, 0, 1, 10, 1, 2, 3, 0x12, 0x34]),
  );
  assert.deepEqual(
    encodeReply(0, { address: '2001:db8::1', port: 1 }),
    Buffer.from([5, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]),
  );
  // A dual-stack socket reports IPv4 as mapped IPv6: the client gets plain IPv4.
  assert.deepEqual(
    encodeReply(0, { address: '::ffff:127.0.0.1', port: 80 }),
    Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 80]),
  );
  assert.deepEqual(encodeReply(2), Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(encodeAddress('a.b', 1), Buffer.from([3, 3, 0x61, 0x2e, 0x62, 0, 1]));
  assert.deepEqual(encodeAddress('1.2.3.4', 70000), Buffer.from([1, 1, 2, 3, 4, 0, 0]));
});

test('address fields decode to normalised hosts', () => {
  assert.equal(decodeAddress(1, Buffer.from([192, 0, 2, 1])), '192.0.2.1');
  const v6 = Buffer.alloc(16);
  v6[0] = 0x20;
  v6[1] = 0x01;
  v6[15] = 0x0a;
  assert.equal(decodeAddress(4, v6), '2001::a');
  assert.equal(decodeAddress(3, Buffer.from([4, 0x41, 0x2e, 0x42, 0x2e])), 'a.b');
  assert.equal(decodeAddress(3, Buffer.from([0])), null);
  assert.equal(decodeAddress(3, Buffer.from([2, 0xc3, 0x28])), null);
  assert.equal(decodeAddress(9, Buffer.from([1, 2, 3, 4])), null);
});
