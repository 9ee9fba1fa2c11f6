#!/bin/sh
# Installs the Debian packages exhibit needs to build, run and test; does nothing when all
# are present. Uses sudo when not root.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev libvips-dev libexif-dev libsqlite3-dev
libmicrohttpd-dev libssl-dev libjansson-dev python3 curl libimage-exiftool-perl"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
