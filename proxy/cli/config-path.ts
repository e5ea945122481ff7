// Which configuration file `portail daemon` and `portail check` read without `-c`/`--config`
// (docs/reference/commands.md): ours, /etc/portail/portail.toml, unless it does not exist
// and upstream's /etc/portail.toml does — so that a host set up for upstream starts
// unchanged (docs/upstream.md). When neither exists, ours is named in the error.
import { existsSync } from 'node:fs';

export const OUR_DEFAULT = '/etc/portail/portail.toml';
export const UPSTREAM_DEFAULT = '/etc/portail.toml';

export function defaultConfigFile(exists: (path: string) => boolean = existsSync): string {
  if (exists(OUR_DEFAULT)) return OUR_DEFAULT;
  return exists(UPSTREAM_DEFAULT) ? UPSTREAM_DEFAULT : OUR_DEFAULT;
}
