// SOCKS5 UDP ASSOCIATE (docs/usage.md "UDP", proxy/listen/README.md). The association gets a
// decision record of its own (allowed: each destination is then decided by the ACL)
// whose trace id its close record carries; it is registered like a relay (shutdown
// closes it, a reload makes it decide its destinations again). Datagrams only have the
// direct exit (connect/datagram-exit.ts says when a decision naming backends may use it).
import { type AuditRecord, auditRecord, formatEndpoint } from '../audit/record.js';
import { datagramExit } from '../connect/datagram-exit.js';
import type { RequestFacts } from '../context/request-context.js';
import type { CloseReason } from '../relay/index.js';
import type { AssociationHandle, DatagramSession, Refusal } from '../types.js';
import { type PipelineCore, STOPPING, settled, writeClose } from './core.js';
import { decide, fallbackVerdict, newTraceId, type Req, refusal } from './decide.js';
import { closeNote, notHandedOver, openEntry } from './open-relays.js';

export function associate(
  core: PipelineCore,
  req: Req,
  handle: AssociationHandle,
): DatagramSession | Refusal {
  if (core.stopping) return STOPPING;
  const snap = core.state.current();
  const started = Date.now();
  const traceId = newTraceId();
  const { target, protocol, cmd, client, cert } = req;
  const facts: RequestFacts = { target, protocol, cmd, client };
  if (cert) facts.cert = cert;
  const fields: Partial<AuditRecord> = {
    trace_id: traceId,
    protocol,
    client: formatEndpoint(client.ip, client.port),
    host: target.host,
    port: target.port,
    action: 'allow',
    route: 'direct',
    reason: 'UDP association opened: each destination is decided by the ACL',
  };
  core.audit.write(auditRecord('decision', fields));
  const { idleTimeoutMs, outgoingAddress, publicAddress } = snap.config;
  const entry = openEntry(
    traceId,
    fields,
    facts,
    {},
    undefined,
    idleTimeoutMs,
    'a UDP association',
  );
  entry.association = handle;
  const item = { close: (reason: CloseReason) => handle.close(reason) };
  core.registry.add(item, entry);
  let ended = false;
  return {
    idleTimeoutMs,
    ...(outgoingAddress !== undefined ? { outgoingAddress } : {}),
    ...(publicAddress !== undefined ? { publicAddress } : {}),
    decide: (dest) =>
      core.stopping || ended ? Promise.resolve({ send: false }) : decideDatagram(core, req, dest),
    resolve: (host) => snap.services.resolver.lookup(host),
    undeliverable(dest, why) {
      core.log.warn(
        `UDP association ${traceId}: datagrams to ${formatEndpoint(dest.host, dest.port)} dropped: ${why}`,
      );
    },
    closed(stats) {
      if (ended) return;
      ended = true;
      core.registry.delete(item);
      writeClose(
        core,
        fields,
        {
          bytesUp: stats.bytesUp,
          bytesDown: stats.bytesDown,
          durationMs: Math.max(stats.durationMs, Date.now() - started),
          closeReason: notHandedOver(entry, { closeReason: stats.closeReason }).closeReason,
        },
        closeNote(entry),
      );
      settled(core);
    },
  };
}

type Verdict = Awaited<ReturnType<DatagramSession['decide']>>;

/** One destination of an association: the ACL, then where a datagram may exit. */
async function decideDatagram(core: PipelineCore, req: Req, dest: Req['target']): Promise<Verdict> {
  try {
    const d = await decide(core, { ...req, target: dest }, true);
    if (d.decision.action !== 'allow') {
      await refusal(core, d);
      return { send: false };
    }
    if (d.dnsError) {
      core.audit.write(
        auditRecord('decision', {
          ...d.fields,
          reason: `${d.decision.reason}; ${d.dnsError.message}: datagrams dropped`,
        }),
      );
      return { send: false };
    }
    const exit = datagramExit(d.decision.backends, {
      fallbackToDirect: d.snap.config.fallbackToDirect,
      reevaluate: () => fallbackVerdict(d),
    });
    if (exit.direct) d.fields.route = 'direct';
    if (exit.note) d.fields.reason = `${d.decision.reason}; ${exit.note}`;
    core.audit.write(auditRecord('decision', d.fields));
    if (!exit.direct) return { send: false };
    const addresses = exit.addresses ?? d.addresses;
    return addresses ? { send: true, addresses } : { send: true };
  } catch (err) {
    core.log.error(`internal error on datagram to ${dest.host}: ${(err as Error).message}`);
    return { send: false };
  }
}
