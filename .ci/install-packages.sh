#!/usr/bin/env bash
# Installs every Debian package listed in .ci/packages.txt (root, Debian 12), without
# letting apt start the services it installs: nginx, squid, tinyproxy, danted, ssh,
# haproxy, dnsmasq and prometheus would otherwise grab ports (80, 3128, 8888, 1080, 22,
# 53, 9090) that
# the tests bind on loopback. A policy-rc.d answering 101 ("action forbidden") makes
# invoke-rc.d skip every start; it is removed afterwards, whatever happens.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$')

if [ "$(id -u)" -ne 0 ]; then
  echo "install-packages.sh: run as root (apt-get install)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
had_policy=0
if [ -e "$policy" ]; then
  had_policy=1
  cp -p "$policy" "$policy.portail-saved"
fi
restore_policy() {
  if [ "$had_policy" = 1 ]; then mv -f "$policy.portail-saved" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# written by portail .ci/install-packages.sh: no service starts during install\nexit 101\n' >"$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null

# Belt and braces: if a service was already running before (a developer machine, or
# an install done without this script), stop it. Without systemd as PID 1 `service`
# goes through the init scripts; failures are fine (not running).
for svc in nginx squid tinyproxy danted ssh haproxy dnsmasq prometheus prometheus-node-exporter; do
  service "$svc" stop >/dev/null 2>&1 || true
done
# microsocks has no service; a stray one from an earlier run would hold its port.
echo "installed: ${pkgs[*]}"
