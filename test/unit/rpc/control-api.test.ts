import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decision } from '../../../acl-lang/index.js';
import { explainResultFromDecision } from '../../../rpc/control-api.js';

const decision: Decision = {
  action: 'deny',
  policy: 'deny_all',
  routes: ['corp'],
  backends: ['par01', 'direct'],
  local: false,
  tags: ['audit'],
  failed: [
    {
      policy: 'eng_git',
      action: 'allow',
      clause: 'require',
      expression: 'user.groups in ["eng"] and device.trust_level >= 2',
      result: 'unknown',
      comparisons: [
        {
          text: 'user.groups in ["eng"]',
          attribute: 'user.groups',
          actual: ['ops', 'qa'],
          result: 'false',
        },
        {
          text: 'device.trust_level >= 2',
          attribute: 'device.trust_level',
          actual: undefined,
          result: 'unknown',
        },
        {
          text: 'port == 9223372036854775807',
          attribute: 'port',
          actual: 9223372036854775807n,
          result: 'false',
        },
      ],
    },
  ],
  missing: ['device.trust_level'],
  reason: 'denied by policy deny_all',
};

describe('explainResultFromDecision', () => {
  it('keeps every detail, with values written as the ACL language writes them', () => {
    const r = explainResultFromDecision(decision);
    assert.equal(r.action, 'deny');
    assert.equal(r.policy, 'deny_all');
    assert.deepEqual(r.backends, ['par01', 'direct']);
    assert.deepEqual(
      r.failed[0].comparisons.map((c) => c.seen),
      ['["ops", "qa"]', null, '9223372036854775807'],
    );
    assert.deepEqual(r.missing, ['device.trust_level']);
    assert.equal(r.redacted, false);
    assert.match(r.explanation, /^denied by policy deny_all\n {2}policy eng_git: require/);
    assert.match(r.explanation, /device\.trust_level = missing/);
    // JSON-safe: no bigint, no undefined values left.
    assert.doesNotThrow(() => JSON.stringify(r));
  });

  it('redacted: the decision and route only — no policy, requirement or value', () => {
    const r = explainResultFromDecision(decision, { redact: true });
    assert.equal(r.action, 'deny');
    assert.equal(r.policy, null);
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.missing, []);
    assert.equal(r.redacted, true);
    assert.doesNotMatch(`${r.reason} ${r.explanation}`, /deny_all|eng_git|trust_level|ops/);
    const help = explainResultFromDecision(decision, {
      redact: true,
      message: 'see https://help.example.com/access',
    });
    assert.equal(help.explanation, 'see https://help.example.com/access');
  });
});
