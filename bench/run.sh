#!/bin/sh
# bench/run.sh [PART...] - chimera's benchmarks (`make bench`, issue 6).
#
# Starts a throwaway durable PostgreSQL (sh tests/pg.sh start DIR --durable:
# fsync and synchronous_commit on, shared_buffers 256MB), runs chimerad
# against it with pool.size 8 and reports:
#
#   noop     (a) drain rate of 20,000 builtin:noop one-phase tasks inserted
#            up front, and wall time; (d) supervisor CPU per task, peak RSS
#            of chimerad and of one worker (also worker and PostgreSQL CPU)
#   exec     (b) the same with an exec agent, 5,000 tasks
#   latency  (c) pickup latency: 300 single tasks 20 ms apart into an idle
#            pool, from INSERT commit to phase start, p50/p95/p99
#   backlog  (e) drain rate with 10,000 versus 1,000,000 tasks queued, with
#            the EXPLAIN (ANALYZE) of the claim statement
#   sql      the plain-SQL ceiling: 8 pgbench clients claiming B rows with
#            SKIP LOCKED and marking them done, 2 commits a cycle, B=10, 100
#
# With no PART (or "all") every part runs, in that order.  Aliases: a and d
# for noop, b for exec, c for latency, e for backlog, ceiling for sql.
# Output: each part's details as it runs, then a table for people and one
# "bench: key=value" line per figure for scripts.
#
# Environment (defaults in brackets):
#   BENCH_BUILD [build]             where chimerad, chimera-worker and build/bench/ are
#   BENCH_NO_MAKE                   set: do not run make first (`make bench` has)
#   BENCH_POOL [8]                  pool.size
#   BENCH_PREFETCH [0]              pool.prefetch: tasks claimed ahead of free workers
#   BENCH_LOG_LEVEL [info]          chimerad's log.level (its log goes to a file)
#   BENCH_NOOP_TASKS [20000]        tasks for part noop
#   BENCH_EXEC_TASKS [5000]         tasks for part exec
#   BENCH_EXEC_AGENT [c]            c: build/bench/echo-agent (reads stdin, prints {});
#                                   sh: /bin/sh -c 'cat >/dev/null; echo {}'
#   BENCH_LATENCY_TASKS [300]       measured tasks for part latency (after 10 warm-up ones)
#   BENCH_LATENCY_INTERVAL_MS [20]  time between two of them
#   BENCH_BACKLOG_SMALL [10000]     the small backlog
#   BENCH_BACKLOG_LARGE [1000000]   the large backlog
#   BENCH_BACKLOG_DRAIN [10000]     tasks drained from each (at most the small backlog)
#   BENCH_BACKLOG_TIMEOUT [60]      seconds each backlog drain may take; past it the
#                                   rate is taken from the tasks that did finish
#   BENCH_SQL_CLIENTS [8]           pgbench clients
#   BENCH_SQL_JOBS_B10 [200000]     jobs claimed in the B=10 run
#   BENCH_SQL_JOBS_B100 [600000]    jobs claimed in the B=100 run
#   BENCH_ANALYZE [1]               0: do not ANALYZE chimera.tasks after filling it (the
#                                   claim is then planned without statistics, as right
#                                   after a first burst, before autovacuum's next round)
#   BENCH_TIMEOUT [300]             seconds any one drain may take before the run fails
#
# Everything it starts (PostgreSQL, chimerad and its workers) is stopped on
# every way out, by a trap.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$top"

build=${BENCH_BUILD:-build}
POOL=${BENCH_POOL:-8}
PREFETCH=${BENCH_PREFETCH:-0}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
NOOP_TASKS=${BENCH_NOOP_TASKS:-20000}
EXEC_TASKS=${BENCH_EXEC_TASKS:-5000}
EXEC_AGENT=${BENCH_EXEC_AGENT:-c}
LAT_TASKS=${BENCH_LATENCY_TASKS:-300}
LAT_INTERVAL=${BENCH_LATENCY_INTERVAL_MS:-20}
LAT_WARMUP=10
BACKLOG_SMALL=${BENCH_BACKLOG_SMALL:-10000}
BACKLOG_LARGE=${BENCH_BACKLOG_LARGE:-1000000}
BACKLOG_DRAIN=${BENCH_BACKLOG_DRAIN:-10000}
BACKLOG_TIMEOUT=${BENCH_BACKLOG_TIMEOUT:-60}
SQL_CLIENTS=${BENCH_SQL_CLIENTS:-8}
SQL_JOBS_B10=${BENCH_SQL_JOBS_B10:-200000}
SQL_JOBS_B100=${BENCH_SQL_JOBS_B100:-600000}
TIMEOUT=${BENCH_TIMEOUT:-300}
ANALYZE=${BENCH_ANALYZE:-1}

