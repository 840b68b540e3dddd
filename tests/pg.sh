#!/bin/sh
# pg.sh - a throwaway PostgreSQL server for tests, the demo and benchmarks.
#
#   sh tests/pg.sh start DIR [--durable] [--listen ADDRS] [--hba CIDR]
#                                          prints postgresql://...; also in DIR/url
#   sh tests/pg.sh stop DIR                stops the server and removes DIR
#   sh tests/pg.sh pause DIR               stops the server (fast shutdown), keeps DIR
#   sh tests/pg.sh resume DIR              starts a paused server again, on the same
#                                          port and data directory, and waits until
#                                          it accepts connections (nothing to do if
#                                          it runs)
#
# pause and resume let tests take the database away under a running client
# and give it back where the client's connection string still points.
#
# The server listens on 127.0.0.1 only, on a free port picked at random (so
# parallel runs do not collide), with its unix socket in DIR, and is tuned
# for tests (no fsync) unless --durable asks for benchmark settings.
#
# --listen ADDRS replaces 127.0.0.1 as listen_addresses (a comma-separated
# list of IPv4 addresses or "*"); the first one is where start and resume
# check that the server is up, and the host of the URL ("*" stands for
# 127.0.0.1, which is then listened on).  --hba CIDR lets clients from that
# range in without a password, as 127.0.0.1 is.  Both serve tests that run
# the server in a network namespace of its own (see tests/netns.sh).
#
# initdb and postgres refuse to run as root, so as root they run as
# $CHIMERA_PG_USER (default: nobody), which must then own the cluster.  When
# that user cannot reach DIR (say under /root), or DIR is too long a path
# for a unix socket, the cluster lives in a /tmp directory instead and DIR
# holds symlinks to it.  DIR/.chimera-pg records where the cluster really is,
# and marks DIR as ours: stop removes nothing that lacks it.
#
# Environment: CHIMERA_PG_USER, CHIMERA_PG_BINDIR (where initdb lives).
set -eu

PROG="pg.sh"
MARKER=".chimera-pg"
START_ATTEMPTS=5
READY_TIMEOUT=30
# sun_path holds 108 bytes; postgres appends "/.s.PGSQL.NNNNN" (15) plus NUL.
MAX_SOCKET_DIR_LEN=92

die() {
        echo "$PROG: $*" >&2
        exit 1
}

usage() {
        echo "usage: sh tests/pg.sh start DIR [--durable] [--listen ADDRS] [--hba CIDR] |" \
                "stop DIR | pause DIR | resume DIR" >&2
        exit 2
}

find_bindir() {
        if [ -n "${CHIMERA_PG_BINDIR:-}" ]; then
                echo "$CHIMERA_PG_BINDIR"
                return
        fi
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
                echo "$dir"
                return
        fi
        # Debian keeps server binaries out of PATH, one directory per major.
        dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5n | tail -n 1)
        if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
                echo "$dir"
                return
        fi
        dir=$(command -v initdb 2>/dev/null || true)
        [ -n "$dir" ] || die "cannot find initdb (install postgresql, or set CHIMERA_PG_BINDIR)"
        dirname "$dir"
}

is_root() {
        [ "$(id -u)" -eq 0 ]
}

# Runs a command as the cluster's owner: ourselves, or PG_USER when root.
as_pg() {
        if is_root; then
                runuser -u "$PG_USER" -- "$@"
        else
                "$@"
        fi
}

# Tells whether the cluster owner can reach a directory (needs search
# permission on every parent) and, with -w, create files in it.
pg_can_use() {
        # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner shell
        as_pg sh -c 'cd "$1" && test "$2" .' sh "$1" "$2" 2>/dev/null
}

random_port() {
        # Below Linux's ephemeral range (32768+), so outgoing connections
        # do not take the port between our check and postgres's bind.
        n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        echo $((15432 + n % 16000))
}

# Best-effort check that nothing holds the port; postgres's own bind is the
# real test, and start retries on a bind failure.
port_is_free() {
        hex=$(printf '%04X' "$1")
        for f in /proc/net/tcp /proc/net/tcp6; do
                [ -r "$f" ] || continue
                if awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { found = 1 }
                                     END { exit !found }' "$f"; then
                        return 1
                fi
        done
        return 0
}

pick_port() {
        for _ in 1 2 3 4 5 6 7 8 9 10; do
                port=$(random_port)
                if port_is_free "$port"; then
                        echo "$port"
                        return
                fi
        done
        die "cannot find a free TCP port"
}

