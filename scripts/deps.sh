#!/bin/sh
# deps.sh - install what chimera needs to build and test (`make deps`), or
# with the argument "fuzz" what the fuzz targets need (`make fuzz`): clang
# and its libFuzzer runtime, which the Debian package libclang-rt-dev ships
# (a mere Recommends of clang, so not installed with it here).
#
# Asks dpkg which of the Debian packages below are missing and, as root,
# installs just those; a non-root user is told the exact command instead,
# because a build must never prompt for a password.  It stays silent when
# nothing is missing, since `make check` and `make demo` run it every time.
# On a system without dpkg it can only check, with pkg-config, and says so.
set -eu

MODE=${1:-build}

case $MODE in
build)
        PACKAGES="libevent-dev libpq-dev libjansson-dev check pkg-config postgresql curl"
        # pkg-config modules that stand for the packages on a non-Debian system.
        PC_MODULES="libevent libpq jansson check"
        ;;
fuzz)
        PACKAGES="clang libclang-rt-dev libjansson-dev pkg-config"
        PC_MODULES="jansson"
        ;;
*)
        echo "usage: deps.sh [build|fuzz]" >&2
        exit 2
        ;;
esac

missing_debian() {
        missing=""
        for pkg in $PACKAGES; do
                # dpkg-query fails for a package it has never heard of; that
                # is "missing" too, not an error.
                status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
                if [ "$status" != "install ok installed" ]; then
                        missing="$missing $pkg"
                fi
        done
        echo "${missing# }"
}

install_debian() {
        missing=$1
        if [ "$(id -u)" -ne 0 ]; then
                echo "chimera: missing packages: $missing" >&2
                echo "chimera: install them with:" >&2
                echo "    sudo apt-get install -y $missing" >&2
                exit 1
        fi
        echo "chimera: installing missing packages: $missing"
        # stdin is closed on purpose: CI has none, and nothing may prompt.
        export DEBIAN_FRONTEND=noninteractive
        apt-get update </dev/null
        # shellcheck disable=SC2086 # word splitting of the list is intended
        apt-get install -y --no-install-recommends $missing </dev/null
}

check_without_dpkg() {
        echo "chimera: dpkg-query not found (not Debian?); checking with pkg-config only" >&2
        if ! command -v pkg-config >/dev/null 2>&1; then
                echo "chimera: pkg-config is missing; install it and: $PACKAGES" >&2
                exit 1
        fi
        missing=""
        for mod in $PC_MODULES; do
                pkg-config --exists "$mod" || missing="$missing $mod"
        done
        # The tests need a PostgreSQL server, which has no .pc file.
        if [ "$MODE" = build ] && ! command -v initdb >/dev/null 2>&1 &&
                ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
                ! [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ]; then
                missing="$missing postgresql-server(initdb)"
        fi
        if [ "$MODE" = fuzz ] && ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
                missing="$missing ${FUZZ_CC:-clang}(with libFuzzer)"
        fi
        if [ -n "$missing" ]; then
                echo "chimera: missing:$missing; install them with your package manager" >&2
                exit 1
        fi
}

main() {
        if ! command -v dpkg-query >/dev/null 2>&1; then
                check_without_dpkg
                exit 0
        fi
        missing=$(missing_debian)
        if [ -z "$missing" ]; then
                exit 0
        fi
        install_debian "$missing"
        missing=$(missing_debian)
        if [ -n "$missing" ]; then
                echo "chimera: still missing after apt-get install: $missing" >&2
                exit 1
        fi
}

main "$@"