say() {
        printf '%s\n' "$*"
}

die() {
        echo "bench: $*" >&2
        exit 1
}

# ---- which parts ----

parts=
for arg in "$@"; do
        case $arg in
        all | '') parts="$parts noop exec latency backlog sql" ;;
        noop | a | d | cpu) parts="$parts noop" ;;
        exec | b) parts="$parts exec" ;;
        latency | c) parts="$parts latency" ;;
        backlog | e) parts="$parts backlog" ;;
        sql | ceiling) parts="$parts sql" ;;
        -h | --help | help)
                sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
                exit 0
                ;;
        *) die "unknown part \"$arg\" (noop, exec, latency, backlog, sql or all)" ;;
        esac
done
[ -n "$parts" ] || parts="noop exec latency backlog sql"
[ "$BACKLOG_DRAIN" -le "$BACKLOG_SMALL" ] ||
        die "BENCH_BACKLOG_DRAIN ($BACKLOG_DRAIN) exceeds BENCH_BACKLOG_SMALL ($BACKLOG_SMALL)"

if [ -z "${BENCH_NO_MAKE:-}" ]; then
        make -s BUILD="$build" all "$build/bench/chimera-bench" "$build/bench/echo-agent" >&2
fi
build=$(cd "$build" && pwd -P)
bench=$build/bench/chimera-bench
for f in "$build/chimerad" "$build/chimera-worker" "$build/chimera-ctl" "$bench" \
        "$build/bench/echo-agent"; do
        [ -x "$f" ] || die "$f is missing: run make bench"
done

