// journald's native protocol: exact encoding (text and binary forms), and the writer
// against a socket standing for /run/systemd/journal/socket, directly and under pino.
import assert from 'node:assert/strict';
import { closeSync, readSync } from 'node:fs';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import {
  createJournalWriter,
  encodeJournalEntry,
  journalFieldName,
  journalFieldsFromRecord,
  MAX_VALUE_BYTES,
  priorityOfLevel,
} from '../../../systemd/journald.js';
import { decodeJournal, fakeSocket } from './helpers.js';

describe('encodeJournalEntry', () => {
  test('refuses names journald would reject', () => {
    for (const bad of ['message', '_PID', '1ST', 'A-B', 'A B', '', 'X'.repeat(65), 'É']) {
      assert.throws(() => encodeJournalEntry({ [bad]: 'v' }), TypeError, bad);
    }
    assert.doesNotThrow(() => encodeJournalEntry({ ['X'.repeat(64)]: 'v' }));
  });

  test('one KEY=value line per field; numbers, booleans, Buffers; null left out', () => {
    const b = encodeJournalEntry({
      MESSAGE: 'deny example.com:443',
      PORTAIL_PORT: 443,
      PORTAIL_BIG: 2n ** 70n,
      PORTAIL_OK: false,
      PORTAIL_RAW: Buffer.from([0x41, 0x00, 0x42]),
      PORTAIL_NONE: null,
      PORTAIL_UNDEF: undefined,
      PORTAIL_EMPTY: '',
    });
    assert.deepEqual(
      b,
      Buffer.concat([
        Buffer.from(
          'MESSAGE=deny example.com:443\nPORTAIL_PORT=443\nPORTAIL_BIG=1180591620717411303424\nPORTAIL_OK=false\nPORTAIL_RAW=A',
        ),
        Buffer.from([0]),
        Buffer.from('B\nPORTAIL_EMPTY=\n'),
      ]),
    );
  });

  test('a value with a newline uses the binary form: name, 64-bit LE length, bytes, newline', () => {
    const value = 'line one\nline two é';
    const bytes = Buffer.from(value);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.length));
    const b = encodeJournalEntry({ A: 'x', MESSAGE: value, Z: 'y' });
    assert.deepEqual(
      b,
      Buffer.concat([Buffer.from('A=x\nMESSAGE\n'), len, bytes, Buffer.from('\nZ=y\n')]),
    );
    assert.deepEqual(decodeJournal(b), [
      ['A', 'x'],
      ['MESSAGE', value],
      ['Z', 'y'],
    ]);
  });

  test('arrays repeat the field', () => {
    assert.deepEqual(decodeJournal(encodeJournalEntry({ PORTAIL_TAGS: ['a', 'b\nc', 3] })), [
      ['PORTAIL_TAGS', 'a'],
      ['PORTAIL_TAGS', 'b\nc'],
      ['PORTAIL_TAGS', '3'],
    ]);
  });

  test('an oversized value is cut at a UTF-8 boundary and marked', () => {
    const value = `${'a'.repeat(MAX_VALUE_BYTES - 14)}${'é'.repeat(20)}`;
    const [[, got]] = decodeJournal(encodeJournalEntry({ MESSAGE: value }));
    assert.ok(Buffer.byteLength(got) <= MAX_VALUE_BYTES);
    assert.ok(got.endsWith('…[truncated]'));
    assert.ok(!got.includes('\ufffd'), 'no broken character');
  });
});

describe('field names and records', () => {
  test('audit keys become PORTAIL_ names', () => {
    assert.equal(journalFieldName('action'), 'PORTAIL_ACTION');
    assert.equal(journalFieldName('bytes_up'), 'PORTAIL_BYTES_UP');
    assert.equal(journalFieldName('client.ip'), 'PORTAIL_CLIENT_IP');
    assert.equal(journalFieldName('x'.repeat(80)).length, 64);
  });

  test('pino levels map to syslog priorities', () => {
    assert.deepEqual([10, 20, 30, 40, 50, 60].map(priorityOfLevel), [7, 7, 6, 4, 3, 2]);
  });

  test('a record: msg, level, journald names kept, objects as JSON, scalar arrays repeated', () => {
    assert.deepEqual(
      journalFieldsFromRecord({
        level: 40,
        time: 1,
        pid: 2,
        hostname: 'h',
        msg: 'hello',
        event: 'decision',
        port: 443,
        tags: ['a', 'b'],
        device: { id: 'd1' },
        CODE_FUNC: 'f',
        missing: null,
      }),
      {
        PRIORITY: 4,
        MESSAGE: 'hello',
        PORTAIL_EVENT: 'decision',
        PORTAIL_PORT: 443,
        PORTAIL_TAGS: ['a', 'b'],
        PORTAIL_DEVICE: '{"id":"d1"}',
        CODE_FUNC: 'f',
      },
    );
  });
});

