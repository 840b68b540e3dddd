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
#   exec     (b) the same with an exec agent, 5,000 tasks; then the ceiling
#            of a process per task on this machine: the same agent started
#            5,000 times by 8 loops with neither chimera nor PostgreSQL
#            (chimera-bench spawn), what one start costs the agent, and what
#            one CPUID instruction costs (it traps to the hypervisor of a VM,
#            and glibc runs it dozens of times at each process start); and
#            the drain again with build/bench/bare-agent, an agent without
#            the C library, which shows chimera's own price of a process per
#            phase (x86-64 only)
#   latency  (c) pickup latency: 300 single tasks 20 ms apart into an idle
#            pool, from INSERT commit to phase start, p50/p95/p99
#   backlog  (e) drain rate with 10,000 versus 1,000,000 tasks queued, with
#            the EXPLAIN (ANALYZE) of the claim statement
#   sql      the plain-SQL ceiling: 8 pgbench clients claiming B rows with
#            SKIP LOCKED and marking them done, 2 commits a cycle, B=10, 100
#   churn    1,000,000 tasks through chimerad with a short retention and a
#            bounded backlog: sizes of chimera.tasks, its indexes and
#            chimera.task_events over the run (not part of "all": it is long)
#
# With no PART (or "all") every part but churn runs, in that order.  Aliases: a and d
# for noop, b for exec, c for latency, e for backlog, ceiling for sql.
# Output: each part's details as it runs, then a table for people and one
# "bench: key=value" line per figure for scripts.
#
# Environment (defaults in brackets):
#   BENCH_BUILD [build]             where chimerad, chimera-worker and build/bench/ are
#   BENCH_NO_MAKE                   set: do not run make first (`make bench` has)
#   BENCH_POOL [8]                  pool.size
#   BENCH_PREFETCH [256]            pool.prefetch: tasks claimed ahead of free workers
#   BENCH_LOG_LEVEL [info]          chimerad's log.level (its log goes to a file)
#   BENCH_NOOP_TASKS [20000]        tasks for part noop
#   BENCH_EXEC_TASKS [5000]         tasks for part exec
#   BENCH_EXEC_AGENT [c]            c: build/bench/echo-agent (reads stdin, prints {});
#                                   sh: /bin/sh -c 'cat >/dev/null; echo {}'
#   BENCH_SPAWNS [5000]             agent starts in the process-start ceiling (0: skip it)
#   BENCH_SPAWN_LOOPS [8]           loops starting them side by side (default: BENCH_POOL)
#   BENCH_EXEC_BARE [1]             0: skip the drain with bare-agent
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
#   BENCH_WAL_SEGMENTS [16]         WAL segments made ready before the parts, as on a
#                                   server that has been running (0: none; see prealloc_wal)
#   BENCH_CHURN_TASKS [1000000]     tasks for part churn
#   BENCH_CHURN_RETENTION [5s]      chimerad's retention in part churn
#   BENCH_CHURN_BACKLOG [10000]     part churn tops the queue up to this when it falls
#                                   under half of it
#   BENCH_CHURN_SAMPLE_S [2]        seconds between two samples of the sizes
#   BENCH_CHURN_TIMEOUT [7200]      seconds part churn may take before it fails
#   BENCH_CHURN_NAPTIME             autovacuum_naptime for part churn ("10s"); default:
#                                   the server's, 1min
#
# Everything it starts (PostgreSQL, chimerad and its workers) is stopped on
# every way out, by a trap.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$top"

build=${BENCH_BUILD:-build}
POOL=${BENCH_POOL:-8}
PREFETCH=${BENCH_PREFETCH:-256}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
NOOP_TASKS=${BENCH_NOOP_TASKS:-20000}
EXEC_TASKS=${BENCH_EXEC_TASKS:-5000}
EXEC_AGENT=${BENCH_EXEC_AGENT:-c}
SPAWNS=${BENCH_SPAWNS:-5000}
SPAWN_LOOPS=${BENCH_SPAWN_LOOPS:-$POOL}
EXEC_BARE=${BENCH_EXEC_BARE:-1}
LAT_TASKS=${BENCH_LATENCY_TASKS:-300}
LAT_INTERVAL=${BENCH_LATENCY_INTERVAL_MS:-20}
LAT_WARMUP=10
BACKLOG_SMALL=${BENCH_BACKLOG_SMALL:-10000}
BACKLOG_LARGE=${BENCH_BACKLOG_LARGE:-1000000}
BACKLOG_DRAIN=${BENCH_BACKLOG_DRAIN:-10000}
BACKLOG_TIMEOUT=${BENCH_BACKLOG_TIMEOUT:-60}
WAL_SEGMENTS=${BENCH_WAL_SEGMENTS:-16}
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
        churn) parts="$parts churn" ;;
        -h | --help | help)
                sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
                exit 0
                ;;
        *) die "unknown part \"$arg\" (noop, exec, latency, backlog, sql, churn or all)" ;;
        esac