PGBENCH=$(command -v pgbench 2>/dev/null ||
        printf '%s\n' /usr/lib/postgresql/*/bin/pgbench | sort -t/ -k5,5n | tail -n 1)
PSQL=$(command -v psql 2>/dev/null || true)
[ -n "$PSQL" ] || die "psql not found (apt-get install postgresql-client)"

# ---- cleanup on every way out ----

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chimera-bench.XXXXXX")
pgdir=$tmp/pg
sock=$tmp/ctl.sock
cfg=$tmp/chimerad.json
log=$tmp/chimerad.log
results=$tmp/results
: >"$results"
cpid=
wpids=
child=
in_chimerad_part=

# Our chimerad's workers, as far as their pids still name a chimera-worker.
kill_workers() {
        for p in $wpids; do
                if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = chimera-worker ]; then
                        kill -KILL "$p" 2>/dev/null || true
                fi
        done
        wpids=
}

stop_chimerad() {
        [ -n "$cpid" ] || return 0
        kill -TERM "$cpid" 2>/dev/null || true
        i=0
        while kill -0 "$cpid" 2>/dev/null && [ $i -lt 600 ]; do
                sleep 0.1
                i=$((i + 1))
        done
        if kill -0 "$cpid" 2>/dev/null; then
                say "bench: chimerad $cpid did not stop within 60 s; killing it" >&2
                kill -KILL "$cpid" 2>/dev/null || true
        fi
        wait "$cpid" 2>/dev/null || true
        cpid=
        kill_workers
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
        rc=$?
        trap - EXIT INT TERM HUP
        if [ -n "$child" ]; then
                kill -TERM "$child" 2>/dev/null || true
                wait "$child" 2>/dev/null || true
        fi
        stop_chimerad
        if [ -d "$pgdir" ]; then
                sh "$top/tests/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true
        fi
        if [ $rc -ne 0 ] && [ -n "$in_chimerad_part" ] && [ -s "$log" ]; then
                echo "bench: failed; last lines of chimerad's log:" >&2
                tail -n 15 "$log" >&2
        fi
        rm -rf "$tmp"
        exit $rc
}
# EXIT alone misses signals in dash, so signals exit through it explicitly.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- helpers ----

# Runs a command in the background with its output (and errors) in OUT and
# waits for it: a signal then interrupts the wait at once, and cleanup stops
# the command.  A failing command's output is shown.
in_bg() { # OUT COMMAND...
        f=$1
        shift
        "$@" >"$f" 2>&1 &
        child=$!
        rc=0
        wait "$child" || rc=$?
        child=
        [ $rc -eq 0 ] || cat "$f" >&2
        return $rc
}

sql() {
        PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$url" -c "$1"
}

result() { # KEY VALUE
        echo "$1=$2" >>"$results"
}

get() { # KEY [DEFAULT]: a figure recorded by result
        v=$(sed -n "s/^$1=//p" "$results" | tail -n 1)
        echo "${v:-${2:--}}"
}

kv() { # KEY TEXT: the value of KEY in key=value lines
        printf '%s\n' "$2" | sed -n "s/^$1=//p" | tail -n 1
}

calc() { # awk expression
        awk "BEGIN { printf \"%s\", $1 }"
}

now() {
        date +%s.%N
}

CLK_TCK=$(getconf CLK_TCK)

# utime+stime of a process, in clock ticks; with "all", plus its reaped children's.
ticks() { # PID [all]
        { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || true; } |
                awk -v c="${2:-}" 'NF { t = $12 + $13 + (c == "all" ? $14 + $15 : 0) }
                                   END { print t + 0 }'
}

# The whole PostgreSQL cluster: the postmaster, what it reaped, its children.
pg_ticks() {
        pm=$(head -n 1 "$pgdir/data/postmaster.pid")
        t=$(ticks "$pm" all)
        for p in $(ps -o pid= --ppid "$pm"); do
                t=$((t + $(ticks "$p")))
        done
        echo "$t"
}

workers_ticks() {
        t=0
        for p in $wpids; do
                t=$((t + $(ticks "$p" all)))
        done
        echo "$t"
}

sum_ticks() { # PID...
        t=0
        for p in "$@"; do
                t=$((t + $(ticks "$p")))
        done
        echo "$t"
}

# Transactions committed or rolled back in the database, WAL bytes, WAL flushes.
db_stats() {
        sql "SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database
                      WHERE datname = current_database()),
                    wal_bytes::bigint, wal_sync FROM pg_stat_wal" | tr '|' ' '
}

# Busy and total jiffies of the whole machine (all cores).
machine_ticks() {
        awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' \
                /proc/stat
}

# CPU of everything this benchmark runs: PostgreSQL, chimerad and its
# workers, and this script with the children it has reaped (clients, pgbench).
own_ticks() {
        t=$(($(pg_ticks) + $(ticks $$ all)))
        if [ -n "$cpid" ]; then
                t=$((t + $(ticks "$cpid" all) + $(workers_ticks)))
        fi
        echo "$t"
}

# Machine load over a measurement: load_start, then load_end PREFIX records
# PREFIX_machine_cpu_busy_pct (all cores) and PREFIX_other_cpu_pct, the share
# of the machine's CPU that went to none of our processes.  Anything but a
# few percent there means another job shared the machine: run it again.
load_start() {
        l_m0=$(machine_ticks)
        l_o0=$(own_ticks)
}

load_end() { # PREFIX
        l_o1=$(own_ticks)
        l_m1=$(machine_ticks)
        # shellcheck disable=SC2086 # two numbers each
        set -- "$1" $l_m0 $l_m1
        result "$1_machine_cpu_busy_pct" "$(calc "int(100 * ($4 - $2) / ($5 - $3) + 0.5)")"
        result "$1_other_cpu_pct" \
                "$(calc "int(100 * (($4 - $2) - ($l_o1 - $l_o0)) / ($5 - $3) + 0.5)")"
}

hwm_kb() {
        awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# The largest VmHWM among the workers.
worker_hwm_kb() {
        m=0
        for p in $wpids; do
                h=$(hwm_kb "$p")
                [ "${h:-0}" -gt "$m" ] && m=$h
        done
        echo "$m"
}

agent_json() {
        case $EXEC_AGENT in
        c) printf '["%s"]' "$build/bench/echo-agent" ;;
        sh) printf '["/bin/sh", "-c", "cat >/dev/null; echo {}"]' ;;
        *) die "BENCH_EXEC_AGENT: expected c or sh, got $EXEC_AGENT" ;;
        esac
}

agent_desc() {
        case $EXEC_AGENT in
        c) echo "build/bench/echo-agent (C: reads stdin, prints {})" ;;
        sh) echo "/bin/sh -c 'cat >/dev/null; echo {}'" ;;
        esac
}

write_config() {
        cat >"$cfg" <<EOF
{
  "database": "$url",
  "control_socket": "$sock",
  "pool": {"size": $POOL, "prefetch": $PREFETCH},
  "log": {"level": "$LOG_LEVEL"},
  "agents": {"echo": {"argv": $(agent_json)}},
  "workflows": {
    "noop": {"initial": "run", "phases": {"run": {"agent": "builtin:noop"}}},
    "exec": {"initial": "run", "phases": {"run": {"agent": "echo"}}}
  }
}
EOF
        "$build/chimerad" -c "$cfg" --check-config >/dev/null
}

start_chimerad() {
        echo "--- chimerad start ($1)" >>"$log"
        "$build/chimerad" -c "$cfg" >>"$log" 2>&1 &
        cpid=$!
        out=$("$bench" ready "$sock" 30 "$cpid") || die "chimerad did not come up"
        wpids=$(kv pids "$out")
}

# An empty queue, and a checkpoint so that none starts in the middle of a run.
reset_db() {
        sql "TRUNCATE chimera.tasks, chimera.task_events, chimera.supervisors;
             DELETE FROM chimera.queues;"
        sql "CHECKPOINT"
}

section() {
        say ""
        say "=== $*"
}

# ---- the parts ----

# Fills the queue with SIZE tasks of WORKFLOW (one INSERT ... SELECT
# generate_series), analyzes the table as autovacuum would (unless
# BENCH_ANALYZE=0), pauses the queue, starts chimerad, waits for its pool to
# be idle and resumes the queue.
# With MODE all, the whole queue drains (within BENCH_TIMEOUT); with MODE
# count, chimerad is stopped once N tasks finished, or at BENCH_BACKLOG_TIMEOUT
# with fewer.  The rate counts the first N tasks to finish, from
# the first claim (started_at) to the last finish (finished_at); CPU is
# taken from /proc before the resume and once N tasks finished.  Figures
# are recorded under PREFIX.  With "explain", the claim's plan before and after.
drain_part() { # PREFIX WORKFLOW SIZE N MODE [explain]
        prefix=$1 wf=$2 size=$3 n=$4 mode=$5 explain=${6:-}
        asked=$n
        reset_db
        t0=$(now)
        sql "INSERT INTO chimera.tasks (workflow) SELECT '$wf' FROM generate_series(1, $size)"
        t1=$(now)
        [ "$ANALYZE" = 0 ] || sql "ANALYZE chimera.tasks"
        sql "CHECKPOINT"
        if [ -n "$explain" ]; then
                say "inserted in $(calc "int(($t1 - $t0) * 10 + 0.5) / 10") s; chimera.tasks is" \
                        "$(sql "SELECT pg_size_pretty(pg_total_relation_size('chimera.tasks'))")" \
                        "with its indexes"
                explain_claim "before the drain"
        fi
        # Paused (after the EXPLAIN, which would find nothing to claim) while
        # chimerad starts, so that the drain starts with an idle pool.
        sql "INSERT INTO chimera.queues (name, paused, paused_at) VALUES ('default', true, now())"
        d0=$(db_stats)
        start_chimerad "$prefix"
        # chimerad's own connection(s): the only client backends at this point.
        bpids=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
                        AND pid <> pg_backend_pid()")
        s0=$(now)
        c0=$(ticks "$cpid")
        w0=$(workers_ticks)
        p0=$(pg_ticks)
        # shellcheck disable=SC2086 # a list of pids
        b0=$(sum_ticks $bpids)
        load_start
        limit=$TIMEOUT
        [ "$mode" = all ] || limit=$BACKLOG_TIMEOUT
        in_bg "$tmp/out" "$bench" drain "$url" "$sock" "$n" "$mode" "$limit"
        out=$(cat "$tmp/out")
        load_end "$prefix"
        # shellcheck disable=SC2086 # a list of pids
        b1=$(sum_ticks $bpids)
        p1=$(pg_ticks)
        w1=$(workers_ticks)
        c1=$(ticks "$cpid")
        s1=$(now)
        c_hwm=$(hwm_kb "$cpid")
        w_hwm=$(worker_hwm_kb)
        stop_chimerad
        d1=$(db_stats)
        rows=$("$bench" rows "$url" "$n")
        [ "$(kv not_succeeded "$rows")" = 0 ] ||
                die "$(kv not_succeeded "$rows") of $n $wf tasks did not succeed; see chimera.tasks.last_error"
        timed_out=$(kv timed_out "$out")
        if [ "$timed_out" = 1 ]; then
                # Per task figures count what did finish.
                n=$(kv tasks "$rows")
                [ "$n" -gt 0 ] || die "no task finished within $limit s"
        fi
        rate=$(kv tasks_per_s "$rows")
        span=$(kv span_s "$rows")
        wall=$(kv wall_s "$out")
        sup_us=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK / $n")
        wrk_us=$(calc "($w1 - $w0) * 1000000 / $CLK_TCK / $n")
        pg_us=$(calc "($p1 - $p0) * 1000000 / $CLK_TCK / $n")
        result "${prefix}_tasks" "$n"
        result "${prefix}_timed_out" "$timed_out"
        result "${prefix}_tasks_per_s" "$rate"
        result "${prefix}_span_s" "$span"
        result "${prefix}_wall_s" "$wall"
        result "${prefix}_supervisor_cpu_us_per_task" "$(calc "int($sup_us * 10 + 0.5) / 10")"
        result "${prefix}_worker_cpu_us_per_task" "$(calc "int($wrk_us + 0.5)")"
        result "${prefix}_postgres_cpu_us_per_task" "$(calc "int($pg_us + 0.5)")"
        result "${prefix}_backend_cpu_us_per_task" "$(calc "int(($b1 - $b0) * 1000000 / $CLK_TCK / $n + 0.5)")"
        result "${prefix}_backend_busy_pct" "$(calc "int(100 * ($b1 - $b0) / $CLK_TCK / ($s1 - $s0) + 0.5)")"
        # shellcheck disable=SC2086 # three numbers each
        set -- $d0 $d1
        result "${prefix}_commits_per_task" "$(calc "int(100 * ($4 - $1) / $n + 0.5) / 100")"
        result "${prefix}_wal_bytes_per_task" "$(calc "int(($5 - $2) / $n + 0.5)")"
        result "${prefix}_wal_syncs_per_task" "$(calc "int(100 * ($6 - $3) / $n + 0.5) / 100")"
        result "${prefix}_chimerad_peak_rss_kb" "$c_hwm"
        result "${prefix}_worker_peak_rss_kb" "$w_hwm"
        if [ "$mode" = all ]; then
                say "tasks $n, all succeeded; first claim to last finish ${span} s: $rate tasks/s"
                say "wall time from resuming the queue to the last row written finished: ${wall} s"
        elif [ "$timed_out" = 1 ]; then
                say "TIMED OUT after $limit s: only $n of the $asked asked for finished," \
                        "in ${span} s (first claim to last finish): $rate tasks/s"
        else
                say "first $n of $size finished in ${span} s (first claim to last finish):" \
                        "$rate tasks/s"
        fi
        say "CPU per task: chimerad $(get "${prefix}_supervisor_cpu_us_per_task") us," \
                "workers (and agents) $(get "${prefix}_worker_cpu_us_per_task") us," \
                "PostgreSQL $(get "${prefix}_postgres_cpu_us_per_task") us"
        say "PostgreSQL backend of chimerad's connection: $(get "${prefix}_backend_cpu_us_per_task") us" \
                "per task, busy $(get "${prefix}_backend_busy_pct")% of one core"
        say "per task: $(get "${prefix}_commits_per_task") commits," \
                "$(get "${prefix}_wal_syncs_per_task") WAL flushes, $(get "${prefix}_wal_bytes_per_task") bytes of WAL" \
                "(whole server)"
        say "machine CPU busy $(get "${prefix}_machine_cpu_busy_pct")% of $(nproc) cores" \
                "($(get "${prefix}_other_cpu_pct")% on something else than this benchmark)"
        say "peak RSS (VmHWM): chimerad $c_hwm kB, largest worker $w_hwm kB"
        [ -z "$explain" ] || explain_claim "after draining $n (their index entries are dead now)"
}

part_noop() {
        section "(a)+(d) drain: $NOOP_TASKS builtin:noop one-phase tasks, pool.size $POOL"
        drain_part drain_noop noop "$NOOP_TASKS" "$NOOP_TASKS" all
        result supervisor_cpu_us_per_task "$(get drain_noop_supervisor_cpu_us_per_task)"
        result chimerad_peak_rss_kb "$(get drain_noop_chimerad_peak_rss_kb)"
        result worker_peak_rss_kb "$(get drain_noop_worker_peak_rss_kb)"
}

part_exec() {
        section "(b) drain: $EXEC_TASKS tasks with an exec agent, pool.size $POOL"
        say "agent: $(agent_desc)"
        drain_part drain_exec exec "$EXEC_TASKS" "$EXEC_TASKS" all
        result drain_exec_agent "$EXEC_AGENT"
}

part_latency() {
        section "(c) pickup latency: $LAT_TASKS single tasks ${LAT_INTERVAL} ms apart into an idle pool"
        reset_db
        start_chimerad latency
        sleep 0.5
        load_start
        in_bg "$tmp/out" "$bench" latency "$url" "$LAT_TASKS" "$LAT_INTERVAL" noop "$LAT_WARMUP"
        out=$(cat "$tmp/out")
        load_end latency
        stop_chimerad
        for k in claim pickup finish; do
                for p in p50 p95 p99 max; do
                        result "${k}_${p}_ms" "$(kv "${k}_${p}_ms" "$out")"
                done
        done
        say "from the client's clock right after COMMIT returned (ms; $(get latency_other_cpu_pct)% of" \
                "the machine's CPU went to something else than this benchmark meanwhile):"
        say "                        p50     p95     p99     max"
        for k in claim pickup finish; do
                case $k in
                claim) label="claimed event" ;;
                pickup) label="phase_started event" ;;
                finish) label="succeeded event" ;;
                esac
                printf '  %-20s %7s %7s %7s %7s\n' "$label" "$(get "${k}_p50_ms")" \
                        "$(get "${k}_p95_ms")" "$(get "${k}_p99_ms")" "$(get "${k}_max_ms")"
        done
}

# chimerad's claim statement, taken from supervisor/queue.c (CLAIM_SQL).
claim_sql() {
        awk '/CLAIM_SQL\[\] =/ { on = 1; next }
             on { line = $0; sub(/^[ \t]*"/, "", line); sub(/"[ \t;]*$/, "", line);
                  printf "%s", line; if ($0 ~ /;[ \t]*$/) exit }' supervisor/queue.c |
                sed -e 's/\\"/"/g' -e 's/  */ /g'
}

