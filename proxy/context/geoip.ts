// `[geoip] database`: a MaxMind DB (GeoLite2/GeoIP2 Country or City) read with the
// `maxmind` package, answering geo.country (client.ip) and dst.geo.country (dst.ip)
// with ISO 3166-1 alpha-2 codes. The whole file is loaded in memory once; a lookup is a
// tree walk (microseconds), done only when the ACL names a geo attribute.
// `maxmind` is imported when a database is opened: a daemon without [geoip] never
// loads it (docs/performance.md, "Footprint").
import type { Reader, Response } from 'maxmind';

export interface GeoLookup {
  /** Where the database was read from. */
  readonly path: string;
  /** ISO 3166-1 alpha-2 code (upper case) of `ip`, or undefined when the database does not know it. */
  country(ip: string): string | undefined;
}

interface CountryRecord {
  country?: { iso_code?: string };
  registered_country?: { iso_code?: string };
}

/** Opens the database; rejects with a message naming the file when it is not a MaxMind DB. */
export async function openGeoDatabase(path: string): Promise<GeoLookup> {
  let reader: Reader<Response>;
  try {
    // No watchForUpdates: a new file is taken at reload, like every other file.
    const { open } = await import('maxmind');
    reader = await open<Response>(path);
  } catch (err) {
    throw new Error(`[geoip] database "${path}": ${(err as Error).message}`);
  }
  return {
    path,
    country(ip) {
      let rec: CountryRecord | null;
      try {
        rec = reader.get(ip) as CountryRecord | null;
      } catch {
        return undefined; // not an IP address
      }
      // Where the address is located; for networks without a location (anycast,
      // satellite), the country the network is registered in.
      const code = rec?.country?.iso_code ?? rec?.registered_country?.iso_code;
      return typeof code === 'string' && /^[A-Z]{2}$/.test(code) ? code : undefined;
    },
  };
}

// The pipeline builds each request's context from the snapshot's services, which do
// not carry the database (yet): the daemon installs it here at start and on reload,
// and a context without an explicit `geo` service uses it.
let installed: GeoLookup | undefined;

/** The database the daemon installed (undefined: no [geoip] database, geo.* are missing). */
export function installedGeoDatabase(): GeoLookup | undefined {
  return installed;
}

export function installGeoDatabase(geo: GeoLookup | undefined): void {
  installed = geo;
}
