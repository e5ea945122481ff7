// What a SOCKS5 UDP association needs from the pipeline, beyond a yes/no per datagram:
// the settings of the snapshot it opened under (idle-timeout, outgoing-address,
// public-address), the resolver of direct exits, and the association's `close` audit
// record — Pipeline.associate (proxy/types.ts, where the types live).
import type {
  AssociationHandle,
  DatagramRequest,
  DatagramSession,
  Pipeline,
  Refusal,
} from '../types.js';

export type {
  AssociationCloseReason,
  AssociationHandle,
  AssociationStats,
  DatagramRequest,
  DatagramSession,
  DatagramVerdict,
} from '../types.js';

/** Kept for the front-end's and tests' imports: every pipeline associates now. */
export type AssociatingPipeline = Pipeline;

export function isRefusal(x: DatagramSession | Refusal): x is Refusal {
  return !('decide' in x);
}

/** The pipeline's session for one association. */
export async function openSession(
  pipeline: Pipeline,
  req: DatagramRequest,
  handle: AssociationHandle,
): Promise<DatagramSession | Refusal> {
  return pipeline.associate(req, handle);
}