# EXPLAIN (ANALYZE) of the claim as chimerad runs it: a prepared statement
# with its parameters (this run's pool size as the LIMIT), in a transaction
# rolled back, so nothing is claimed.
explain_claim() { # TITLE
        q=$(claim_sql)
        case $q in
        'WITH c AS'*) ;;
        *) die "could not take CLAIM_SQL from supervisor/queue.c" ;;
        esac
        say "EXPLAIN (ANALYZE, BUFFERS) of the claim statement, $1:"
        "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$url" <<EOF | sed 's/^/    /'
BEGIN;
PREPARE claim(uuid, bigint, text[], int, text) AS $q;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('00000000-0000-4000-8000-000000000000', 60000,
                                         '{default}', $POOL, 'bench');
ROLLBACK;
EOF
}

part_backlog() {
        section "(e) drain rate with $BACKLOG_SMALL versus $BACKLOG_LARGE tasks queued"
        for size in "$BACKLOG_SMALL" "$BACKLOG_LARGE"; do
                name=small
                [ "$size" = "$BACKLOG_SMALL" ] || name=large
                say ""
                say "--- backlog of $size queued tasks: draining the first $BACKLOG_DRAIN"
                drain_part "backlog_$name" noop "$size" "$BACKLOG_DRAIN" count explain
                result "backlog_${name}_queued" "$size"
        done
        small=$(get backlog_small_tasks_per_s 0)
        large=$(get backlog_large_tasks_per_s 0)
        result backlog_large_vs_small_pct "$(calc "int(100 * $large / ($small > 0 ? $small : 1) + 0.5)")"
        say ""
        say "the large backlog drains at $(get backlog_large_vs_small_pct)% of the small one's rate"
        reset_db
}

