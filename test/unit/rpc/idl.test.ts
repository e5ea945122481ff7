import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdlSyntaxError, parseInterface, validateFields } from '../../../rpc/idl.js';
import { INTERFACE_NAMES, loadInterfaces } from '../../../rpc/interfaces.js';

describe('parseInterface', () => {
  it('rejects broken definitions with a line number', () => {
    const cases: [string, RegExp][] = [
      ['method A() -> ()', /expected "interface"/],
      ['interface noDots\n', /invalid interface name/],
      ['interface a.b\nmethod lower() -> ()', /line 2: invalid member name/],
      ['interface a.b\nmethod A(x: int', /end of the definition/],
      ['interface a.b\nmethod A(x: Unknown) -> ()', /unknown type "Unknown"/],
      ['interface a.b\ntype T (a: int, a: int)', /duplicate field/],
      ['interface a.b\nerror E ()\nerror E ()', /defined twice/],
      ['interface a.b\nmethod A(x: ??int) -> ()', /"\?\?"/],
      ['interface a.b\nfoo A ()', /expected type, method or error/],
      ['interface a.b\nmethod A(x: int) -> ($)', /unexpected character/],
    ];
    for (const [text, re] of cases) {
      assert.throws(
        () => parseInterface(text),
        (e: unknown) => e instanceof IdlSyntaxError && re.test((e as Error).message),
        text,
      );
    }
  });

  it('parses types, methods, errors, enums, maps and comments', () => {
    const iface = parseInterface(`# c
interface org.example.x
type T (a: ?[]string, b: [string]int, c: (one, two), d: (x: float))
# doc
method M(t: T, o: object) -> (r: bool)
error E (why: string)
`);
    assert.equal(iface.name, 'org.example.x');
    assert.deepEqual([...iface.methods.keys()], ['M']);
    assert.deepEqual(iface.errors.get('E'), [{ name: 'why', type: { kind: 'string' } }]);
    const t = iface.types.get('T');
    assert.equal(t?.kind, 'struct');
  });
});

describe('validateFields', () => {
  const iface = parseInterface(`interface org.example.v
type S (name: string, opt: ?int)
method M(s: S, list: []int, map: ?[string]string, e: ?(a, b), f: ?float, b: ?bool) -> ()`);
  const m = iface.methods.get('M');
  assert.ok(m);
  const check = (p: Record<string, unknown>, strict = true) =>
    validateFields(iface, m.input, p, { strict });

  it('names the first offending parameter, nested ones with a path', () => {
    assert.equal(check({}), 's');
    assert.equal(check({ s: null, list: [] }), 's');
    assert.equal(check({ s: { name: 1 }, list: [] }), 's.name');
    assert.equal(check({ s: { name: 'x', opt: 1.5 }, list: [] }), 's.opt');
    assert.equal(check({ s: { name: 'x', extra: 1 }, list: [] }), 's.extra');
    assert.equal(check({ s: { name: 'x' }, list: [1, 'a'] }), 'list[1]');
    assert.equal(check({ s: { name: 'x' }, list: [], map: { k: 1 } }), 'map.k');
    assert.equal(check({ s: { name: 'x' }, list: [], map: [] }), 'map');
    assert.equal(check({ s: { name: 'x' }, list: [], e: 'c' }), 'e');
    assert.equal(check({ s: { name: 'x' }, list: [], f: Number.NaN }), 'f');
    assert.equal(check({ s: { name: 'x' }, list: [], b: 0 }), 'b');
    assert.equal(check({ s: { name: 'x' }, list: [], unknown: 1 }), 'unknown');
  });

  it('accepts valid values; null or absent for optional ones; extra members when not strict', () => {
    assert.equal(
      check({
        s: { name: 'x', opt: null },
        list: [1, 2],
        map: { k: 'v' },
        e: 'a',
        f: 1.5,
        b: true,
      }),
      undefined,
    );
    assert.equal(check({ s: { name: 'x' }, list: [] }), undefined);
    assert.equal(check({ s: { name: 'x', extra: 1 }, list: [], more: 2 }, false), undefined);
  });
});

describe('served interfaces', () => {
  it('all parse, under their own names, with upstream’s names for fr.gouv.portail.Control', () => {
    const all = loadInterfaces();
    assert.deepEqual([...all.keys()], [...INTERFACE_NAMES]);
    const up = all.get('fr.gouv.portail.Control');
    assert.ok(up);
    assert.deepEqual([...up.methods.keys()].sort(), [
      'GetCurrentBackend',
      'ListBackends',
      'SetDefaultBackend',
      'UpdateDynamicBackend',
    ]);
    assert.deepEqual([...up.errors.keys()].sort(), [
      'BackendNotFound',
      'ImmutableBackend',
      'InvalidBackend',
      'PermissionDenied',
    ]);
    assert.deepEqual(
      up.errors.get('BackendNotFound')?.map((f) => f.name),
      ['provided_backend', 'available_backends'],
    );
    assert.deepEqual(up.methods.get('SetDefaultBackend')?.input, [
      { name: 'backend_id', type: { kind: 'optional', of: { kind: 'string' } } },
    ]);
    assert.deepEqual(
      up.methods.get('UpdateDynamicBackend')?.input.map((f) => f.name),
      ['backend_id', 'backend_spec'],
    );
    const spec = up.types.get('DynamicBackendSpec');
    assert.ok(spec && spec.kind === 'struct');
    assert.deepEqual(
      spec.fields.map((f) => f.name),
      ['target_address', 'identity_aware', 'tls_server_name'],
    );
    const item = up.types.get('BackendListItem');
    assert.ok(item && item.kind === 'struct');
    assert.deepEqual(
      item.fields.map((f) => f.name),
      ['id', 'current', 'dynamic', 'spec'],
    );
    const ours = all.get('io.portail.Control');
    assert.deepEqual(
      [...(ours?.methods.keys() ?? [])],
      ['Reload', 'Status', 'Explain', 'RecentDenials'],
    );
  });
});
