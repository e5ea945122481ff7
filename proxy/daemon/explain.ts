// `portailctl explain`: dry-run the ACL for a hypothetical request. The context holds
// what the caller gave (host, port, user/uid, extra attributes converted to their
// declared type), the clock, and dst.ip resolved like a real request when the rules
// need it; everything else is missing, as it would be for a real request lacking it.

import { durationSeconds } from '../../acl-lang/checker.js';
import {
  type AclContext,
  type AttrType,
  type AttrValue,
  evaluate,
  KNOWN_ATTRIBUTES,
  normalizeHost,
} from '../../acl-lang/index.js';
import {
  type ExplainRequest,
  type ExplainResult,
  explainResultFromDecision,
  InvalidRequest,
} from '../../rpc/control-api.js';
import { localTime, PROVIDED_ATTRIBUTES } from '../context/request-context.js';
import { disclosure, explainAclContext } from '../explain/redact.js';
import { canonicalIp } from '../net/ip.js';
import type { Snapshot } from '../state/snapshot.js';

const TYPES: ReadonlyMap<string, AttrType> = new Map([...KNOWN_ATTRIBUTES, ...PROVIDED_ATTRIBUTES]);

/** A command-line string as the attribute's type; unknown attributes stay strings. */
export function convertAttr(name: string, text: string): AttrValue {
  const bad = (what: string) => new InvalidRequest(`${name}: "${text}" is not ${what}`);
  switch (TYPES.get(name)) {
    case 'number':
      if (!/^-?\d+$/.test(text)) throw bad('an integer');
      return Number(text);
    case 'bool':
      if (text !== 'true' && text !== 'false') throw bad('true or false');
      return text === 'true';
    case 'list':
      return text === '' ? [] : text.split(',').map((s) => s.trim());
    case 'duration':
      try {
        return /^\d+$/.test(text) ? Number(text) : durationSeconds(text);
      } catch {
        throw bad('a duration (e.g. 30s, 15m, 12h, 1d, 2wk)');
      }
    case 'ip': {
      const ip = canonicalIp(text, 'keep');
      if (ip === null) throw bad('an IP address');
      return ip;
    }
    case 'hostname': {
      const h = normalizeHost(text);
      if (h === null) throw bad('a host name');
      return h;
    }
    default:
      return text;
  }
}

/** What explain may look up about the caller (the socket table's user names). */
export interface CallerLookups {
  userName?: (uid: number) => Promise<string | undefined>;
}

export async function explainRequest(
  snap: Snapshot,
  defaultBackend: string | null,
  req: ExplainRequest,
  lookups: CallerLookups = {},
): Promise<ExplainResult> {
  // Zone ids kept: the host is then judged by normalizeHost below, which is more lenient
  // than the front-ends' normalizeTargetHost (listen/target.ts) anyway.
  const literal = canonicalIp(req.host, 'keep');
  const host = literal ?? normalizeHost(req.host);
  if (host === null) throw new InvalidRequest(`"${req.host}" is not a host name or IP address`);
  const values = new Map<string, AttrValue>([
    ['host', host],
    ['port', req.port],
  ]);
  if (literal !== null) values.set('dst.ip', literal);
  if (req.uid !== undefined) values.set('client.uid', req.uid);
  if (req.user !== undefined) values.set('client.user', req.user);
  for (const [k, v] of Object.entries(req.attrs)) values.set(k, convertAttr(k, v));
  const wants = (n: string) =>
    snap.acl?.attributes.has(n) || snap.explainAcl?.attributes.has(n) || false;
  if (wants('dst.ip') && !values.has('dst.ip')) {
    try {
      const all = await snap.services.resolver.lookup(host);
      if (all.length) values.set('dst.ip', all[0]);
    } catch {
      // Missing, as for a real request whose name does not resolve.
    }
  }
  const t = localTime(new Date());
  if (t && !values.has('time.hour')) values.set('time.hour', t.hour);
  if (t && !values.has('time.weekday')) values.set('time.weekday', t.weekday);
  const ctx: AclContext = { get: (n) => values.get(n) };
  const decision = evaluate(snap.acl, ctx, { defaultBackend });

  // What the caller may see: proxy/explain/redact.ts. Root sees everything.
  if (req.caller?.uid === 0) return explainResultFromDecision(decision);
  const wantsUser = snap.explainAcl?.attributes.has('client.user') === true;
  const caller =
    req.caller === null
      ? null
      : {
          uid: req.caller.uid,
          user: wantsUser ? await lookups.userName?.(req.caller.uid) : undefined,
        };
  const shown = disclosure(
    { configured: snap.config.explainAclRulesPath !== undefined, acl: snap.explainAcl },
    explainAclContext(values, caller),
  );
  switch (shown.show) {
    case 'full':
      return explainResultFromDecision(decision);
    case 'short':
      return explainResultFromDecision(decision, { redact: 'short' });
    case 'withheld':
      return explainResultFromDecision(decision, {
        redact: true,
        ...(shown.help !== undefined ? { message: `details withheld: see ${shown.help}` } : {}),
      });
  }
}