sql_ceiling_one() { # B JOBS
        b=$1 jobs=$2
        cycles=$(((jobs + SQL_CLIENTS * b - 1) / (SQL_CLIENTS * b)))
        rows=$((cycles * SQL_CLIENTS * b + cycles * SQL_CLIENTS * b / 10))
        sql "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
             CREATE TABLE bench.jobs (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 queue text NOT NULL DEFAULT 'default',
                 priority smallint NOT NULL DEFAULT 3,
                 status text NOT NULL DEFAULT 'queued',
                 run_at timestamptz NOT NULL DEFAULT now(),
                 payload jsonb NOT NULL DEFAULT '{}',
                 locked_by int,
                 started_at timestamptz,
                 finished_at timestamptz) WITH (fillfactor = 80);
             CREATE INDEX ON bench.jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
             CREATE INDEX ON bench.jobs (locked_by) WHERE status = 'running';
             INSERT INTO bench.jobs (payload) SELECT '{}' FROM generate_series(1, $rows);"
        sql "VACUUM ANALYZE bench.jobs"
        sql "CHECKPOINT"
        d0=$(db_stats)
        load_start
        threads=2
        [ "$SQL_CLIENTS" -ge 2 ] || threads=1
        in_bg "$tmp/out" "$PGBENCH" -n -M prepared -c "$SQL_CLIENTS" -j "$threads" -t "$cycles" -D b="$b" \
                -f "$tmp/claim.sql" "$url" || die "pgbench failed"
        out=$(cat "$tmp/out")
        load_end "sql_ceiling_b$b"
        d1=$(db_stats)
        tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)
        got=$(sql "SELECT count(*) || ' ' || coalesce(extract(epoch FROM max(finished_at) - min(started_at)), 0)
                     FROM bench.jobs WHERE status = 'succeeded'")
        rate=$(echo "$got" | awk '{ printf "%.0f", ($2 > 0 ? $1 / $2 : 0) }')
        result "sql_ceiling_b${b}_jobs_per_s" "$rate"
        # shellcheck disable=SC2086 # three numbers each
        set -- $d0 $d1
        result "sql_ceiling_b${b}_wal_bytes_per_job" "$(calc "int(($5 - $2) / ($cycles * $SQL_CLIENTS * $b) + 0.5)")"
        say "B=$b: $SQL_CLIENTS clients x $cycles cycles, $(echo "$got" | cut -d' ' -f1) jobs in" \
                "$(echo "$got" | awk '{ printf "%.2f", $2 }') s: $rate jobs/s" \
                "(pgbench: $tps cycles/s x $b = $(calc "int($tps * $b + 0.5)")); WAL per job" \
                "$(get "sql_ceiling_b${b}_wal_bytes_per_job") bytes;" \
                "$(get "sql_ceiling_b${b}_other_cpu_pct")% of the CPU on something else"
}

