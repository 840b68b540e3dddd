#!/bin/sh
# run-integration.sh BUILD_DIR - runs the integration tests against a
# throwaway PostgreSQL (`make check`, `make integration`).
#
# The server comes from tests/pg.sh and is stopped by a trap on every way
# out, so an interrupted or failing run never leaves a postgres behind.  The
# tests find it, and the binaries under test, through the environment:
# CHIMERA_TEST_DATABASE_URL and CHIMERA_BUILD_DIR (absolute), and
# CHIMERA_TEST_PG_DIR, the server's directory, for the tests that stop and
# start it (sh tests/pg.sh pause|resume DIR).
set -eu

if [ $# -ne 1 ]; then
        echo "usage: sh tests/run-integration.sh BUILD_DIR" >&2
        exit 2
fi

here=$(cd "$(dirname "$0")" && pwd -P)
build=$(cd "$1" 2>/dev/null && pwd -P) || {
        echo "run-integration: no build directory $1" >&2
        exit 1
}
binary=$build/tests/check_integration
if [ ! -x "$binary" ]; then
        echo "run-integration: $binary not found (make integration builds it)" >&2
        exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chimera-it.XXXXXX")
pgdir=$tmp/pg

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
        sh "$here/pg.sh" stop "$pgdir" || true
        rm -rf "$tmp"
}
# EXIT alone misses signals in some shells (dash), so signals exit through
# it explicitly, with the conventional 128+N status.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url=$(sh "$here/pg.sh" start "$pgdir")
echo "run-integration: PostgreSQL at $url" >&2

CHIMERA_TEST_DATABASE_URL=$url
CHIMERA_BUILD_DIR=$build
CHIMERA_TEST_PG_DIR=$pgdir
export CHIMERA_TEST_DATABASE_URL CHIMERA_BUILD_DIR CHIMERA_TEST_PG_DIR

rc=0
"$binary" || rc=$?
exit $rc
