// Fuzz targets by name, for scripts/fuzz.mjs (`npm run fuzz -- <name>`). A new target
// (a TLS ClientHello parser, the SOCKS5 front-end…) is a module here and one line below.
import type { FuzzTarget } from '../target.js';
import { createHttp2Target } from './http2.js';

export const TARGETS: Record<string, () => FuzzTarget<unknown>> = {
  http2: () => createHttp2Target() as FuzzTarget<unknown>,
};
