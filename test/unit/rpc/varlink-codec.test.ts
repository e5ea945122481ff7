import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  asCall,
  asReply,
  encodeMessage,
  splitMethod,
  VarlinkDecoder,
  VarlinkError,
} from '../../../rpc/varlink-codec.js';

const frame = (o: unknown) => Buffer.concat([Buffer.from(JSON.stringify(o)), Buffer.of(0)]);

describe('VarlinkDecoder', () => {
  it('refuses a message larger than the bound, even without its terminator', () => {
    const d = new VarlinkDecoder(64);
    const out = d.push(Buffer.from(`{"method":"${'x'.repeat(100)}`));
    assert.equal(out.length, 1);
    assert.deepEqual(out[0], { ok: false, failure: { kind: 'oversize', limit: 64 } });
    // Nothing more is decoded after a failure.
    assert.deepEqual(d.push(frame({ method: 'a.B' })), []);
  });

  it('refuses an oversized message that arrives in many small pieces', () => {
    const d = new VarlinkDecoder(32);
    const text = Buffer.from(`{"method":"${'y'.repeat(40)}"}`);
    const results = [];
    for (let i = 0; i < text.length; i += 5) results.push(...d.push(text.subarray(i, i + 5)));
    assert.equal(results.length, 1);
    assert.equal(results[0].ok, false);
  });

  it('refuses a complete message over the bound in one chunk, after the good ones before it', () => {
    const d = new VarlinkDecoder(40);
    const out = d.push(
      Buffer.concat([frame({ method: 'a.B' }), frame({ method: 'x'.repeat(50) })]),
    );
    assert.equal(out.length, 2);
    assert.equal(out[0].ok, true);
    assert.deepEqual(out[1], { ok: false, failure: { kind: 'oversize', limit: 40 } });
  });

  it('reports malformed JSON, a non-object and invalid UTF-8', () => {
    for (const bad of [
      Buffer.from('{"method":\0'),
      Buffer.from('[1,2]\0'),
      Buffer.from('"s"\0'),
      Buffer.from('null\0'),
      Buffer.of(0x7b, 0xff, 0x7d, 0),
    ]) {
      const out = new VarlinkDecoder().push(bad);
      assert.equal(out.length, 1, bad.toString());
      assert.equal(out[0].ok, false);
      if (!out[0].ok) assert.equal(out[0].failure.kind, 'malformed');
    }
  });

  it('reassembles a message split at every byte', () => {
    const msg = frame({ method: 'org.varlink.service.GetInfo', parameters: { é: 'ü' } });
    const d = new VarlinkDecoder();
    const got = [];
    for (const b of msg) got.push(...d.push(Buffer.of(b)));
    assert.deepEqual(got, [
      { ok: true, message: { method: 'org.varlink.service.GetInfo', parameters: { é: 'ü' } } },
    ]);
    assert.equal(d.pending, 0);
  });

  it('returns several messages of one chunk in order, keeping a trailing partial one', () => {
    const d = new VarlinkDecoder();
    const tail = frame({ method: 'c.D' });
    const chunk = Buffer.concat([
      frame({ method: 'a.B' }),
      frame({ method: 'a.C', oneway: true }),
      tail.subarray(0, 4),
    ]);
    const out = d.push(chunk);
    assert.deepEqual(
      out.map((o) => (o.ok ? o.message.method : 'error')),
      ['a.B', 'a.C'],
    );
    assert.equal(d.pending, 4);
    assert.deepEqual(d.push(tail.subarray(4)), [{ ok: true, message: { method: 'c.D' } }]);
  });

  it('does not keep a reference to the caller’s buffer', () => {
    const d = new VarlinkDecoder();
    const chunk = Buffer.from('{"method":"a.B"');
    d.push(chunk);
    chunk.fill(0x20);
    assert.deepEqual(d.push(Buffer.from('}\0')), [{ ok: true, message: { method: 'a.B' } }]);
  });
});

describe('encodeMessage', () => {
  it('terminates with one NUL and never embeds one', () => {
    const buf = encodeMessage({ parameters: { s: 'a\u0000b' } });
    assert.equal(buf.indexOf(0), buf.length - 1);
    assert.deepEqual(new VarlinkDecoder().push(buf), [
      { ok: true, message: { parameters: { s: 'a\u0000b' } } },
    ]);
  });
});

describe('asCall / asReply / splitMethod', () => {
  it('names the offending field of a malformed call', () => {
    assert.deepEqual(asCall({}), { invalid: 'method' });
    assert.deepEqual(asCall({ method: '' }), { invalid: 'method' });
    assert.deepEqual(asCall({ method: 3 }), { invalid: 'method' });
    assert.deepEqual(asCall({ method: 'a.B', parameters: [] }), { invalid: 'parameters' });
    assert.deepEqual(asCall({ method: 'a.B', parameters: 'x' }), { invalid: 'parameters' });
    assert.deepEqual(asCall({ method: 'a.B', oneway: 'yes' }), { invalid: 'oneway' });
    assert.deepEqual(asCall({ method: 'a.B', more: 1 }), { invalid: 'more' });
    assert.deepEqual(asCall({ method: 'a.B', upgrade: {} }), { invalid: 'upgrade' });
  });

  it('normalises a valid call', () => {
    assert.deepEqual(asCall({ method: 'a.B', oneway: true }), {
      method: 'a.B',
      parameters: {},
      oneway: true,
      more: false,
      upgrade: false,
    });
  });

  it('reads replies and rejects malformed ones', () => {
    assert.equal(asReply({ error: 5 }), undefined);
    assert.equal(asReply({ parameters: [] }), undefined);
    assert.deepEqual(asReply({ error: 'a.B', parameters: { x: 1 } }), {
      error: 'a.B',
      parameters: { x: 1 },
      continues: false,
    });
  });

  it('splits at the last dot', () => {
    assert.deepEqual(splitMethod('fr.gouv.portail.Control.GetCurrentBackend'), [
      'fr.gouv.portail.Control',
      'GetCurrentBackend',
    ]);
    assert.equal(splitMethod('NoDot'), undefined);
    assert.equal(splitMethod('.A'), undefined);
    assert.equal(splitMethod('a.'), undefined);
  });

  it('VarlinkError becomes an error reply', () => {
    assert.deepEqual(new VarlinkError('a.B', { p: 1 }).toReply(), {
      error: 'a.B',
      parameters: { p: 1 },
    });
  });
});