done
[ -n "$parts" ] || parts="noop exec latency backlog sql"
[ "$BACKLOG_DRAIN" -le "$BACKLOG_SMALL" ] ||
        die "BENCH_BACKLOG_DRAIN ($BACKLOG_DRAIN) exceeds BENCH_BACKLOG_SMALL ($BACKLOG_SMALL)"

if [ -z "${BENCH_NO_MAKE:-}" ]; then
        make -s BUILD="$build" bench-programs >&2
fi
build=$(cd "$build" && pwd -P)
bench=$build/bench/chimera-bench
for f in "$build/chimerad" "$build/chimera-worker" "$build/chimera-ctl" "$bench" \
        "$build/bench/echo-agent"; do
        [ -x "$f" ] || die "$f is missing: run make bench"
done
# Optional: built on x86-64 only (the Makefile's BENCH_PROGRAMS).
bare=$build/bench/bare-agent
[ -x "$bare" ] || bare=

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

# chimera-bench spawn with the agent's argv (exec: in_bg's kill then reaches it).
spawn_agent() { # SPAWN-ARGS...
        case $EXEC_AGENT in
        c) exec "$bench" spawn "$@" "$build/bench/echo-agent" ;;
        sh) exec "$bench" spawn "$@" /bin/sh -c 'cat >/dev/null; echo {}' ;;
        esac
}

agent_desc() {
        case $EXEC_AGENT in
        c) echo "build/bench/echo-agent (C: reads stdin, prints {})" ;;
        sh) echo "/bin/sh -c 'cat >/dev/null; echo {}'" ;;
        esac
}

