// The request's audit fields, read from what the context computed anyway: the audit
// never triggers a lookup of its own (docs/acl.md, "Attributes": an attribute no rule references costs
// nothing), so uid/user/process appear when the rules needed them.
import type { AclContext, AttrValue, Decision } from '../../acl-lang/index.js';
import { type AuditRecord, formatEndpoint } from '../audit/record.js';
import type { ProxyRequest } from '../types.js';

type Req = Omit<ProxyRequest, 'accept' | 'reject'>;

const str = (v: AttrValue | undefined): string | null => (typeof v === 'string' ? v : null);

export function requestFields(req: Req, ctx: AclContext, traceId: string): Partial<AuditRecord> {
  const uid = ctx.get('client.uid');
  return {
    trace_id: traceId,
    protocol: req.protocol,
    client: formatEndpoint(req.client.ip, req.client.port),
    uid: typeof uid === 'number' ? uid : null,
    // The identity provider's user when known, else the local account.
    user: str(ctx.get('user.email')) ?? str(ctx.get('user.sub')) ?? str(ctx.get('client.user')),
    process: str(ctx.get('client.process.exe')) ?? str(ctx.get('client.process.name')),
    device: str(ctx.get('device.id')),
    host: req.target.host,
    port: req.target.port,
  };
}

/** A decision record's fields in one object, every key in a fixed order (the request's,
 * then the decision's: assigned, not spread, on every request's path). */
export function decisionRecordFields(
  req: Req,
  ctx: AclContext,
  traceId: string,
  d: Decision,
  evalUs: number,
): Partial<AuditRecord> {
  const f = requestFields(req, ctx, traceId);
  f.action = d.action;
  f.policy = d.policy;
  f.route = routeOf(d);
  f.reason = d.reason;
  f.tags = d.tags.length === 0 ? [] : [...d.tags];
  f.eval_us = evalUs;
  return f;
}

/** `direct`, or the candidate backends in order. */
export function routeOf(d: Decision): string {
  return d.backends.length === 0 ? 'direct' : d.backends.join(',');
}
