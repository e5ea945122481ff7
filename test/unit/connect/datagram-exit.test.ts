// datagramExit: a UDP datagram whose decision names backends never leaves directly
// unless the fallback-to-direct re-evaluation (route.local = true; docs/acl.md,
// "Evaluation") allows it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type DatagramFallbackVerdict,
  datagramExit,
} from '../../../proxy/connect/datagram-exit.js';

/** A re-evaluation that counts its calls. */
function verdict(v: DatagramFallbackVerdict) {
  let calls = 0;
  return {
    reevaluate: () => {
      calls++;
      return v;
    },
    calls: () => calls,
  };
}

const ALLOW: DatagramFallbackVerdict = { allowed: true, reason: 'allowed by policy dns' };
const DENY: DatagramFallbackVerdict = {
  allowed: false,
  reason: 'denied by policy only_via_gateway',
};

test('unhappy: only backends and fallback-to-direct off: dropped, no re-evaluation', () => {
  const v = verdict(ALLOW);
  const out = datagramExit(['gw1', 'gw2'], { fallbackToDirect: false, ...v });
  assert.equal(out.direct, false);
  assert.match(out.note, /UDP cannot go through backends gw1, gw2; fallback-to-direct is off/);
  assert.equal(v.calls(), 0);
});

test('unhappy: only backends, the re-evaluation denies (route.local == false policy): dropped', () => {
  const v = verdict(DENY);
  const out = datagramExit(['gw'], { fallbackToDirect: true, ...v });
  assert.equal(out.direct, false);
  assert.match(
    out.note,
    /fallback-to-direct refused by the ACL \(denied by policy only_via_gateway\)/,
  );
  assert.equal(v.calls(), 1);
});

test('only backends, the re-evaluation allows: direct by fallback, to the addresses it checked', () => {
  const v = verdict({ ...ALLOW, addresses: ['192.0.2.7'] });
  const out = datagramExit(['gw', 'gw'], { fallbackToDirect: true, ...v });
  assert.deepEqual(out, {
    direct: true,
    via: 'fallback',
    note: 'fallback-to-direct (allowed by policy dns) after: UDP cannot go through backend gw',
    addresses: ['192.0.2.7'],
  });
  assert.equal(v.calls(), 1);
});

test('no candidate, or `direct` first: the decision itself exits directly, no re-evaluation', () => {
  for (const c of [[], ['direct'], ['direct', 'gw']]) {
    const v = verdict(DENY);
    const out = datagramExit(c, { fallbackToDirect: false, ...v });
    assert.deepEqual(out, { direct: true, via: 'decision', note: '' }, JSON.stringify(c));
    assert.equal(v.calls(), 0);
  }
});

test('`direct` after backends: direct at its position, the skipped backends named', () => {
  const v = verdict(DENY);
  const out = datagramExit(['gw', 'direct'], { fallbackToDirect: false, ...v });
  assert.deepEqual(out, {
    direct: true,
    via: 'decision',
    note: 'direct (UDP cannot go through backend gw)',
  });
  assert.equal(v.calls(), 0);
});

test('property: direct only when the decision allows it or the re-evaluation does', () => {
  const name = fc.constantFrom('direct', 'gw1', 'gw2', 'bastion');
  fc.assert(
    fc.property(
      fc.array(name, { maxLength: 5 }),
      fc.boolean(),
      fc.boolean(),
      (candidates, fallbackToDirect, allowed) => {
        const v = verdict({ allowed, reason: 'r' });
        const out = datagramExit(candidates, { fallbackToDirect, ...v });
        const decisionDirect = candidates.length === 0 || candidates.includes('direct');
        assert.equal(out.direct, decisionDirect || (fallbackToDirect && allowed));
        // The re-evaluation runs only when it decides something.
        assert.equal(v.calls(), !decisionDirect && fallbackToDirect ? 1 : 0);
        if (out.direct) assert.equal(out.via, decisionDirect ? 'decision' : 'fallback');
      },
    ),
  );
});
