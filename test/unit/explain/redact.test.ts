// The one redaction rule (proxy/explain/redact.ts), through `portailctl explain` and
// `why`'s records: the cases where the refusal and explain used to differ.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Decision } from '../../../acl-lang/index.js';
import { compileAclSource } from '../../../acl-lang/index.js';
import { createControlBackend } from '../../../proxy/daemon/control.js';
import { disclosure } from '../../../proxy/explain/redact.js';
import { createState } from '../../../proxy/state/index.js';
import type { DenialRecord, ExplainRequest } from '../../../rpc/control-api.js';
import { explainResultFromDecision } from '../../../rpc/control-api.js';
import { config, Lines, Records, tempDir } from '../pipeline/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());

const ACL = `
policy eng { when port == 443 require client.user == "alice" action allow }
policy deny_all { action deny }
`;
const USERS = new Map([
  [1000, 'bob'],
  [1001, 'alice'],
]);

let n = 0;
async function control(explainAcl?: string) {
  n++;
  const acl = tmp.write(`r${n}.acl`, ACL);
  const extra = explainAcl
    ? `explain-acl-rules-path = ${JSON.stringify(tmp.write(`e${n}.acl`, explainAcl))}\n`
    : '';
  const cfg = tmp.write(`r${n}.toml`, config(acl, `watch-acl = false\n${extra}`));
  const state = await createState({ configPath: cfg, log: new Lines(), audit: new Records() });
  return createControlBackend({
    state,
    startedAt: new Date(),
    listeners: () => [],
    activeConnections: () => 0,
    reload: () => state.reload('rpc'),
    userName: async (uid) => USERS.get(uid),
  });
}

const ask = (uid: number, more: Partial<ExplainRequest> = {}): ExplainRequest => ({
  host: 'example.com',
  port: 443,
  user: 'bob',
  attrs: {},
  caller: { uid, gid: uid, pid: 1 },
  ...more,
});

test('no explain ACL: the short form for a user (as a refused client gets), everything for root', async () => {
  const c = await control();
  const bob = await c.explain(ask(1000));
  assert.equal(bob.action, 'deny');
  assert.equal(bob.policy, 'deny_all');
  assert.equal(bob.reason, 'denied by policy deny_all');
  assert.equal(bob.explanation, 'denied by policy deny_all');
  assert.deepEqual(bob.failed, []);
  assert.deepEqual(bob.missing, []);
  assert.equal(bob.redacted, true);
  const root = await c.explain(ask(0));
  assert.equal(root.redacted, false);
  assert.equal(root.failed[0]?.policy, 'eng');
  assert.match(root.explanation, /client\.user = "bob"/);
});

test('the explain ACL judges the caller, not the user or attributes the caller names', async () => {
  const c = await control(
    'policy own { when client.user == "alice" action allow }\npolicy trusted { when device.trust_level >= 2 action allow }\npolicy rest { action deny }\n',
  );
  // bob asking about alice's request, or claiming to be alice, sees nothing more.
  for (const req of [
    ask(1000, { user: 'alice' }),
    ask(1000, { attrs: { 'client.user': 'alice' } }),
    ask(1000, { attrs: { 'device.trust_level': '3' } }),
    ask(4242, { user: 'alice' }), // a uid without a name
  ]) {
    const r = await c.explain(req);
    assert.equal(r.redacted, true, JSON.stringify(req));
    assert.equal(r.policy, null);
    assert.deepEqual(r.failed, []);
    assert.doesNotMatch(`${r.reason} ${r.explanation}`, /deny_all|eng|alice/);
  }
  // alice herself sees everything, whoever she asks about.
  const alice = await c.explain(ask(1001, { user: 'bob' }));
  assert.equal(alice.redacted, false);
  assert.equal(alice.policy, 'deny_all');
  assert.equal(alice.failed[0]?.policy, 'eng');
});

test('explain ACL redirect: withheld, pointing to the help page; unknown caller: withheld', async () => {
  const c = await control('policy help { action redirect "https://help.example/access" }\n');
  const r = await c.explain(ask(1000));
  assert.equal(r.redacted, true);
  assert.equal(r.policy, null);
  assert.equal(r.explanation, 'details withheld: see https://help.example/access');
  const hidden = await control('policy own { when client.uid == 1000 action allow }\n');
  assert.equal((await hidden.explain(ask(1000))).redacted, false);
  assert.equal((await hidden.explain({ ...ask(1000), caller: null })).redacted, true);
});

const denial = (explanation: string): DenialRecord => ({
  time: new Date(),
  uid: 1000,
  host: 'example.com',
  port: 443,
  policy: 'deny_all',
  reason: 'denied by policy deny_all (its conditions could not be ruled out: missing x.y)',
  explanation,
  traceId: 't',
});

test('why: a record says what the client was told, no more', async () => {
  const withAcl = await control('policy rest { action deny }\n');
  withAcl.recordDenial(denial('access denied by policy'));
  const [hidden] = withAcl.recentDenials(1000, 1);
  assert.equal(hidden?.policy, null);
  assert.equal(hidden?.reason, 'access denied by policy');
  const without = await control();
  without.recordDenial(denial('denied by policy deny_all'));
  const [short] = without.recentDenials(null, 1);
  assert.equal(short?.policy, 'deny_all');
  assert.equal(short?.reason, 'denied by policy deny_all');
});

test('disclosure: no explain ACL = short, one that cannot be loaded = withheld', () => {
  const ctx = { get: () => undefined };
  assert.deepEqual(disclosure({ configured: false, acl: null }, ctx), { show: 'short' });
  assert.deepEqual(disclosure({ configured: true, acl: null }, ctx), { show: 'withheld' });
  const acl = compileAclSource('policy p { action allow }\n', 'e.acl');
  assert.ok(acl.acl);
  assert.deepEqual(disclosure({ configured: true, acl: acl.acl }, ctx), { show: 'full' });
});

test("explainResultFromDecision 'short': the deciding policy, no detail", () => {
  const d: Decision = {
    action: 'allow',
    policy: 'web',
    routes: [],
    backends: [],
    local: false,
    tags: [],
    failed: [],
    missing: ['device.trust_level'],
    reason:
      'allowed by policy web (its conditions could not be ruled out: missing device.trust_level)',
  };
  const r = explainResultFromDecision(d, { redact: 'short' });
  assert.equal(r.policy, 'web');
  assert.equal(r.reason, 'allowed by policy web');
  assert.equal(r.explanation, 'allowed by policy web');
  assert.deepEqual(r.missing, []);
  assert.equal(r.redacted, true);
});