part_sql() {
        section "plain-SQL ceiling: $SQL_CLIENTS clients claim B rows (SKIP LOCKED) and mark them done, 2 commits a cycle"
        if [ -z "$PGBENCH" ] || [ ! -x "$PGBENCH" ]; then
                say "pgbench not found (it ships in postgresql-client): skipped"
                return 0
        fi
        cat >"$tmp/claim.sql" <<'EOF'
UPDATE bench.jobs j SET status = 'running', locked_by = :client_id, started_at = now()
  FROM (SELECT id FROM bench.jobs
         WHERE status = 'queued' AND queue = 'default' AND run_at <= now()
         ORDER BY priority DESC, run_at, id LIMIT :b FOR UPDATE SKIP LOCKED) s
 WHERE j.id = s.id;
UPDATE bench.jobs SET status = 'succeeded', finished_at = now(), locked_by = NULL
 WHERE status = 'running' AND locked_by = :client_id;
EOF
        say "table shaped like chimera.tasks, same claim index; pgbench script (one cycle):"
        sed 's/^/    /' "$tmp/claim.sql"
        sql_ceiling_one 10 "$SQL_JOBS_B10"
        sql_ceiling_one 100 "$SQL_JOBS_B100"
        sql "DROP SCHEMA bench CASCADE"
}

