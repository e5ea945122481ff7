// The candidate loop (docs/backends.md, "Candidates and failover"): backends tried in
// order, each with its own connect-timeout (the opener enforces it), a backend in its
// back-off period skipped. When every candidate is backed off they are all tried anyway:
// refusing without a single attempt would only turn a short outage into a longer one. No
// ACL here: the caller decides what happens when everything failed (fallback-to-direct).
import { ConnectError } from '../types.js';
import type { BackendRegistry } from './backends.js';

/** The reserved candidate name for the direct exit. */
export const DIRECT = 'direct';

export interface Attempt {
  backend: string;
  error: ConnectError;
}

export type ChainOutcome<T> =
  | { ok: true; value: T; backend: string; failures: Attempt[]; skipped: string[] }
  | { ok: false; failures: Attempt[]; skipped: string[] };

export async function tryCandidates<T>(
  candidates: readonly string[],
  open: (name: string) => Promise<T>,
  health: Pick<BackendRegistry, 'backedOff' | 'reportFailure' | 'reportSuccess'>,
  signal?: AbortSignal,
): Promise<ChainOutcome<T>> {
  const skipped = candidates.filter((c) => c !== DIRECT && health.backedOff(c));
  const order =
    skipped.length === candidates.length
      ? candidates
      : candidates.filter((c) => !skipped.includes(c));
  const failures: Attempt[] = [];
  for (const name of order) {
    if (signal?.aborted) break;
    try {
      const value = await open(name);
      if (name !== DIRECT) health.reportSuccess(name);
      return {
        ok: true,
        value,
        backend: name,
        failures,
        skipped: skipped.filter((s) => order.includes(s) === false),
      };
    } catch (err) {
      const e =
        err instanceof ConnectError ? err : new ConnectError('internal', (err as Error).message);
      // Shutting down is nobody's fault.
      if (name !== DIRECT && !signal?.aborted) health.reportFailure(name, e);
      failures.push({ backend: name, error: e });
    }
  }
  return { ok: false, failures, skipped: skipped.filter((s) => !order.includes(s)) };
}

/** One line for the audit record and the client: every attempt and why it failed. */
export function describeFailures(o: { failures: Attempt[]; skipped: string[] }): string {
  const parts = o.failures.map((f) => f.error.message);
  if (o.skipped.length) parts.push(`skipped (backing off): ${o.skipped.join(', ')}`);
  return parts.join('; ');
}
