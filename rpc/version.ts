// The package's version and home page, read from package.json (found from the sources
// in rpc/ or the compiled code in dist/rpc/).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface PackageInfo {
  version: string;
  url: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  cached = { version: '0.0.0', url: '' };
  for (const rel of ['../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(path)) continue;
    try {
      const pkg = JSON.parse(readFileSync(path, 'utf8')) as {
        name?: string;
        version?: string;
        homepage?: string;
        repository?: string | { url?: string };
      };
      if (pkg.name !== 'portail') continue;
      const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
      cached = { version: pkg.version ?? '0.0.0', url: pkg.homepage ?? repo ?? '' };
      break;
    } catch {
      // An unreadable package.json leaves the defaults.
    }
  }
  return cached;
}
