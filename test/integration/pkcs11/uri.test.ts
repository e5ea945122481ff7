// PKCS#11 URI parsing (RFC 7512): pure, but kept beside the token tests it serves.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeAttr, parsePkcs11Uri, redactPkcs11Uri } from '../../../proxy/config/pkcs11-uri.js';

describe('PKCS#11 URI', () => {
  test('unhappy: not a pkcs11 URI, unknown or repeated attributes, both PIN kinds, wrong type', () => {
    assert.throws(() => parsePkcs11Uri('file:/x'), /starts with "pkcs11:"/);
    assert.throws(() => parsePkcs11Uri('pkcs11:objet=k'), /unknown attribute "objet"/);
    assert.throws(() => parsePkcs11Uri('pkcs11:token=a;token=b'), /"token" is repeated/);
    assert.throws(() => parsePkcs11Uri('pkcs11:token'), /has no value/);
    assert.throws(
      () => parsePkcs11Uri('pkcs11:token=a?pin-value=1&pin-source=file:/p'),
      /not both/,
    );
    assert.throws(() => parsePkcs11Uri('pkcs11:token=a;type=cert'), /type=private/);
    assert.throws(() => parsePkcs11Uri('pkcs11:id=%zz'), /percent-encoding/);
    assert.throws(() => parsePkcs11Uri('pkcs11:slot-id=x'), /decimal/);
    assert.throws(
      () => parsePkcs11Uri('pkcs11:token=a?object=k'),
      /unknown attribute "object" in the query/,
    );
  });

  test('path and query attributes, percent-decoding, vendor x- attributes', () => {
    assert.deepEqual(
      parsePkcs11Uri(
        'pkcs11:token=My%20Token;object=dev;id=%01%A0;type=private;x-foo=1?pin-source=file:/run/pin',
      ),
      {
        token: 'My Token',
        object: 'dev',
        id: Buffer.from([1, 0xa0]),
        type: 'private',
        pinSource: 'file:/run/pin',
      },
    );
    // libp11's form: pin-value in the path.
    assert.equal(parsePkcs11Uri('pkcs11:token=dev;pin-value=12%3B4').pinValue, '12;4');
    assert.equal(parsePkcs11Uri('pkcs11:serial=abc;slot-id=3').slotId, 3);
  });

  test('encoding and redaction', () => {
    assert.equal(encodeAttr('a b;c'), 'a%20b%3Bc');
    assert.equal(encodeAttr(Buffer.from([1, 255])), '%01%FF');
    assert.equal(
      redactPkcs11Uri('pkcs11:token=d;pin-value=1234;object=k?pin-value=99&x=1'),
      'pkcs11:token=d;pin-value=***;object=k?pin-value=***&x=1',
    );
  });
});
