import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import {
  blobType,
  fingerprint,
  hostKeyAlgorithms,
  hostMatches,
  keysFor,
  knownHostsName,
  parseKnownHosts,
  verifyHostKey,
} from '../../../proxy/connect/ssh-known-hosts.js';

/** A public key blob of the given SSH type, made with ssh2's key generator. */
function key(type: 'ed25519' | 'ecdsa' | 'rsa'): { type: string; b64: string; blob: Buffer } {
  const pair =
    type === 'rsa'
      ? ssh2.utils.generateKeyPairSync('rsa', { bits: 1024 })
      : type === 'ecdsa'
        ? ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 })
        : ssh2.utils.generateKeyPairSync('ed25519');
  const [t, b64] = pair.public.split(' ');
  return { type: t, b64, blob: Buffer.from(b64, 'base64') };
}

function hashed(name: string, salt = Buffer.alloc(20, 7)): string {
  const h = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${h}`;
}

describe('known_hosts', () => {
  const ed = key('ed25519');
  const ec = key('ecdsa');

  test('unhappy: corrupt lines are skipped, not trusted', () => {
    const entries = parseKnownHosts(
      [
        'host', // too short
        `host ssh-rsa ${ed.b64}`, // type disagrees with the blob
        `host ssh-ed25519 not*base64`,
        '@unknown-marker host ssh-ed25519 AAAA',
        `  # comment ${ed.b64}`,
        '',
      ].join('\n'),
    );
    assert.deepEqual(entries, []);
  });

  test('unhappy: an unlisted host, a different key, a revoked key', () => {
    const entries = parseKnownHosts(
      [`a.example ${ed.type} ${ed.b64}`, `@revoked * ${ec.type} ${ec.b64}`].join('\n'),
    );
    assert.deepEqual(verifyHostKey(keysFor(entries, 'b.example'), ed.blob), {
      ok: false,
      why: 'unknown-host',
    });
    assert.deepEqual(verifyHostKey(keysFor(entries, 'a.example'), key('ed25519').blob), {
      ok: false,
      why: 'mismatch',
    });
    assert.deepEqual(verifyHostKey(keysFor(entries, 'a.example'), ec.blob), {
      ok: false,
      why: 'revoked',
    });
    assert.deepEqual(verifyHostKey(keysFor(entries, 'a.example'), ed.blob), { ok: true });
  });

  test('unhappy: a non-22 port is only matched by the [host]:port form', () => {
    const entries = parseKnownHosts(`bastion.example ${ed.type} ${ed.b64}`);
    assert.equal(keysFor(entries, knownHostsName('bastion.example', 2222)).keys.length, 0);
    assert.equal(keysFor(entries, knownHostsName('bastion.example', 22)).keys.length, 1);
    const bracketed = parseKnownHosts(`[bastion.example]:2222 ${ed.type} ${ed.b64}`);
    assert.equal(keysFor(bracketed, knownHostsName('Bastion.Example', 2222)).keys.length, 1);
    assert.equal(keysFor(bracketed, knownHostsName('bastion.example', 22)).keys.length, 0);
  });

  test('patterns: lists, wildcards, negation, case', () => {
    assert.ok(hostMatches('a.example,b.example', 'b.example'));
    assert.ok(hostMatches('*.example', 'x.example'));
    assert.ok(!hostMatches('*.example', 'example'));
    assert.ok(hostMatches('host?', 'host1'));
    assert.ok(!hostMatches('host?', 'host12'));
    assert.ok(!hostMatches('*.example,!bad.example', 'bad.example'));
    assert.ok(hostMatches('*.example,!bad.example', 'good.example'));
    assert.ok(hostMatches('HOST.Example', 'host.example'));
    assert.ok(!hostMatches('a.b', 'axb'), 'a dot is literal');
    assert.ok(hostMatches('[10.0.0.*]:2222', '[10.0.0.5]:2222'));
  });

  test('hashed names (|1|salt|hash)', () => {
    const entries = parseKnownHosts(
      [
        `${hashed('[127.0.0.1]:2222')} ${ed.type} ${ed.b64}`,
        `${hashed('other')} ${ec.type} ${ec.b64}`,
      ].join('\n'),
    );
    assert.equal(entries.length, 2);
    const known = keysFor(entries, '[127.0.0.1]:2222');
    assert.deepEqual(
      known.keys.map((k) => k.type),
      ['ssh-ed25519'],
    );
    assert.ok(verifyHostKey(known, ed.blob).ok);
    assert.ok(!hostMatches('|1|bad|salt', 'x'));
    assert.ok(!hostMatches(hashed('x').replace('|1|', '|2|'), 'x'));
  });

  test('host key algorithms follow the listed key types', () => {
    const rsa = key('rsa');
    const entries = parseKnownHosts(
      [`h ${rsa.type} ${rsa.b64}`, `h ${ec.type} ${ec.b64}`, `h ${rsa.type} ${rsa.b64}`].join('\n'),
    );
    const supported = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256'];
    assert.deepEqual(hostKeyAlgorithms(keysFor(entries, 'h').keys, supported), [
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ecdsa-sha2-nistp256',
    ]);
    assert.deepEqual(
      hostKeyAlgorithms([{ type: 'sk-ssh-ed25519@openssh.com', blob: Buffer.alloc(0) }], supported),
      [],
    );
  });

  test('blob type and fingerprint as ssh-keygen prints them', () => {
    assert.equal(blobType(ed.blob), 'ssh-ed25519');
    assert.equal(blobType(Buffer.from([0, 0, 0, 9, 1])), undefined);
    // SHA-256 of the blob, base64 without padding (43 characters).
    const want = createHash('sha256').update(ed.blob).digest('base64').slice(0, 43);
    assert.equal(fingerprint(ed.blob), `SHA256:${want}`);
  });
});
