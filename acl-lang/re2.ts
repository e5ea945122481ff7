// The `re2` native addon is loaded by the first regular expression an ACL uses, not by
// every process that reads an ACL (docs/performance.md, "Footprint"); kept once loaded.
// Synchronous on purpose: regexes are built inside the (synchronous) checker and
// compiler, once per ACL load, never per request.
import { createRequire } from 'node:module';
import type RE2 from 're2';

const require = createRequire(import.meta.url);
let loaded: typeof RE2 | undefined;

/** The RE2 class (`new (re2())(source, 'u')`). */
export function re2(): typeof RE2 {
  loaded ??= require('re2') as typeof RE2;
  return loaded;
}