describe('createJournalWriter', () => {
  test('sends one datagram with PRIORITY and SYSLOG_IDENTIFIER defaults', () => {
    const s = fakeSocket('journal');
    try {
      const w = createJournalWriter({ socketPath: s.path });
      assert.equal(
        w.write({ MESSAGE: 'deny\nexplained', PORTAIL_ACTION: 'deny', PORTAIL_PORT: 443 }),
        true,
      );
      const d = s.recv(1000);
      assert.ok(d);
      assert.deepEqual(decodeJournal(d.data), [
        ['PRIORITY', '6'],
        ['SYSLOG_IDENTIFIER', 'portail'],
        ['MESSAGE', 'deny\nexplained'],
        ['PORTAIL_ACTION', 'deny'],
        ['PORTAIL_PORT', '443'],
      ]);
      assert.equal(d.pid, process.pid);
      w.write({ PRIORITY: 3, SYSLOG_IDENTIFIER: 'portail-audit', MESSAGE: 'x' });
      assert.deepEqual(decodeJournal(s.recv(1000)?.data ?? Buffer.alloc(0)), [
        ['PRIORITY', '3'],
        ['SYSLOG_IDENTIFIER', 'portail-audit'],
        ['MESSAGE', 'x'],
      ]);
    } finally {
      s.close();
    }
  });

  test('an entry too large for a datagram goes through a memfd', () => {
    const s = fakeSocket('journal');
    try {
      const w = createJournalWriter({ socketPath: s.path });
      const big = 'b'.repeat(900 * 1024);
      assert.equal(
        w.write({
          MESSAGE: 'big',
          PORTAIL_A: big,
          PORTAIL_B: big,
          PORTAIL_C: big,
          PORTAIL_D: big,
          PORTAIL_E: big,
        }),
        true,
      );
      const d = s.recv(1000);
      assert.ok(d);
      assert.equal(d.data.length, 0);
      assert.equal(d.fds.length, 1);
      const buf = Buffer.alloc(8 * 1024 * 1024);
      const n = readSync(d.fds[0], buf, 0, buf.length, 0);
      closeSync(d.fds[0]);
      const fields = decodeJournal(buf.subarray(0, n));
      assert.equal(fields.length, 8);
      assert.equal(fields[6][1], big);
    } finally {
      s.close();
    }
  });

  test('I/O errors and invalid names never throw: onError gets them', () => {
    const s = fakeSocket('journal');
    const errors: string[] = [];
    try {
      const missing = createJournalWriter({
        socketPath: `${s.path}.missing`,
        onError: (e) => errors.push(String((e as NodeJS.ErrnoException).code)),
      });
      assert.equal(missing.write({ MESSAGE: 'lost' }), false);
      const w = createJournalWriter({ socketPath: s.path, onError: (e) => errors.push(e.name) });
      assert.equal(w.write({ lower: 'x' }), false);
      // A full queue: with timeoutMs 0 the writer reports EAGAIN instead of blocking.
      const full = createJournalWriter({
        socketPath: s.path,
        timeoutMs: 0,
        onError: (e) => errors.push(String((e as NodeJS.ErrnoException).code)),
      });
      let i = 0;
      while (full.write({ MESSAGE: 'x'.repeat(1000) }) && i < 100_000) i++;
      assert.deepEqual(errors, ['ENOENT', 'TypeError', 'EAGAIN']);
    } finally {
      s.close();
    }
  });

  test('as a pino destination: JSON lines become MESSAGE, PRIORITY and PORTAIL_* fields', () => {
    const s = fakeSocket('journal');
    try {
      const log = pino(
        { base: { pid: 1, hostname: 'h' } },
        createJournalWriter({ socketPath: s.path }),
      );
      log.warn(
        { event: 'decision', action: 'deny', port: 443, tags: ['t1', 't2'] },
        'denied example.com',
      );
      const fields = decodeJournal(s.recv(1000)?.data ?? Buffer.alloc(0));
      assert.deepEqual(fields, [
        ['PRIORITY', '4'],
        ['SYSLOG_IDENTIFIER', 'portail'],
        ['PORTAIL_EVENT', 'decision'],
        ['PORTAIL_ACTION', 'deny'],
        ['PORTAIL_PORT', '443'],
        ['PORTAIL_TAGS', 't1'],
        ['PORTAIL_TAGS', 't2'],
        ['MESSAGE', 'denied example.com'],
      ]);
      // A line that is not JSON is kept as the message.
      createJournalWriter({ socketPath: s.path }).write('plain text\n');
      assert.deepEqual(decodeJournal(s.recv(1000)?.data ?? Buffer.alloc(0)).at(-1), [
        'MESSAGE',
        'plain text',
      ]);
    } finally {
      s.close();
    }
  });
});
