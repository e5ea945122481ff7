// Worker thread of a reload (docs/operations.md "Reloads"): reads, parses and checks one
// ACL with its list files — the heavy part — and hands back the diagnostics and the
// checked rules as plain data in chunks of v8-serialised blocks (transferred, not
// copied), which the main thread compiles a chunk per turn of its event loop.
import { serialize } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { checkAclFile } from '../../acl-lang/load.js';
import { plainPolicy, plainRoute } from '../../acl-lang/transfer.js';
import type { AttrType } from '../../acl-lang/types.js';

export interface AclWorkerInput {
  path: string;
  backends: string[] | null;
  attributes: [string, AttrType][];
  /** Blocks per chunk. */
  chunk: number;
}

export interface AclWorkerOutput {
  diagnostics: import('../../acl-lang/types.js').Diagnostic[];
  files: string[];
  hash: string;
  /** Null when the ACL has errors (then nothing follows). */
  attributes: string[] | null;
  policies: ArrayBuffer[];
  routes: ArrayBuffer[];
}

function chunks<T>(items: readonly T[], size: number, plain: (x: T) => unknown): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (let i = 0; i < items.length; i += size) {
    const b = serialize(items.slice(i, i + size).map(plain));
    // A Buffer may share a pooled ArrayBuffer: copy it into one of its own to transfer.
    out.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  }
  return out;
}

const input = workerData as AclWorkerInput;
const checked = await checkAclFile(input.path, {
  backends: input.backends === null ? null : new Set(input.backends),
  attributes: new Map(input.attributes),
});
const hir = checked.hir;
const out: AclWorkerOutput = {
  diagnostics: checked.diagnostics,
  files: checked.files,
  hash: checked.hash,
  attributes: hir ? [...hir.attributes] : null,
  policies: hir ? chunks(hir.policies, input.chunk, plainPolicy) : [],
  routes: hir ? chunks(hir.routes, input.chunk, plainRoute) : [],
};
parentPort?.postMessage(out, [...out.policies, ...out.routes]);
