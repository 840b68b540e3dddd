#!/bin/sh
# demo.sh BUILD_DIR [stop] - `make demo` and `make demo-stop`.
#
# Starts a throwaway PostgreSQL in .demo/ (unless DATABASE_URL is given),
# applies the schema, runs chimerad with examples/chimerad.json (4 workers,
# the Chimera workflow), submits example tasks with psql and shows
# `chimera-ctl status` until they have finished.  chimerad keeps running
# afterwards; `make demo-stop` stops it (and the throwaway PostgreSQL).
set -eu

build=$1
top=$(cd "$(dirname "$0")/.." && pwd -P)
demo=$top/.demo
cfg=$demo/chimerad.json
ctl="$build/chimera-ctl -c $cfg"

stop() {
        if [ -f "$demo/chimerad.pid" ]; then
                pid=$(cat "$demo/chimerad.pid")
                if kill -TERM "$pid" 2>/dev/null; then
                        echo "demo: stopping chimerad (pid $pid)"
                        i=0
                        while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
                                sleep 0.1
                                i=$((i + 1))
                        done
                fi
                rm -f "$demo/chimerad.pid"
        fi
        if [ -d "$demo/pg" ]; then
                sh "$top/tests/pg.sh" stop "$demo/pg"
                echo "demo: throwaway PostgreSQL stopped"
        fi
        rm -rf "$demo"
}

if [ "${2:-}" = stop ]; then
        stop
        exit 0
fi

# A demo left running from last time is stopped first: one at a time.
[ -d "$demo" ] && stop
mkdir -p "$demo"

url=${DATABASE_URL:-${CHIMERA_DATABASE_URL:-}}
if [ -z "$url" ]; then
        echo "demo: starting a throwaway PostgreSQL in $demo/pg"
        url=$(sh "$top/tests/pg.sh" start "$demo/pg")
fi

# The example config, pointed at this database and a socket in .demo/.
sed -e "s|postgresql://chimera@localhost/chimera|$url|" \
    -e "s|/run/chimera/ctl.sock|$demo/ctl.sock|" \
    "$top/examples/chimerad.json" > "$cfg"

"$build/chimerad" -c "$cfg" --check-config
"$build/chimerad" -c "$cfg" --migrate

"$build/chimerad" -c "$cfg" > "$demo/chimerad.log" 2>&1 &
echo $! > "$demo/chimerad.pid"
echo "demo: chimerad running (pid $(cat "$demo/chimerad.pid")), log in $demo/chimerad.log"

# Wait for the supervisor to answer before submitting.
i=0
until $ctl status > /dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
                echo "demo: chimerad did not come up; its log:" >&2
                cat "$demo/chimerad.log" >&2
                exit 1
        fi
        sleep 0.1
done

echo "demo: submitting tasks with psql"
psql -q -X "$url" <<'SQL'
INSERT INTO chimera.tasks (workflow, payload)
SELECT 'chimera', jsonb_build_object('feature', 'feature ' || i,
                                     'target_url', 'https://example.com/' || i)
  FROM generate_series(1, 12) AS i;
INSERT INTO chimera.tasks (workflow, payload, priority)
SELECT 'sleep', jsonb_build_object('ms', 300), 5 FROM generate_series(1, 8);
INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 100);
SQL

left() {
        psql -X -At "$url" -c "SELECT count(*) FROM chimera.tasks WHERE status IN ('queued', 'running')"
}
i=0
while [ "$(left)" -gt 0 ] && [ $i -lt 120 ]; do
        $ctl status
        echo
        sleep 1
        i=$((i + 1))
done
$ctl status
echo
echo "demo: done.  chimerad is still running with 4 workers:"
echo "  $ctl status"
echo "  psql '$url' -c 'INSERT INTO chimera.tasks (workflow) VALUES (''noop'')'"
echo "  make demo-stop      # stops chimerad and the throwaway PostgreSQL"