# ---- the run ----

started=$(now)
say "chimera bench: $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores," \
        "$(awk '/^MemTotal:/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), pool.size $POOL," \
        "log.level $LOG_LEVEL"
say "parts:$parts"
url=$(sh tests/pg.sh start "$pgdir" --durable)
say "PostgreSQL $(sql "SHOW server_version"), fsync $(sql "SHOW fsync")," \
        "synchronous_commit $(sql "SHOW synchronous_commit"), shared_buffers $(sql "SHOW shared_buffers")"
write_config
"$build/chimerad" -c "$cfg" --migrate >/dev/null

for part in $parts; do
        in_chimerad_part=1
        [ "$part" != sql ] || in_chimerad_part=
        "part_$part"
done
in_chimerad_part=

# ---- the report ----

ran() {
        case " $parts " in *" $1 "*) return 0 ;; esac
        return 1
}

backlog_figure() { # small|large
        if [ "$(get "backlog_$1_timed_out")" = 1 ]; then
                echo "$(get "backlog_$1_tasks_per_s") tasks/s (TIMED OUT)"
        else
                echo "$(get "backlog_$1_tasks_per_s") tasks/s"
        fi
}

row() { # FIGURE MEASURED TARGET
        printf '| %-44s | %-26s | %-17s |\n' "$1" "$2" "$3"
}

