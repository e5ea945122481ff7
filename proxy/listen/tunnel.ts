// Handing a CONNECT-like request to the pipeline, shared by every front-end: accept
// and reject take effect once, and a pipeline that fails or returns without answering
// still leaves the client with an answer (internal error) rather than hanging.
import type { Duplex } from 'node:stream';
import type { ProxyRequest, Refusal } from '../types.js';
import type { FrontEndContext } from './frontend.js';

export interface WireAnswer {
  accept(bound: { address: string; port: number }): Duplex;
  reject(refusal: Refusal): void;
}

export const INTERNAL_REFUSAL: Refusal = { reason: 'internal', message: 'internal proxy error' };

export function runTunnel(
  ctx: FrontEndContext,
  request: Omit<ProxyRequest, 'accept' | 'reject'>,
  wire: WireAnswer,
): void {
  let answered = false;
  const req: ProxyRequest = {
    ...request,
    accept(bound) {
      if (answered) throw new Error('proxy request already answered');
      answered = true;
      return wire.accept(bound);
    },
    reject(refusal) {
      if (answered) return;
      answered = true;
      wire.reject(refusal);
    },
  };
  let pending: Promise<void>;
  try {
    pending = ctx.pipeline.tunnel(req);
  } catch (err) {
    pending = Promise.reject(err);
  }
  pending.then(
    () => {
      if (!answered) {
        ctx.reportError(new Error('pipeline.tunnel returned without answering'), 'tunnel');
        req.reject(INTERNAL_REFUSAL);
      }
    },
    (err: unknown) => {
      ctx.reportError(err, 'tunnel');
      req.reject(INTERNAL_REFUSAL);
    },
  );
}
