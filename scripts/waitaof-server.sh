#!/usr/bin/env bash
# Fetches a server that knows WAITAOF (Valkey 8, forked from Redis 7.2) from the Debian
# backports suite of the mirror this machine already uses, unpacks it under the given folder,
# and prints the path of its server binary. Nothing is installed: apt runs with its own sources
# list and lists folder under that folder, and the packages are only unpacked.
#
#   server=$(bash scripts/waitaof-server.sh /opt/stock-ledger-valkey)
set -euo pipefail

root="${1:?usage: waitaof-server.sh <folder>}"
if [ -x "$root/unpacked/usr/bin/valkey-server" ]; then
  echo "$root/unpacked/usr/bin/valkey-server"
  exit 0
fi
. /etc/os-release
mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
fi
[ -n "$mirror" ] || { echo "no Debian mirror configured on this machine" >&2; exit 1; }

mkdir -p "$root/lists/partial" "$root/debs" "$root/unpacked"
echo "deb $mirror ${VERSION_CODENAME}-backports main" > "$root/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$root/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$root/lists" -qq)
apt-get "${apt_opts[@]}" update >&2
(cd "$root/debs" && apt-get "${apt_opts[@]}" download valkey-server valkey-tools >&2 2>/dev/null)
for deb in "$root"/debs/*.deb; do dpkg-deb -x "$deb" "$root/unpacked"; done
"$root/unpacked/usr/bin/valkey-server" --version >&2
echo "$root/unpacked/usr/bin/valkey-server"
