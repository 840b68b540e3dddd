#!/bin/sh
# demo.sh BUILD_DIR [stop] - `make demo` and `make demo-stop`.
#
# Starts a throwaway PostgreSQL in .demo/ (unless DATABASE_URL is given),
# applies the schema, runs chimerad with examples/chimerad.json (4 workers,
# the Chimera workflow, its agents taken from examples/agents/), submits
# example tasks with psql and shows `chimera-ctl status` until they have
# finished, then the timeline of a task that the guardian sent back once.
# chimerad keeps running afterwards; `make demo-stop` stops it (and the
# throwaway PostgreSQL).
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

# Escapes a string for the replacement side of a sed s|...|...| command.
sed_escape() {
        printf '%s\n' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# The example config, pointed at this database, a socket in .demo/ and the
# example agents in this tree (installed, they live in /usr/lib/chimera/agents).
sed -e "s|postgresql://chimera@localhost/chimera|$(sed_escape "$url")|" \
    -e "s|/run/chimera/ctl.sock|$(sed_escape "$demo/ctl.sock")|" \
    -e "s|/usr/lib/chimera/agents/|$(sed_escape "$top/examples/agents/")|" \
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

# 50 Chimera tasks: every 12th one is rejected once by the guardian (back to
# code_implementation), the 25th fails its first validation (likewise); the
# small delays let `chimera-ctl status` show the phases moving.  Then one
# task that lacks the required target_url, which fails at once, and a few
# noop tasks.  examples/agents/README.md lists the payload flags.
echo "demo: submitting tasks with psql"
psql -q -X -v ON_ERROR_STOP=1 "$url" <<'SQL'
INSERT INTO chimera.tasks (workflow, payload)
SELECT 'chimera', jsonb_build_object('feature', 'feature ' || i,
                                     'target_url', 'https://example.com/' || i,
                                     'delay_ms', 60 + (i % 5) * 20)
                  || CASE WHEN i % 12 = 0 THEN '{"guardian_reject_once": true}'::jsonb
                          WHEN i = 25 THEN '{"validation_fail_once": true}'::jsonb
                          ELSE '{}'::jsonb END
  FROM generate_series(1, 50) AS i;
INSERT INTO chimera.tasks (workflow, payload) VALUES ('chimera', '{"feature": "x"}');
INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 10);
SQL

sql() {
        psql -X -At -v ON_ERROR_STOP=1 "$url" -c "$1"
}
left() {
        sql "SELECT count(*) FROM chimera.tasks WHERE status IN ('queued', 'running')"
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
psql -X -v ON_ERROR_STOP=1 "$url" -c "SELECT workflow, status, count(*) AS tasks,
        count(*) FILTER (WHERE (state->>'transitions')::int > 5) AS looped,
        min(last_error) AS error
   FROM chimera.tasks GROUP BY 1, 2 ORDER BY 1, 2"

# The timeline of one task the guardian rejected once: chimera-ctl show
# where this chimera-ctl has it, else the query that shows the same events.
id=$(sql "SELECT min(id) FROM chimera.tasks WHERE payload ? 'guardian_reject_once'")
echo "demo: task $id, rejected once by the guardian, then approved:"
if $ctl show "$id" > "$demo/show.out" 2>&1; then
        cat "$demo/show.out"
else
        echo "  (this chimera-ctl has no 'show'; its events are:)"
        query="SELECT to_char(at, 'HH24:MI:SS.MS') AS at, attempt, kind, phase,
       detail->>'outcome' AS outcome, detail->>'next' AS next, detail->>'error' AS error
  FROM chimera.task_events WHERE task_id = $id ORDER BY id"
        echo "  psql '$url' -c \"$query\""
        psql -X "$url" -c "$query"
fi
echo
cat <<EOF
demo: done.  chimerad is still running with 4 workers:
  $ctl status
  $ctl show $id
  psql '$url' -c "INSERT INTO chimera.tasks (workflow, payload) VALUES ('chimera', '{\"feature\": \"login\", \"target_url\": \"https://example.com\"}')"
  make demo-stop      # stops chimerad and the throwaway PostgreSQL
EOF
