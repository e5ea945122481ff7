// client.cert.san from node's subjectaltname text: typed entries, canonical IPs, lower-case
// names, JSON-quoted values (commas, quotes) decoded, unknown types left out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSubjectAltName } from '../../../proxy/listen/tls.js';

test('subjectaltname text → typed SAN list', () => {
  assert.deepEqual(parseSubjectAltName(''), []);
  assert.deepEqual(
    parseSubjectAltName(
      'DNS:Laptop.Example.COM, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.1, email:a@b.example, URI:spiffe://corp/dev/42',
    ),
    [
      'DNS:laptop.example.com',
      'IP:::1',
      'IP:10.0.0.1',
      'email:a@b.example',
      'URI:spiffe://corp/dev/42',
    ],
  );
  // A value with a comma is quoted by node: it must not split into two entries.
  assert.deepEqual(parseSubjectAltName('DNS:"a,DNS:evil.example", DNS:ok.example'), [
    'DNS:a,dns:evil.example',
    'DNS:ok.example',
  ]);
  assert.deepEqual(parseSubjectAltName('DirName:CN=x, othername:1.2.3;UTF8:y, DNS:z'), ['DNS:z']);
});