write_config() {
        bare_agent='' bare_workflow=''
        if [ -n "$bare" ]; then
                bare_agent=", \"bare\": {\"argv\": [\"$bare\"]}"
                bare_workflow=", \"exec_bare\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": \"bare\"}}}"
        fi
        cat >"$cfg" <<EOF
{
  "database": "$url",
  "control_socket": "$sock",
  "pool": {"size": $POOL, "prefetch": $PREFETCH},
  "log": {"level": "$LOG_LEVEL"},
  "agents": {"echo": {"argv": $(agent_json)}$bare_agent},
  "workflows": {
    "noop": {"initial": "run", "phases": {"run": {"agent": "builtin:noop"}}},
    "exec": {"initial": "run", "phases": {"run": {"agent": "echo"}}}$bare_workflow
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

# A fresh cluster has one WAL segment.  Each 16 MB of WAL written after it
# would create the next file: 16 MB of zeros written and fsynced while the
# WAL write lock is held, so that no commit completes meanwhile (about
# 20 ms on the bench machine, once every ~7,500 no-op tasks).  A server that
# has been running does not pay it: each checkpoint renames the segments
# it no longer needs into the next ones.  So the bench makes WAL_SEGMENTS
# segments (a row and pg_switch_wal() each) and a checkpoint recycles them
# ahead; each part's own checkpoint (reset_db) recycles them again.
prealloc_wal() {
        [ "$WAL_SEGMENTS" -gt 0 ] || return 0
        sql "CREATE TABLE bench_wal (n int)"
        sql "DO \$\$ BEGIN FOR i IN 1..$WAL_SEGMENTS LOOP
                 INSERT INTO bench_wal VALUES (i); PERFORM pg_switch_wal();
             END LOOP; END \$\$"
        sql "DROP TABLE bench_wal"
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
        # chimerad's connections, by the application_name it gives them.
        cbpid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'chimerad claims'")
        wbpid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'chimerad writes'")
        [ -n "$cbpid" ] && [ -n "$wbpid" ] || die "chimerad's two database connections were not found"
        bpids="$cbpid $wbpid"
        s0=$(now)
        c0=$(ticks "$cpid")
        w0=$(workers_ticks)
        p0=$(pg_ticks)
        # shellcheck disable=SC2086 # a list of pids
        b0=$(sum_ticks $bpids)
        cb0=$(sum_ticks "$cbpid")
        load_start
        limit=$TIMEOUT
        [ "$mode" = all ] || limit=$BACKLOG_TIMEOUT
        in_bg "$tmp/out" "$bench" drain "$url" "$sock" "$n" "$mode" "$limit"
        out=$(cat "$tmp/out")
        load_end "$prefix"
        # shellcheck disable=SC2086 # a list of pids
        b1=$(sum_ticks $bpids)
        cb1=$(sum_ticks "$cbpid")
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
        result "${prefix}_claims_backend_busy_pct" "$(calc "int(100 * ($cb1 - $cb0) / $CLK_TCK / ($s1 - $s0) + 0.5)")"
        result "${prefix}_writes_backend_busy_pct" "$(calc "int(100 * ($b1 - $b0 - $cb1 + $cb0) / $CLK_TCK / ($s1 - $s0) + 0.5)")"
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
        say "PostgreSQL backends of chimerad's two connections: $(get "${prefix}_backend_cpu_us_per_task") us" \
                "per task; busy $(get "${prefix}_claims_backend_busy_pct")% (claims) and" \
                "$(get "${prefix}_writes_backend_busy_pct")% (writes) of one core"
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
        if [ "$SPAWNS" -gt 0 ]; then
                loops=$SPAWN_LOOPS
                [ "$loops" -ge 1 ] || loops=1
                each=$(((SPAWNS + loops - 1) / loops))
                say ""
                say "--- the ceiling: the same agent started $((each * loops)) times by $loops loops side by" \
                        "side (posix_spawn, request on a stdin pipe, stdout read, waitpid), no chimera, no PostgreSQL"
                load_start
                in_bg "$tmp/out" spawn_agent "$loops" "$each"
                out=$(cat "$tmp/out")
                load_end spawn
                for k in spawns_per_s agent_cpu_us spawner_cpu_us cpuid_us; do
                        result "spawn_$k" "$(kv "$k" "$out")"
                done
                result drain_exec_vs_spawn_pct \
                        "$(calc "int(100 * $(get drain_exec_tasks_per_s 0) / $(get spawn_spawns_per_s 1) + 0.5)")"
                say "$(get spawn_spawns_per_s) starts/s; CPU per start: agent $(get spawn_agent_cpu_us) us," \
                        "loop $(get spawn_spawner_cpu_us) us; machine CPU busy $(get spawn_machine_cpu_busy_pct)%"
                say "the exec drain ran at $(get drain_exec_vs_spawn_pct)% of this ceiling, with its tasks" \
                        "claimed and finished in PostgreSQL"
                if [ "$(get spawn_cpuid_us)" != 0.00 ]; then
                        say "one CPUID instruction: $(get spawn_cpuid_us) us (glibc runs dozens as each process starts)"
                fi
        fi
        if [ -n "$bare" ] && [ "$EXEC_BARE" != 0 ]; then
                say ""
                say "--- the drain again with build/bench/bare-agent (no C library: no CPUID at its start)"
                drain_part drain_exec_bare exec_bare "$EXEC_TASKS" "$EXEC_TASKS" all
        fi
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

# chimerad's claim statement for one served queue (the bench serves "default"),
# taken from supervisor/queue.c (CLAIM_ONE_SQL).
claim_sql() {
        awk '/CLAIM_ONE_SQL\[\] =/ { on = 1; next }
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
        *) die "could not take CLAIM_ONE_SQL from supervisor/queue.c" ;;
        esac
        say "EXPLAIN (ANALYZE, BUFFERS) of the claim statement (generic plan, no JIT, as chimerad runs it), $1:"
        "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$url" <<EOF | sed 's/^/    /'
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
SET LOCAL jit = off;
PREPARE claim(uuid, bigint, text, int, text) AS $q;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('00000000-0000-4000-8000-000000000000', 60000,
                                         'default', $POOL, 'bench');
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

# ---- part churn: table and index sizes under churn (issue 6) ----
#
# CHURN_TASKS noop tasks go through one chimerad with a short `retention`.
# They are inserted in chunks (one INSERT ... generate_series each) that top
# the queue up to CHURN_BACKLOG whenever it falls below half of that, so the
# backlog stays bounded and the table holds only the backlog, what runs, and
# what finished within the retention (plus the dead rows autovacuum has not
# reclaimed yet).  Every CHURN_SAMPLE_S seconds, and at every tenth of the
# way, it samples the sizes of chimera.tasks and chimera.task_events (heap,
# each index, total) and the statistics' live and dead rows.  Tables that
# grew with the tasks processed would peak about twice as high in the second
# half of the run as in the first; bounded ones peak about as high, once the
# run is long next to autovacuum_naptime (1 min by default): until
# autovacuum first comes, they grow by every task's dead rows.  Once the
# last task has finished it waits for retention to delete every row, to show
# that nothing is left behind.

CHURN_TASKS=${BENCH_CHURN_TASKS:-1000000}
CHURN_RETENTION=${BENCH_CHURN_RETENTION:-5s}
CHURN_BACKLOG=${BENCH_CHURN_BACKLOG:-10000}
CHURN_SAMPLE_S=${BENCH_CHURN_SAMPLE_S:-2}
CHURN_TIMEOUT=${BENCH_CHURN_TIMEOUT:-7200}
CHURN_NAPTIME=${BENCH_CHURN_NAPTIME:-}

# One sample as key=value words: elapsed seconds, tasks done, sizes in
# bytes, rows from pg_stat_user_tables, autovacuum runs, each index's size.
churn_sample() { # ELAPSED DONE
        sql "SELECT 't=$1 done=$2'
                 || ' tasks_heap=' || pg_relation_size('chimera.tasks')
                 || ' tasks_indexes=' || pg_indexes_size('chimera.tasks')
                 || ' tasks_total=' || pg_total_relation_size('chimera.tasks')
                 || ' events_heap=' || pg_relation_size('chimera.task_events')
                 || ' events_indexes=' || pg_indexes_size('chimera.task_events')
                 || ' events_total=' || pg_total_relation_size('chimera.task_events')
                 || ' total=' || (pg_total_relation_size('chimera.tasks')
                                  + pg_total_relation_size('chimera.task_events'))
                 || (SELECT string_agg(' ' || CASE relid WHEN 'chimera.tasks'::regclass
                                                   THEN 'tasks' ELSE 'events' END
                                          || '_live=' || n_live_tup || ' '
                                          || CASE relid WHEN 'chimera.tasks'::regclass
                                                   THEN 'tasks' ELSE 'events' END
                                          || '_dead=' || n_dead_tup || ' '
                                          || CASE relid WHEN 'chimera.tasks'::regclass
                                                   THEN 'tasks' ELSE 'events' END
                                          || '_autovacuums=' || autovacuum_count, '')
                       FROM pg_stat_user_tables
                      WHERE relid IN ('chimera.tasks'::regclass, 'chimera.task_events'::regclass))
                 || (SELECT string_agg(' idx_' || c.relname || '=' || pg_relation_size(c.oid), ''
                                       ORDER BY c.relname)
                       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE i.indrelid IN ('chimera.tasks'::regclass,
                                           'chimera.task_events'::regclass))" >>"$tmp/churn.samples"
}

# KEY of the sample taken nearest to DONE tasks (the first at or past it).
churn_at() { # KEY DONE
        awk -v k="$1" -v d="$2" '{ v = ""; n = -1
                for (i = 1; i <= NF; i++) { split($i, kv, "=")
                        if (kv[1] == "done") n = kv[2]; if (kv[1] == k) v = kv[2] }
                if (n >= d && v != "") { print v; exit } }' "$tmp/churn.samples"
}

# The largest KEY over the samples with FROM <= done < TO.
churn_peak() { # KEY FROM TO
        awk -v k="$1" -v lo="$2" -v hi="$3" '{ v = ""; n = -1
                for (i = 1; i <= NF; i++) { split($i, kv, "=")
                        if (kv[1] == "done") n = kv[2]; if (kv[1] == k) v = kv[2] }
                if (n >= lo && n < hi && v != "" && v + 0 > m + 0) m = v }
                END { print m + 0 }' "$tmp/churn.samples"
}

churn_seconds() { # DURATION as chimerad reads it ("5s", "2m"), in whole seconds
        case $1 in
        *ms) echo $((${1%ms} / 1000)) ;;
        *s) echo "${1%s}" ;;
        *m) echo $((${1%m} * 60)) ;;
        *h) echo $((${1%h} * 3600)) ;;
        *d) echo $((${1%d} * 86400)) ;;
        *) echo 0 ;;
        esac
}

