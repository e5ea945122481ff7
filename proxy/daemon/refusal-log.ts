// What the daemon writes about refusals a peer can repeat at will — connections over
// max-connections, refused control calls and control connections, connections closed
// before any request (bad PROXY header, plaintext on a TLS-only listener, failed TLS),
// malformed requests — rate-limited per kind (audit/flood-guard.ts): the first ones are
// written as they come, the rest summarised once per interval. A flood then costs
// counters, not megabytes of journal (docs/security.md, "Logs and audit records").

import { formatHostPort } from '../../common/host-port.js';
import { createFloodGuard, type FloodGuardOptions } from '../audit/flood-guard.js';
import type { AuditWriter, Log } from '../audit/logging.js';
import { auditRecord } from '../audit/record.js';

export interface RefusalLog {
  /** A connection refused because max-connections was reached (a log warning). */
  overloaded(client: { ip: string; port: number }, maxConnections: number): void;
  /** A control call refused (PermissionDenied): audited. */
  controlCall(method: string, creds: { uid?: number; gid?: number; pid?: number } | null): void;
  /** A control connection closed at once (too many open for that uid, or in all). */
  controlConnection(uid: number | null, detail: string): void;
  /** A client connection closed before any request, for `reason`: audited. */
  connection(client: { ip: string; port: number }, reason: string): void;
  /** A request the front-end could not parse or refused as malformed: audited. */
  malformed(client: { ip: string; port: number }, protocol: string, reason: string): void;
  /** Records and lines left out so far. */
  readonly suppressed: number;
  /** Pending summaries written now (stop). */
  flush(): void;
}

/** Writes the summary of `n` occurrences left out in the last `seconds`. */
type Summary = (n: number, seconds: number) => void;

export function createRefusalLog(
  log: Log,
  audit: AuditWriter,
  limits: Pick<FloodGuardOptions, 'burst' | 'intervalMs' | 'maxKinds'> = {},
): RefusalLog {
  const guard = createFloodGuard({
    ...limits,
    // Kinds beyond maxKinds share one window and this summary.
    summarise: (_kind, n, ms) =>
      log.warn(
        `${n} more refusals of various kinds left out of the log in the last ${Math.round(ms / 1000)} s`,
      ),
  });
  const admit = (kind: string, summary: Summary): boolean =>
    guard.admit(kind, (n, ms) => summary(n, Math.round(ms / 1000)));
  const auditSummary =
    (what: string, fields: Record<string, unknown> = {}): Summary =>
    (n, s) =>
      audit.write(
        auditRecord('error', {
          reason: `${what}: ${n} more in the last ${s} s, not recorded one by one (rate limit)`,
          suppressed: n,
          ...fields,
        }),
      );

  return {
    overloaded(client, max) {
      const ok = admit('max-connections', (n, s) =>
        log.warn(
          `max-connections (${max}) reached: ${n} more connections refused in the last ${s} s`,
        ),
      );
      if (ok) log.warn(`max-connections (${max}) reached: refused ${client.ip}:${client.port}`);
    },
    controlCall(method, creds) {
      const uid = creds?.uid ?? null;
      const ok = admit(
        `control-call ${uid}`,
        auditSummary('control: calls refused (PermissionDenied)', { uid }),
      );
      if (!ok) return;
      audit.write(
        auditRecord('error', {
          reason: `control: ${method} refused (PermissionDenied)`,
          uid,
          caller_gid: creds?.gid ?? null,
          caller_pid: creds?.pid ?? null,
        }),
      );
    },
    controlConnection(uid, detail) {
      const who = uid === null ? 'unknown' : String(uid);
      const ok = admit(`control-connection ${who}`, (n, s) =>
        log.warn(
          `control socket: ${n} more connections from uid ${who} refused in the last ${s} s`,
        ),
      );
      if (ok) log.warn(`control socket: connection from uid ${who} refused (${detail})`);
    },
    connection(client, reason) {
      // One kind per cause ("PROXY protocol", "TLS handshake", ...), not per detail.
      const cause = reason.split(':')[0];
      const ok = admit(`connection ${cause}`, auditSummary(`connections refused (${cause})`));
      if (ok)
        audit.write(
          auditRecord('error', {
            client: formatHostPort({ host: client.ip, port: client.port }),
            reason,
          }),
        );
    },
    malformed(client, protocol, reason) {
      const ok = admit(
        `malformed ${protocol}`,
        auditSummary(`malformed ${protocol} requests refused`, { protocol }),
      );
      if (ok)
        audit.write(
          auditRecord('error', {
            client: formatHostPort({ host: client.ip, port: client.port }),
            protocol,
            reason: `malformed request: ${reason}`,
          }),
        );
    },
    get suppressed() {
      return guard.suppressed;
    },
    flush() {
      guard.flush();
    },
  };
}
