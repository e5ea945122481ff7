// Loading an ACL for a reload without blocking the event loop (docs/operations.md
// "Reloads"): a worker thread reads, parses and checks it (seconds for 150,000
// policies); the main thread then compiles the checked blocks into closures a chunk at
// a time, yielding between chunks, so that open relays never wait on a reload.
import { deserialize } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { AclCompiler } from '../../acl-lang/compile.js';
import type { AttrType, Diagnostic, LoadResult } from '../../acl-lang/index.js';
import {
  livePolicy,
  liveRoute,
  type PlainPolicy,
  type PlainRoute,
} from '../../acl-lang/transfer.js';
import type { AclWorkerInput, AclWorkerOutput } from './acl-worker.js';

/** A worker that has not answered by then is stopped: the reload fails (docs/security.md). */
export const ACL_LOAD_TIMEOUT_MS = 120_000;
/** Blocks per chunk: about 5 ms to deserialise and compile 100 simple policies. */
export const ACL_CHUNK_BLOCKS = 100;
/** The main thread yields to the event loop once a slice of chunks has taken this long. */
const SLICE_MS = 8;

export interface OffThreadOptions {
  backends?: ReadonlySet<string> | null;
  attributes?: ReadonlyMap<string, AttrType>;
  timeoutMs?: number;
}

/** A problem with the whole file (no position): rendered `FILE: error: message`. */
function fileError(file: string, message: string): Diagnostic {
  return { severity: 'error', file, line: 0, column: 0, length: 1, message, sourceLine: '' };
}

function runWorker(input: AclWorkerInput, timeoutMs: number): Promise<AclWorkerOutput> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./acl-worker.js', import.meta.url), { workerData: input });
    let settled = false;
    const done = (err: Error | null, out?: AclWorkerOutput) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      if (err) reject(err);
      else resolve(out as AclWorkerOutput);
    };
    const timer = setTimeout(
      () => done(new Error(`the ACL loader did not finish within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    worker.once('message', (out: AclWorkerOutput) => done(null, out));
    worker.once('error', (err) => done(new Error(`the ACL loader failed: ${err.message}`)));
    worker.once('exit', (code) => done(new Error(`the ACL loader exited (code ${code})`)));
  });
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** Like loadAclFile, in a worker thread; never throws (a failure is a diagnostic). */
export async function loadAclOffThread(
  path: string,
  opts: OffThreadOptions = {},
): Promise<LoadResult> {
  let out: AclWorkerOutput;
  try {
    out = await runWorker(
      {
        path,
        backends: opts.backends ? [...opts.backends] : null,
        attributes: [...(opts.attributes ?? new Map())],
        chunk: ACL_CHUNK_BLOCKS,
      },
      opts.timeoutMs ?? ACL_LOAD_TIMEOUT_MS,
    );
  } catch (err) {
    return { acl: null, diagnostics: [fileError(path, (err as Error).message)], files: [path] };
  }
  const { diagnostics, files } = out;
  if (out.attributes === null) return { acl: null, diagnostics, files };
  try {
    const compiler = new AclCompiler();
    let sliceStart = performance.now();
    const slice = async () => {
      if (performance.now() - sliceStart < SLICE_MS) return;
      await nextTurn();
      sliceStart = performance.now();
    };
    for (const buf of out.policies) {
      for (const p of deserialize(new Uint8Array(buf)) as PlainPolicy[])
        compiler.addPolicy(livePolicy(p));
      await slice();
    }
    for (const buf of out.routes) {
      for (const r of deserialize(new Uint8Array(buf)) as PlainRoute[])
        compiler.addRoute(liveRoute(r));
      await slice();
    }
    await nextTurn();
    const acl = compiler.finish(path, out.hash, files, new Set(out.attributes));
    return { acl, diagnostics, files };
  } catch (err) {
    const d = fileError(path, `cannot compile the ACL: ${(err as Error).message}`);
    return { acl: null, diagnostics: [...diagnostics, d], files };
  }
}