churn_mb() { # BYTES
        calc "$1 / 1048576" | xargs printf '%.1f'
}

churn_row() { # the last sample as a table row
        tail -n 1 "$tmp/churn.samples" | awk -v total="$CHURN_TASKS" '{
                for (i = 1; i <= NF; i++) { split($i, kv, "="); s[kv[1]] = kv[2] }
                mb = 1048576
                printf "  %5.0f%% %9d %7.0f %9d %8d %9.1f %9.1f %9.1f %9.1f %9.1f\n",
                        100 * s["done"] / total, s["done"], s["t"], s["tasks_live"],
                        s["tasks_dead"], s["tasks_heap"] / mb, s["tasks_indexes"] / mb,
                        s["events_heap"] / mb, s["events_indexes"] / mb, s["total"] / mb }'
}

part_churn() {
        section "churn: $CHURN_TASKS builtin:noop tasks through chimerad, retention $CHURN_RETENTION," \
                "backlog kept under $CHURN_BACKLOG"
        reset_db
        : >"$tmp/churn.samples"
        churn_cfg=$tmp/churn.json
        cat >"$churn_cfg" <<CHURN_EOF
{
  "database": "$url",
  "control_socket": "$sock",
  "pool": {"size": $POOL, "prefetch": $PREFETCH},
  "log": {"level": "$LOG_LEVEL"},
  "retention": "$CHURN_RETENTION",
  "workflows": {"noop": {"initial": "run", "phases": {"run": {"agent": "builtin:noop"}}}}
}
CHURN_EOF
        "$build/chimerad" -c "$churn_cfg" --check-config >/dev/null
        if [ -n "$CHURN_NAPTIME" ]; then
                sql "ALTER SYSTEM SET autovacuum_naptime = '$CHURN_NAPTIME'"
                sql "SELECT pg_reload_conf()" >/dev/null
                sleep 0.5
        fi
        say "autovacuum_naptime $(sql "SHOW autovacuum_naptime"); chimera.tasks options:" \
                "$(sql "SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = 'chimera.tasks'::regclass");" \
                "chimera.task_events options:" \
                "$(sql "SELECT coalesce(array_to_string(reloptions, ', '), 'defaults') FROM pg_class WHERE oid = 'chimera.task_events'::regclass")"
        saved_cfg=$cfg
        cfg=$churn_cfg
        start_chimerad churn
        cfg=$saved_cfg
        say "sizes in MB; live and dead rows from pg_stat_user_tables (estimates):"
        say "  progress      done       s  live rows dead rows tasks heap  tasks idx events heap events idx     total"
        load_start
        inserted=0 done=0 mark=1 t0=$(now) next_sample=0
        churn_sample 0 0
        while :; do
                # shellcheck disable=SC2046 # two numbers
                set -- $(sql "SELECT count(*) FILTER (WHERE status = 'queued'),
                                     count(*) FILTER (WHERE status = 'running')
                                FROM chimera.tasks WHERE status IN ('queued', 'running')" | tr '|' ' ')
                done=$((inserted - $1 - $2))
                el=$(calc "$(now) - $t0")
                if [ "$1" -lt $((CHURN_BACKLOG / 2)) ] && [ "$inserted" -lt "$CHURN_TASKS" ]; then
                        add=$((CHURN_BACKLOG - $1))
                        [ $((inserted + add)) -le "$CHURN_TASKS" ] || add=$((CHURN_TASKS - inserted))
                        sql "INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, $add)"
                        inserted=$((inserted + add))
                fi
                if [ "$done" -ge $((CHURN_TASKS * mark / 10)) ]; then
                        churn_sample "$el" "$done"
                        churn_row
                        while [ "$mark" -le 10 ] && [ "$done" -ge $((CHURN_TASKS * mark / 10)) ]; do
                                mark=$((mark + 1))
                        done
                elif [ "$(calc "($el >= $next_sample) ? 1 : 0")" = 1 ]; then
                        churn_sample "$el" "$done"
                        next_sample=$(calc "$el + $CHURN_SAMPLE_S")
                fi
                [ "$done" -lt "$CHURN_TASKS" ] || break
                kill -0 "$cpid" 2>/dev/null || die "chimerad exited during the churn run"
                [ "$(calc "($el < $CHURN_TIMEOUT) ? 1 : 0")" = 1 ] ||
                        die "churn: only $done of $CHURN_TASKS tasks done after $CHURN_TIMEOUT s (BENCH_CHURN_TIMEOUT)"
                sleep 0.2
        done
        wall=$(calc "$(now) - $t0")
        load_end churn
        failed=$(sql "SELECT count(*) FROM chimera.tasks WHERE status <> 'succeeded'")
        [ "$failed" = 0 ] || die "churn: $failed tasks did not succeed; see chimera.tasks.last_error"
        # Retention's last deletions: every row goes once it is past the
        # retention, within a period (at most 60 s) more.
        limit=$(($(churn_seconds "$CHURN_RETENTION") + 90))
        t1=$(now)
        while [ "$(sql "SELECT count(*) FROM chimera.tasks")" != 0 ] &&
                [ "$(calc "($(now) - $t1 < $limit) ? 1 : 0")" = 1 ]; do
                sleep 0.2
        done
        emptied=$(calc "int(($(now) - $t1) * 10 + 0.5) / 10")
        left_tasks=$(sql "SELECT count(*) FROM chimera.tasks")
        left_events=$(sql "SELECT count(*) FROM chimera.task_events")
        churn_sample "$(calc "$(now) - $t0")" "$((CHURN_TASKS + 1))"
        stop_chimerad
        deleted=$(sed -n 's/.*retention: deleted \([0-9]*\) .*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
        runs=$(grep -c 'retention: deleted' "$log" || true)
        longest=$(sed -n 's/.*retention: deleted .* batch[es]*, \([0-9]*\) ms.*/\1/p' "$log" | sort -n | tail -n 1)

        half=$((CHURN_TASKS / 2))
        tenth=$((CHURN_TASKS / 10))
        result churn_tasks "$CHURN_TASKS"
        result churn_retention "$CHURN_RETENTION"
        result churn_backlog "$CHURN_BACKLOG"
        result churn_autovacuum_naptime "$(sql "SHOW autovacuum_naptime")"
        result churn_wall_s "$(calc "int($wall + 0.5)")"
        result churn_tasks_per_s "$(calc "int($CHURN_TASKS / $wall + 0.5)")"
        for k in tasks_total tasks_heap tasks_indexes events_total events_heap events_indexes total; do
                result "churn_${k}_bytes_at_10pct" "$(churn_at "$k" "$tenth")"
                result "churn_${k}_bytes_at_50pct" "$(churn_at "$k" "$half")"
                result "churn_${k}_bytes_at_end" "$(churn_at "$k" "$CHURN_TASKS")"
                result "churn_${k}_bytes_peak" "$(churn_peak "$k" 0 $((CHURN_TASKS + 1)))"
        done
        first=$(churn_peak total 0 "$half")
        second=$(churn_peak total "$half" $((CHURN_TASKS + 1)))
        result churn_total_peak_second_half_vs_first_pct "$(calc "int(100 * $second / ($first > 0 ? $first : 1) + 0.5)")"
        result churn_tasks_autovacuums "$(churn_at tasks_autovacuums "$CHURN_TASKS")"
        result churn_events_autovacuums "$(churn_at events_autovacuums "$CHURN_TASKS")"
        result churn_retention_runs "$runs"
        result churn_retention_deleted "$deleted"
        result churn_retention_longest_run_ms "${longest:-0}"
        result churn_rows_left_after_retention "$((left_tasks + left_events))"
        result churn_emptied_after_s "$emptied"

        say ""
        say "$CHURN_TASKS tasks in $(get churn_wall_s) s ($(get churn_tasks_per_s) tasks/s, backlog under" \
                "$CHURN_BACKLOG); $(get churn_other_cpu_pct)% of the CPU went to something else"
        say "retention: $runs runs deleted $deleted tasks (longest run $(get churn_retention_longest_run_ms) ms);" \
                "$left_tasks tasks and $left_events events left $emptied s after the last finished"
        say "autovacuum runs: chimera.tasks $(get churn_tasks_autovacuums), chimera.task_events $(get churn_events_autovacuums)"
        say "sizes (MB)                        at 10%    at 50%    at end      peak"
        for k in tasks_heap tasks_indexes tasks_total events_heap events_indexes events_total total; do
                printf '  %-28s %9s %9s %9s %9s\n' "$k" "$(churn_mb "$(get "churn_${k}_bytes_at_10pct" 0)")" \
                        "$(churn_mb "$(get "churn_${k}_bytes_at_50pct" 0)")" \
                        "$(churn_mb "$(get "churn_${k}_bytes_at_end" 0)")" \
                        "$(churn_mb "$(get "churn_${k}_bytes_peak" 0)")"
        done
        for ix in $(tail -n 1 "$tmp/churn.samples" | tr ' ' '\n' | sed -n 's/^\(idx_[^=]*\)=.*/\1/p'); do
                printf '  %-28s %9s %9s %9s %9s\n' "  ${ix#idx_}" "$(churn_mb "$(churn_at "$ix" "$tenth")")" \
                        "$(churn_mb "$(churn_at "$ix" "$half")")" "$(churn_mb "$(churn_at "$ix" "$CHURN_TASKS")")" \
                        "$(churn_mb "$(churn_peak "$ix" 0 $((CHURN_TASKS + 1)))")"
        done
        say "peak of the total size over the second half: $(get churn_total_peak_second_half_vs_first_pct)% of the first half's"
        reset_db
        if [ -n "$CHURN_NAPTIME" ]; then
                sql "ALTER SYSTEM RESET autovacuum_naptime"
                sql "SELECT pg_reload_conf()" >/dev/null
        fi
}

# ---- the run ----

started=$(now)
say "chimera bench: $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores," \
        "$(awk '/^MemTotal:/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), pool.size $POOL," \
        "pool.prefetch $PREFETCH, log.level $LOG_LEVEL"
say "parts:$parts"
url=$(sh tests/pg.sh start "$pgdir" --durable)
say "PostgreSQL $(sql "SHOW server_version"), fsync $(sql "SHOW fsync")," \
        "synchronous_commit $(sql "SHOW synchronous_commit"), shared_buffers $(sql "SHOW shared_buffers")"
prealloc_wal
say "WAL: $(sql "SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}\$'") segments of" \
        "$(sql "SHOW wal_segment_size") ready (BENCH_WAL_SEGMENTS $WAL_SEGMENTS)"
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
say "=== summary (durable PostgreSQL, pool.size $POOL, pool.prefetch $PREFETCH, $(nproc) cores)"
row "figure" "measured" "issue 6 target"
row "--------------------------------------------" "--------------------------" "-----------------"
if ran noop; then
        row "(a) drain, builtin:noop, $NOOP_TASKS tasks" "$(get drain_noop_tasks_per_s) tasks/s" ">= 25,000"
        row "    wall time (resume to last finished)" "$(get drain_noop_wall_s) s" ""
        row "    chimerad's PostgreSQL backends" "$(get drain_noop_backend_cpu_us_per_task) us/task" ""
        row "    busy: claims / writes backend" \
                "$(get drain_noop_claims_backend_busy_pct) / $(get drain_noop_writes_backend_busy_pct) %" ""
fi
if ran exec; then
        row "(b) drain, exec agent, $EXEC_TASKS tasks" "$(get drain_exec_tasks_per_s) tasks/s" ">= 2,500"
        row "    wall time (resume to last finished)" "$(get drain_exec_wall_s) s" ""
        row "    CPU per task: workers+agents, machine" \
                "$(get drain_exec_worker_cpu_us_per_task) us, $(get drain_exec_machine_cpu_busy_pct) % busy" ""
        if [ "$(get spawn_spawns_per_s)" != - ]; then
                row "    ceiling: agent started in loops alone" "$(get spawn_spawns_per_s) starts/s" ""
                row "    exec drain / that ceiling" "$(get drain_exec_vs_spawn_pct) %" ""
                row "    CPU per agent start; one CPUID" "$(get spawn_agent_cpu_us) us; $(get spawn_cpuid_us) us" ""
        fi
        if [ "$(get drain_exec_bare_tasks_per_s)" != - ]; then
                row "    drain with bare-agent (no libc)" "$(get drain_exec_bare_tasks_per_s) tasks/s" ""
        fi
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
if ran churn; then
        row "churn, $CHURN_TASKS tasks, retention $CHURN_RETENTION" "$(get churn_tasks_per_s) tasks/s" ""
        row "    chimera.tasks + task_events, peak" "$(churn_mb "$(get churn_total_bytes_peak 0)") MB" ""
        row "    peak, 2nd half vs 1st half of the run" "$(get churn_total_peak_second_half_vs_first_pct) %" "well under 200 %"
        row "    rows left after the retention" "$(get churn_rows_left_after_retention)" "0"
fi
say ""
result bench_seconds "$(calc "int($(now) - $started + 0.5)")"
sed 's/^/bench: /' "$results"
