import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectProtocol, HTTP2_PREFACE } from '../../../proxy/listen/detect.js';

test('first byte 0x05 is SOCKS5', () => {
  assert.equal(detectProtocol(Buffer.from([5])), 'socks5');
  assert.equal(detectProtocol(Buffer.from([5, 1, 0])), 'socks5');
});

test('0x16 0x03 is TLS; 0x16 alone waits; 0x16 then anything else is HTTP/1.1', () => {
  assert.equal(detectProtocol(Buffer.from([0x16])), undefined);
  assert.equal(detectProtocol(Buffer.from([0x16, 0x03, 0x01])), 'tls');
  assert.equal(detectProtocol(Buffer.from([0x16, 0x04])), 'http1');
});

test('the full 24-byte preface is HTTP/2; any prefix of it waits; a divergence is HTTP/1.1', () => {
  assert.equal(detectProtocol(HTTP2_PREFACE), 'http2');
  assert.equal(detectProtocol(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])])), 'http2');
  for (let n = 1; n < HTTP2_PREFACE.length; n++) {
    assert.equal(detectProtocol(HTTP2_PREFACE.subarray(0, n)), undefined, `prefix ${n}`);
  }
  assert.equal(detectProtocol(Buffer.from('POST http://x/ HTTP/1.1')), 'http1');
  assert.equal(detectProtocol(Buffer.from('PRI * HTTP/1.1\r\n')), 'http1');
});

test('everything else is HTTP/1.1 (its parser answers garbage with 400)', () => {
  assert.equal(detectProtocol(Buffer.from('GET')), 'http1');
  assert.equal(detectProtocol(Buffer.from('CONNECT a:1 HTTP/1.1')), 'http1');
  assert.equal(detectProtocol(Buffer.from([4, 1, 0, 80])), 'http1'); // SOCKS4
  assert.equal(detectProtocol(Buffer.from([0])), 'http1');
  assert.equal(detectProtocol(Buffer.alloc(0)), undefined);
});
