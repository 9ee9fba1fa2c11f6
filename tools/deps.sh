#!/bin/sh
# Installs the Debian packages exhibit needs to build, run and test; does nothing when all
# are present. Uses sudo when not root.
set -eu
PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev libvips-dev libexif-dev libsqlite3-dev
libmicrohttpd-dev libssl-dev libjansson-dev libvlfeat-dev python3 curl libimage-exiftool-perl chromium
fonts-dejavu-core libvips-tools"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The browser tests drive Debian's Chromium with playwright-core from npm (no browser download).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "deps: npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