say ""
say "=== summary (durable PostgreSQL, pool.size $POOL, $(nproc) cores)"
row "figure" "measured" "issue 6 target"
row "--------------------------------------------" "--------------------------" "-----------------"
if ran noop; then
        row "(a) drain, builtin:noop, $NOOP_TASKS tasks" "$(get drain_noop_tasks_per_s) tasks/s" ">= 25,000"
        row "    wall time (resume to last finished)" "$(get drain_noop_wall_s) s" ""
        row "    chimerad's PostgreSQL backend" \
                "$(get drain_noop_backend_cpu_us_per_task) us/task, $(get drain_noop_backend_busy_pct) % busy" ""
fi
if ran exec; then
        row "(b) drain, exec agent, $EXEC_TASKS tasks" "$(get drain_exec_tasks_per_s) tasks/s" ">= 2,500"
        row "    wall time (resume to last finished)" "$(get drain_exec_wall_s) s" ""
        row "    CPU per task: workers+agents, machine" \
                "$(get drain_exec_worker_cpu_us_per_task) us, $(get drain_exec_machine_cpu_busy_pct) % busy" ""
fi
if ran latency; then
        row "(c) pickup latency p50 / p95 / p99" \
                "$(get pickup_p50_ms) / $(get pickup_p95_ms) / $(get pickup_p99_ms) ms" "<= 1 / - / 2.5 ms"
fi
if ran noop; then
        row "(d) chimerad CPU per task (noop drain)" "$(get supervisor_cpu_us_per_task) us" "<= 15 us"
        row "    peak RSS chimerad / one worker" \
                "$(calc "$(get chimerad_peak_rss_kb 0) / 1024" | xargs printf '%.1f') / $(calc "$(get worker_peak_rss_kb 0) / 1024" | xargs printf '%.1f') MB" \
                "<= 10 / 3 MB"
fi
if ran backlog; then
        row "(e) drain with $BACKLOG_SMALL queued" "$(backlog_figure small)" ""
        row "    drain with $BACKLOG_LARGE queued" "$(backlog_figure large)" ""
        row "    large / small" "$(get backlog_large_vs_small_pct) %" ">= 80 %"
fi
if ran sql && [ "$(get sql_ceiling_b10_jobs_per_s)" != - ]; then
        row "plain SQL, B=10 / B=100" \
                "$(get sql_ceiling_b10_jobs_per_s) / $(get sql_ceiling_b100_jobs_per_s) jobs/s" ""
        if ran noop; then
                row "    noop drain / plain SQL B=100" \
                        "$(calc "int(100 * $(get drain_noop_tasks_per_s 0) / $(get sql_ceiling_b100_jobs_per_s 1) + 0.5)") %" \
                        ">= 50 %"
        fi
fi
say ""
result bench_seconds "$(calc "int($(now) - $started + 0.5)")"
sed 's/^/bench: /' "$results"
