// The key locator: positions of keys in every TOML construct the schema can meet.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSpan, locateKeys, pathId } from '../../../proxy/config/locate.js';

function at(src: string, path: (string | number)[]): [number, number, number] | undefined {
  const s = locateKeys(src).get(pathId(path));
  return s && [s.line, s.column, s.length];
}

test('plain keys, tables and table headers', () => {
  const src = 'a = 1\n\n[dns]\n  timeout = 5 # c\n[backends.par01]\ntype = "http"\n';
  assert.deepEqual(at(src, ['a']), [1, 1, 1]);
  assert.deepEqual(at(src, ['dns']), [3, 2, 3]);
  assert.deepEqual(at(src, ['dns', 'timeout']), [4, 3, 7]);
  assert.deepEqual(at(src, ['backends']), [5, 2, 8]);
  assert.deepEqual(at(src, ['backends', 'par01']), [5, 11, 5]);
  assert.deepEqual(at(src, ['backends', 'par01', 'type']), [6, 1, 4]);
});

test('dotted and quoted keys, spaces around dots', () => {
  const src = 'dns.timeout = 1\n[backends . "my gw"]\n"type" = "ssh"\n\'user\' = "x"\n';
  assert.deepEqual(at(src, ['dns', 'timeout']), [1, 5, 7]);
  assert.deepEqual(at(src, ['backends', 'my gw']), [2, 13, 7]);
  assert.deepEqual(at(src, ['backends', 'my gw', 'type']), [3, 1, 6]);
  assert.deepEqual(at(src, ['backends', 'my gw', 'user']), [4, 1, 6]);
});

test('strings that look like syntax do not confuse it', () => {
  const src = [
    'a = "x = [ { #"',
    "b = 'c = \\'",
    'c = """',
    'd = 1',
    '[e]',
    '"""',
    "f = '''",
    "[g]'''",
    'h = "\\"quoted\\" # not a comment"',
    'i = 2',
  ].join('\n');
  const spans = locateKeys(src);
  assert.deepEqual(
    [...spans.keys()],
    ['a', 'b', 'c', 'f', 'h', 'i'].map((k) => pathId([k])),
  );
  assert.deepEqual(at(src, ['i']), [10, 1, 1]);
});

test('multi-line arrays with comments, and their elements', () => {
  const src = 'r = [\n  "a", # first\n  "bb",\n]\nafter = 1\n';
  assert.deepEqual(at(src, ['r', 0]), [2, 3, 3]);
  assert.deepEqual(at(src, ['r', 1]), [3, 3, 4]);
  assert.deepEqual(at(src, ['after']), [5, 1, 5]);
});

test('inline tables, nested', () => {
  const src = 'backends = { a = { dynamic = true }, b = { type = "http" } }\nz = 0\n';
  assert.deepEqual(at(src, ['backends', 'a']), [1, 14, 1]);
  assert.deepEqual(at(src, ['backends', 'a', 'dynamic']), [1, 20, 7]);
  assert.deepEqual(at(src, ['backends', 'b', 'type']), [1, 44, 4]);
  assert.deepEqual(at(src, ['z']), [2, 1, 1]);
});

test('arrays of tables get indexes', () => {
  const src = '[[x]]\na = 1\n[[x]]\na = 2\n[x.y]\nb = 3\n';
  assert.deepEqual(at(src, ['x', 0, 'a']), [2, 1, 1]);
  assert.deepEqual(at(src, ['x', 1, 'a']), [4, 1, 1]);
  assert.deepEqual(at(src, ['x', 1, 'y', 'b']), [6, 1, 1]);
});

test('dates with a space and CRLF line ends', () => {
  const src = 'd = 1979-05-27 07:32:00Z\r\ne = 1\r\n';
  assert.deepEqual(at(src, ['e']), [2, 1, 1]);
});

test('findSpan falls back to the closest enclosing key', () => {
  const spans = locateKeys('[backends.a]\ntype = "x"\n');
  assert.deepEqual(findSpan(spans, ['backends', 'a', 'target-address']), {
    line: 1,
    column: 11,
    length: 1,
  });
  assert.equal(findSpan(spans, ['nothing']), undefined);
});
