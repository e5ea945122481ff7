// Where a SOCKS5 UDP datagram may go, given the decision that allowed it. No backend
// carries datagrams (SOCKS5 UDP ASSOCIATE through an upstream, UDP over a gateway or
// an SSH bastion are not implemented), so a backend candidate is a candidate that
// fails at once, and fallback-to-direct (docs/acl.md, "Evaluation") decides what follows
// exactly as for TCP:
//   - no candidate (no route matched, no default backend): the direct exit;
//   - `direct` in the candidate list: the direct exit at that position (the backends
//     before it cannot carry the datagram);
//   - only backends: with `fallback-to-direct`, the policies evaluated again with
//     `route.local = true` decide, and only their allow lets the datagram out directly
//     (to the addresses that evaluation allowed); otherwise it is dropped.
// A backend that cannot carry a datagram is not at fault: nothing is reported to its
// health. The caller (the UDP front-end) runs the re-evaluation lazily, through
// `reevaluate`, and only when this function asks for it.
import { DIRECT, type FallbackVerdict } from './failover.js';

/** The fallback re-evaluation's answer: the same as for a TCP exit. */
export type DatagramFallbackVerdict = FallbackVerdict;

export interface DatagramExitOptions {
  /** `fallback-to-direct` of the snapshot in force. */
  fallbackToDirect: boolean;
  /** The policies evaluated again with route.local = true; called at most once. */
  reevaluate: () => DatagramFallbackVerdict;
}

export type DatagramExit =
  | {
      direct: true;
      /** `decision`: the decision itself exits directly; `fallback`: the re-evaluation allowed it. */
      via: 'decision' | 'fallback';
      /** For the audit record's reason (empty when the decision needs no comment). */
      note: string;
      /** Set by a fallback whose evaluation checked dst.ip: send to these only. */
      addresses?: string[];
    }
  | {
      direct: false;
      /** Why the datagram is dropped, for the audit record. */
      note: string;
    };

/**
 * Whether a datagram allowed with these candidates (the decision's ordered backends)
 * may leave directly. Never true for a decision that names only backends unless the
 * fallback-to-direct re-evaluation allows it.
 */
export function datagramExit(
  candidates: readonly string[],
  opts: DatagramExitOptions,
): DatagramExit {
  if (candidates.length === 0) return { direct: true, via: 'decision', note: '' };
  const at = candidates.indexOf(DIRECT);
  if (at === 0) return { direct: true, via: 'decision', note: '' };
  const backends = [...new Set(candidates.slice(0, at < 0 ? candidates.length : at))];
  const cannot = `UDP cannot go through backend${backends.length > 1 ? 's' : ''} ${backends.join(', ')}`;
  if (at > 0) return { direct: true, via: 'decision', note: `direct (${cannot})` };
  if (!opts.fallbackToDirect)
    return { direct: false, note: `${cannot}; fallback-to-direct is off: datagram dropped` };
  const verdict = opts.reevaluate();
  if (!verdict.allowed)
    return {
      direct: false,
      note: `${cannot}; fallback-to-direct refused by the ACL (${verdict.reason}): datagram dropped`,
    };
  const out: DatagramExit = {
    direct: true,
    via: 'fallback',
    note: `fallback-to-direct (${verdict.reason}) after: ${cannot}`,
  };
  if (verdict.addresses !== undefined) out.addresses = [...verdict.addresses];
  return out;
}
