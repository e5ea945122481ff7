// How an aborted lookup or connect is reported. The pipeline aborts when its own
// deadline passes or the client went away: both are reported as a timeout (SOCKS
// 0x06, HTTP 504), which is what a client still listening should be told.
import { ConnectError } from '../types.js';

export function abortError(signal: AbortSignal, what: string): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  const detail = reason instanceof Error && reason.message ? `: ${reason.message}` : '';
  return new ConnectError('timeout', `${what} aborted${detail}`);
}
