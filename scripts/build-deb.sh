#!/bin/sh
# build-deb.sh OUTDIR - builds chimera's Debian package (`make deb`).
#
# dpkg-buildpackage wants debian/ at the top of the source tree and writes
# its results into the tree's parent directory; neither suits a working
# copy.  So the tree (without .git, build directories and other scratch) is
# copied into a temporary directory with packaging/debian as debian/, the
# package is built there, and the .deb, .buildinfo and .changes land in
# OUTDIR.  The copy is removed on every way out.
#
# The packaging tools are not build dependencies of chimera itself, so
# `make deps` leaves them out; they are installed here, as root, when
# missing (a non-root user is told the command instead).
set -eu

PACKAGES="debhelper dpkg-dev pkg-config libevent-dev libpq-dev libjansson-dev check"

if [ $# -ne 1 ]; then
        echo "usage: sh scripts/build-deb.sh OUTDIR" >&2
        exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd -P)
mkdir -p "$1"
out=$(cd "$1" && pwd -P)

missing_packages() {
        missing=""
        for pkg in $PACKAGES; do
                status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
                [ "$status" = "install ok installed" ] || missing="$missing $pkg"
        done
        echo "${missing# }"
}

install_tools() {
        if ! command -v dpkg-query >/dev/null 2>&1; then
                echo "build-deb: this needs a Debian system (dpkg-query not found)" >&2
                exit 1
        fi
        missing=$(missing_packages)
        [ -z "$missing" ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
                echo "build-deb: missing packages: $missing" >&2
                echo "build-deb: install them with:" >&2
                echo "    sudo apt-get install -y --no-install-recommends $missing" >&2
                exit 1
        fi
        echo "build-deb: installing missing packages: $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update </dev/null
        # shellcheck disable=SC2086 # word splitting of the list is intended
        apt-get install -y --no-install-recommends $missing </dev/null
}

# The package's version is the changelog's; it must be the one chimerad reports.
check_version() {
        deb=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
        code=$(sed -n 's/^#define CHIMERA_VERSION "\(.*\)"$/\1/p' "$src/common/util.h")
        if [ "$deb" != "$code" ]; then
                echo "build-deb: packaging/debian/changelog says $deb but common/util.h" \
                        "says $code: add a changelog entry (dch -v $code)" >&2
                exit 1
        fi
        echo "$deb"
}

install_tools
version=$(check_version)
work=$(mktemp -d "${TMPDIR:-/tmp}/chimera-deb.XXXXXX")
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tree=$work/chimera-$version
mkdir "$tree"
tar -C "$src" --exclude=./.git --exclude=./build --exclude='./build-*' \
        --exclude=./.demo --exclude=./.tmp --exclude=./debian -cf - . | tar -C "$tree" -xf -
cp -R "$src/packaging/debian" "$tree/debian"

(cd "$tree" && dpkg-buildpackage -us -uc -b)

for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
        [ -e "$f" ] && mv -f "$f" "$out/"
done
ls "$out"/chimera_"$version"_*.deb
