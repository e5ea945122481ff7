// The interfaces the control socket serves, read from the *.varlink files beside the
// sources. Compiled code runs from dist/rpc/: the build copies the files there; from a
// checkout without that copy, the sources' folder is used.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type IdlInterface, parseInterface } from './idl.js';

export const SERVICE_INTERFACE = 'org.varlink.service';
export const UPSTREAM_INTERFACE = 'fr.gouv.portail.Control';
export const PORTAIL_INTERFACE = 'io.portail.Control';

/** In the order GetInfo lists them. */
export const INTERFACE_NAMES = [SERVICE_INTERFACE, UPSTREAM_INTERFACE, PORTAIL_INTERFACE] as const;

function idlPath(name: string): string {
  const candidates = [
    new URL(`./${name}.varlink`, import.meta.url),
    new URL(`../../rpc/${name}.varlink`, import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `interface definition ${name}.varlink not found (looked in ${candidates.join(', ')})`,
    );
  }
  return found;
}

let cache: Map<string, IdlInterface> | undefined;

/** Every served interface, parsed once. Throws if a definition is missing or invalid. */
export function loadInterfaces(): Map<string, IdlInterface> {
  if (cache) return cache;
  const map = new Map<string, IdlInterface>();
  for (const name of INTERFACE_NAMES) {
    const iface = parseInterface(readFileSync(idlPath(name), 'utf8'));
    if (iface.name !== name) throw new Error(`${name}.varlink defines ${iface.name}`);
    map.set(name, iface);
  }
  cache = map;
  return map;
}