# Chooses where the cluster lives (sets REAL) and prepares DIR.
prepare_dirs() {
        mkdir -p "$DIR"
        DIR=$(cd "$DIR" && pwd -P)
        if [ -e "$DIR/$MARKER" ] || [ -e "$DIR/data" ] || [ -e "$DIR/PG_VERSION" ]; then
                die "$DIR already contains a cluster (stop it first: sh tests/pg.sh stop $DIR)"
        fi
        REAL=$DIR
        # Hand DIR over only when its owner can reach it; else leave it be.
        if is_root && pg_can_use "$(dirname "$DIR")/." -x; then
                chown "$PG_USER" "$DIR"
        fi
        if [ ${#DIR} -gt $MAX_SOCKET_DIR_LEN ] || ! pg_can_use "$DIR" -w; then
                REAL=$(mktemp -d /tmp/chimera-pg.XXXXXX)
                # Markers first, so that stop cleans up even if we fail here.
                echo "$REAL" >"$REAL/$MARKER"
                echo "$REAL" >"$DIR/$MARKER"
                if is_root; then
                        chown "$PG_USER" "$REAL"
                fi
                pg_can_use "$REAL" -w || die "user $(as_pg id -un) cannot write to $REAL"
                ln -s "$REAL/data" "$DIR/data"
                ln -s "$REAL/postgres.log" "$DIR/postgres.log"
        fi
        echo "$REAL" >"$DIR/$MARKER"
}

write_conf() {
        conf=$REAL/data/postgresql.conf
        cat >>"$conf" <<EOF

# Added by tests/pg.sh.
listen_addresses = '$LISTEN'
unix_socket_directories = '$REAL'
max_connections = 200
EOF
        if [ "$DURABLE" = 1 ]; then
                cat >>"$conf" <<EOF
fsync = on
synchronous_commit = on
shared_buffers = 256MB
EOF
        else
                # Test data is thrown away, so crash safety buys nothing.
                cat >>"$conf" <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        fi
}

run_initdb() {
        if ! (cd "$REAL" && as_pg "$BINDIR/initdb" -D "$REAL/data" -U postgres --auth=trust \
                -E UTF8 --no-locale -N >"$REAL/initdb.log" 2>&1); then
                cat "$REAL/initdb.log" >&2
                die "initdb failed"
        fi
        write_conf
        if [ -n "$HBA" ]; then
                printf '\n# Added by tests/pg.sh.\nhost all all %s trust\n' "$HBA" \
                        >>"$REAL/data/pg_hba.conf"
        fi
}

log_lines() {
        if [ -f "$REAL/postgres.log" ]; then
                wc -l <"$REAL/postgres.log" | tr -d ' '
        else
                echo 0
        fi
}

# Starts postgres on $1; returns 0 once it accepts TCP connections, 2 when
# the port was taken (worth another try), 1 on any other failure.
try_start() {
        port=$1
        before=$(log_lines)
        deadline=$(($(date +%s) + READY_TIMEOUT))
        if (cd "$REAL" && as_pg "$BINDIR/pg_ctl" start -D "$REAL/data" -l "$REAL/postgres.log" \
                -w -t "$READY_TIMEOUT" -o "-p $port" >/dev/null 2>&1); then
                while [ "$(date +%s)" -le "$deadline" ]; do
                        if "$BINDIR/pg_isready" -q -h "$HOST" -p "$port" -U postgres \
                                -d postgres -t 1; then
                                return 0
                        fi
                        sleep 0.2
                done
        fi
        (cd "$REAL" && as_pg "$BINDIR/pg_ctl" stop -D "$REAL/data" -m immediate -w \
                >/dev/null 2>&1) || true
        if tail -n +"$((before + 1))" "$REAL/postgres.log" 2>/dev/null |
                grep -q -e 'could not bind' -e 'could not create any TCP/IP sockets'; then
                return 2
        fi
        return 1
}

fail_start() {
        echo "$PROG: postgres did not start; last lines of $REAL/postgres.log:" >&2
        tail -n 30 "$REAL/postgres.log" >&2 2>/dev/null || true
        exit 1
}

cmd_start() {
        prepare_dirs
        run_initdb
        attempt=1
        while :; do
                port=$(pick_port)
                rc=0
                try_start "$port" || rc=$?
                [ $rc -eq 0 ] && break
                if [ $rc -ne 2 ] || [ $attempt -ge $START_ATTEMPTS ]; then
                        fail_start
                fi
                echo "$PROG: port $port is taken, trying another" >&2
                attempt=$((attempt + 1))
        done
        url="postgresql://postgres@$HOST:$port/postgres"
        echo "$url" >"$DIR/url"
        echo "$url"
}

# Removes DIR, but only what start created: a typo must not wipe a tree.
remove_dir() {
        if [ -e "$DIR/$MARKER" ]; then
                rm -rf "$DIR"
        elif [ -d "$DIR" ] && [ -z "$(ls -A "$DIR")" ]; then
                rmdir "$DIR"
        else
                die "$DIR was not made by tests/pg.sh start; not removing it"
        fi
}

cmd_stop() {
        [ -e "$DIR" ] || return 0
        DIR=$(cd "$DIR" && pwd -P)
        REAL=$DIR
        if [ -f "$DIR/$MARKER" ]; then
                REAL=$(cat "$DIR/$MARKER")
        fi
        if [ -f "$REAL/data/postmaster.pid" ]; then
                if ! (cd / && as_pg "$BINDIR/pg_ctl" stop -D "$REAL/data" -m fast -w -t 30 \
                        >/dev/null 2>&1); then
                        # Either it was not running (stale pid file) or it
                        # hangs; immediate mode settles both.
                        (cd / && as_pg "$BINDIR/pg_ctl" stop -D "$REAL/data" -m immediate -w \
                                >/dev/null 2>&1) || true
                fi
        fi
        if [ "$REAL" != "$DIR" ] && [ -f "$REAL/$MARKER" ]; then
                rm -rf "$REAL"
        fi
        remove_dir
}

# Sets DIR (absolute) and REAL for a cluster that start made.
find_cluster() {
        [ -f "$DIR/$MARKER" ] || die "$DIR holds no cluster made by tests/pg.sh start"
        DIR=$(cd "$DIR" && pwd -P)
        REAL=$(cat "$DIR/$MARKER")
}

# The host start checked, from the URL it recorded.
recorded_host() {
        [ -f "$DIR/url" ] || die "$DIR/url is missing: cannot tell which host to use"
        host=$(sed -n 's|^postgresql://[^@]*@\([^:/]*\):[0-9][0-9]*/.*|\1|p' "$DIR/url")
        [ -n "$host" ] || die "cannot read the host from $DIR/url"
        echo "$host"
}

# The port start chose, from the URL it recorded.
recorded_port() {
        [ -f "$DIR/url" ] || die "$DIR/url is missing: cannot tell which port to use"
        port=$(sed -n 's|^postgresql://[^@]*@[^:/]*:\([0-9][0-9]*\)/.*|\1|p' "$DIR/url")
        [ -n "$port" ] || die "cannot read the port from $DIR/url"
        echo "$port"
}

cmd_pause() {
        find_cluster
        [ -f "$REAL/data/postmaster.pid" ] || die "the server in $DIR is not running"
        # Fast: clients are disconnected at once, as in a real restart.
        (cd / && as_pg "$BINDIR/pg_ctl" stop -D "$REAL/data" -m fast -w -t 30 >/dev/null 2>&1) ||
                die "pg_ctl stop failed; see $REAL/postgres.log"
}

cmd_resume() {
        find_cluster
        port=$(recorded_port)
        HOST=$(recorded_host)
        if [ -f "$REAL/data/postmaster.pid" ]; then
                # Running already: resume only makes sure it is (a cleanup may call it).
                "$BINDIR/pg_isready" -q -h "$HOST" -p "$port" -U postgres -d postgres -t 10 ||
                        die "the server in $DIR runs but does not accept connections"
                return 0
        fi
        # Same port and data: clients reconnect with the URL they already have.
        # There is no other port to fall back to, so a taken port is an error.
        try_start "$port" || fail_start
}

main() {
        [ $# -ge 2 ] || usage
        cmd=$1
        DIR=$2
        shift 2
        DURABLE=0
        LISTEN=127.0.0.1
        HBA=
        options=0
        while [ $# -gt 0 ]; do
                case $1 in
                --durable) DURABLE=1 ;;
                --listen | --hba)
                        if [ $# -lt 2 ] || [ -z "$2" ]; then usage; fi
                        if [ "$1" = --listen ]; then LISTEN=$2; else HBA=$2; fi
                        shift
                        ;;
                *) usage ;;
                esac
                options=1
                shift
        done
        [ -n "$DIR" ] || usage
        [ "$options" = 0 ] || [ "$cmd" = start ] || usage
        # Where start checks that the server is up, and the host of its URL.
        HOST=${LISTEN%%,*}
        HOST=$(echo "$HOST" | tr -d ' ')
        case $HOST in
        '*' | 0.0.0.0) HOST=127.0.0.1 ;;
        *:*) die "--listen: IPv6 addresses are not supported" ;;
        esac
        PG_USER=${CHIMERA_PG_USER:-nobody}
        if is_root && ! runuser -u "$PG_USER" -- true 2>/dev/null; then
                die "running as root, but cannot run commands as user $PG_USER (set CHIMERA_PG_USER)"
        fi
        BINDIR=$(find_bindir)
        case $cmd in
        start) cmd_start ;;
        stop) cmd_stop ;;
        pause) cmd_pause ;;
        resume) cmd_resume ;;
        *) usage ;;
        esac
}

main "$@"
