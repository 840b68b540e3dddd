/*
 * test_faults.c - the fault suite: real processes killed with SIGKILL (a
 * supervisor, a worker in each phase of a task), the real PostgreSQL
 * stopped and started again under a running chimerad (mid-run, and timed
 * to cut an outcome's write or the claim waiting for it), SIGTERM with
 * tasks that outlive shutdown_timeout.
 *
 * Whatever the fault, afterwards the queue must add up (check_queue): every
 * task has exactly one final status and one final event, none is left
 * running or leased, and the claims of each task are explained by the
 * attempts it shows: one claimed event per attempt, plus one per requeue
 * that gave its attempt back ("charged": false: a supervisor stopping past
 * shutdown_timeout, a claim lost with the connection), and one charged
 * "retried" event per attempt that did not end the task.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define COUNT_TASKS(where) "SELECT count(*) FROM chimera.tasks WHERE " where
#define FINISHED           COUNT_TASKS("status NOT IN ('queued', 'running')")
#define SUCCEEDED          COUNT_TASKS("status = 'succeeded'")
#define RUNNING            COUNT_TASKS("status = 'running'")

#define INSTALLED_AGENTS "/usr/lib/chimera/agents/"

/*
 * Up to five tasks that break the invariants of this suite, described, or
 * "" when every task keeps them.  "charged" counts the retried events that
 * used an attempt; "uncharged" those of a requeue that gave it back.
 */
#define BROKEN_TASKS                                                                               \
        "WITH per AS ("                                                                            \
        " SELECT t.id, t.status, t.attempts, t.lease_owner IS NOT NULL AS leased,"                 \
        "  count(e.id) FILTER (WHERE e.kind = 'claimed') AS claimed,"                              \
        "  count(e.id) FILTER (WHERE e.kind = 'retried'"                                           \
        "                        AND e.detail->>'charged' = 'false') AS uncharged,"                \
        "  count(e.id) FILTER (WHERE e.kind = 'retried'"                                           \
        "                        AND (e.detail->>'charged') IS DISTINCT FROM 'false') AS charged," \
        "  count(e.id) FILTER (WHERE e.kind IN ('succeeded', 'failed', 'dead', 'cancelled'))"      \
        "    AS finals,"                                                                           \
        "  count(e.id) FILTER (WHERE e.kind = t.status) AS own"                                    \
        " FROM chimera.tasks t LEFT JOIN chimera.task_events e ON e.task_id = t.id"                \
        " GROUP BY t.id)"                                                                          \
        "SELECT coalesce(string_agg(format('task %s: %s%s, %s attempts, %s claimed, "              \
        "%s retried (+%s uncharged), %s final events', id, status,"                                \
        " CASE WHEN leased THEN ' (leased)' ELSE '' END, attempts, claimed, charged, uncharged,"   \
        " finals), '; ' ORDER BY id), '') FROM ("                                                  \
        " SELECT * FROM per WHERE leased OR claimed <> attempts + uncharged OR NOT CASE"           \
        "  WHEN status IN ('succeeded', 'failed', 'dead', 'cancelled')"                            \
        "   THEN finals = 1 AND own = 1 AND charged = attempts - 1"                                \
        "  WHEN status = 'queued' THEN finals = 0 AND charged = attempts"                          \
        "  ELSE false END"                                                                         \
        " ORDER BY id LIMIT 5) bad"

/* Asserts the invariants above for every task, and that there are ntasks. */
static void check_queue(long long ntasks)
{
        char bad[4096];

        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), ntasks);
        ck_assert_int_eq(h_int(RUNNING), 0);
        h_text(BROKEN_TASKS, bad, sizeof(bad));
        ck_assert_msg(bad[0] == '\0', "tasks that do not add up: %s", bad);
}

/*
 * What the queue looks like, for failure messages: the count of tasks by
 * status, then up to five tasks that did not succeed, with their lease,
 * error and events.
 */
static const char *describe_queue(void)
{
        static char buf[8192];
        char counts[512], bad[7000];

        h_text("SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') "
               "FROM (SELECT status, count(*) n FROM chimera.tasks GROUP BY status) c",
               counts, sizeof(counts));
        h_text("SELECT coalesce(string_agg(format('task %s %s, attempt %s, lease %s expiring in "
               "%s, error %s, events [%s]', id, status, attempts, lease_owner, "
               "lease_expires_at - now(), last_error, (SELECT string_agg(e.attempt || ' ' || "
               "e.kind || coalesce(' ' || e.detail::text, ''), ', ' ORDER BY e.id) FROM "
               "chimera.task_events e WHERE e.task_id = t.id)), '; ' ORDER BY id), '') FROM "
               "(SELECT * FROM chimera.tasks WHERE status <> 'succeeded' ORDER BY id LIMIT 5) t",
               bad, sizeof(bad));
        snprintf(buf, sizeof(buf), "tasks: %s; not succeeded: %s", counts, bad);
        return buf;
}

/* Waits up to timeout_ms until n tasks have finished, and asserts that they all succeeded. */
static void wait_succeeded(long long n, int timeout_ms)
{
        ck_assert_msg(h_wait_int(FINISHED, n, timeout_ms), "not %lld finished after %d ms: %s", n,
                      timeout_ms, describe_queue());
        ck_assert_msg(h_int(SUCCEEDED) == n, "not all %lld succeeded: %s", n, describe_queue());
}

/* ---- configs ---- */

static json_t *load_json(const char *path)
{
        json_error_t jerr;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

        ck_assert_msg(j != NULL, "%s:%d: %s", path, jerr.line, jerr.text);
        return j;
}

static void save_json(json_t *j, const char *path)
{
        ck_assert_int_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
        json_decref(j);
}

static void set_string(json_t *obj, const char *key, const char *value)
{
        ck_assert_msg(json_is_object(obj), "no object for \"%s\"", key);
        ck_assert_int_eq(json_object_set_new(obj, key, json_string(value)), 0);
}

/*
 * Writes H.config as h_write_config(pool_size, NULL) does, with lease and
 * shutdown_timeout replaced when not NULL.
 */
static void write_config(int pool_size, const char *lease, const char *shutdown_timeout)
{
        json_t *cfg;

        h_write_config(pool_size, NULL);
        cfg = load_json(H.config);
        if (lease != NULL)
                set_string(cfg, "lease", lease);
        if (shutdown_timeout != NULL)
                set_string(cfg, "shutdown_timeout", shutdown_timeout);
        save_json(cfg, H.config);
}

/*
 * Writes DIR/NAME.json, a copy of H.config for another supervisor on the
 * same database, with its own control socket DIR/NAME.sock; its path goes
 * to path.
 */
static void write_other_config(const char *name, char *path, size_t size)
{
        json_t *cfg = load_json(H.config);
        char sock[400];

        snprintf(path, size, "%s/%s.json", H.dir, name);
        snprintf(sock, sizeof(sock), "%s/%s.sock", H.dir, name);
        set_string(cfg, "control_socket", sock);
        save_json(cfg, path);
}

/*
 * Writes H.config from examples/chimerad.json as shipped, with this test's
 * database, socket and pool size, fast timers and the example agents of
 * this source tree (as test_chimera.c does).
 */
static void write_chimera_config(int pool_size)
{
        json_t *cfg = load_json(h_repo_path("examples/chimerad.json"));
        json_t *agent, *argv;
        const char *name, *prog;
        char rel[256];

        set_string(cfg, "database", H.url);
        set_string(cfg, "control_socket", H.socket);
        ck_assert_int_eq(
            json_object_set_new(json_object_get(cfg, "pool"), "size", json_integer(pool_size)), 0);
        set_string(cfg, "poll_interval", "200ms");
        set_string(cfg, "lease", "5s");
        set_string(json_object_get(cfg, "retry"), "base", "100ms");
        set_string(json_object_get(cfg, "retry"), "max", "500ms");
        json_object_foreach (json_object_get(cfg, "agents"), name, agent) {
                argv = json_object_get(agent, "argv");
                prog = json_string_value(json_array_get(argv, 0));
                ck_assert_msg(prog != NULL &&
                                  strncmp(prog, INSTALLED_AGENTS, strlen(INSTALLED_AGENTS)) == 0,
                              "agent %s does not run from " INSTALLED_AGENTS, name);
                snprintf(rel, sizeof(rel), "examples/agents/%s", prog + strlen(INSTALLED_AGENTS));
                json_array_set_new(argv, 0, json_string(h_repo_path(rel)));
        }
        save_json(cfg, H.config);
}

/* ---- processes ---- */

/* Waits until chimerad sup has n workers; fills pids (room for 16). */
static void wait_workers(pid_t sup, int n, pid_t *pids)
{
        long long deadline = h_now_ms() + 30000;

        while (h_children(sup, "chimera-worker", pids, 16) != n) {
                ck_assert_msg(h_now_ms() < deadline, "chimerad %d never had %d workers", (int)sup,
                              n);
                usleep(20000);
        }
}

/* Whether pid is a live (not zombie) chimera-worker. */
static bool worker_alive(pid_t pid)
{
        char path[64], buf[512], name[64], state;
        bool alive = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "r");
        if (f == NULL)
                return false;
        if (fgets(buf, sizeof(buf), f) != NULL &&
            sscanf(buf, "%*d (%63[^)]) %c", name, &state) == 2)
                alive = strcmp(name, "chimera-worker") == 0 && state != 'Z' && state != 'X';
        fclose(f);
        return alive;
}

/* Asserts that the n workers in pids, orphaned by their supervisor, all exit. */
static void assert_workers_exit(const pid_t *pids, int n, int timeout_ms)
{
        long long deadline = h_now_ms() + timeout_ms;

        for (int i = 0; i < n; i++) {
                while (worker_alive(pids[i])) {
                        ck_assert_msg(h_now_ms() < deadline,
                                      "worker %d outlived its supervisor by %d ms", (int)pids[i],
                                      timeout_ms);
                        usleep(20000);
                }
        }
}

/* Kills chimerad sup with SIGKILL and reaps it. */
static void kill9(pid_t sup)
{
        int st = h_signal_and_wait(sup, SIGKILL, 10000);

        ck_assert_msg(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                      "chimerad %d: status %d after SIGKILL", (int)sup, st);
}

/* Whether chimerad sup is still running (not exited, not even a zombie). */
static bool still_running(pid_t sup)
{
        int st;

        return kill(sup, 0) == 0 && waitpid(sup, &st, WNOHANG) == 0;
}

/* The id of the running supervisor whose pid is sup, once it has registered. */
static void supervisor_id(pid_t sup, char *id, size_t size)
{
        char sql[200];

        snprintf(sql, sizeof(sql), "SELECT count(*) FROM chimera.supervisors WHERE pid = %d",
                 (int)sup);
        ck_assert_msg(h_wait_int(sql, 1, 30000), "chimerad %d never registered", (int)sup);
        snprintf(sql, sizeof(sql), "SELECT id::text FROM chimera.supervisors WHERE pid = %d",
                 (int)sup);
        h_text(sql, id, size);
}

/* The reply of chimera-ctl -c config status --json, or NULL if it failed (out gets its output). */
static json_t *ctl_status(const char *config, char *out, size_t outsz)
{
        char *argv[] = {
            (char *)h_bin("chimera-ctl"), "-c", (char *)config, "status", "--json", NULL};

        if (h_run(argv, out, outsz) != 0)
                return NULL;
        return json_loads(out, 0, NULL);
}

/*
 * The pid of the worker that chimera-ctl status shows running task id in
 * phase, polling until one does; fails the test after timeout_ms.
 */
static pid_t worker_running(long long id, const char *phase, int timeout_ms)
{
        static char out[1 << 16];
        long long deadline = h_now_ms() + timeout_ms;
        json_t *reply, *w;
        size_t i;
        pid_t pid;

        for (;;) {
                pid = 0;
                reply = ctl_status(H.config, out, sizeof(out));
                json_array_foreach (json_object_get(json_object_get(reply, "pool"), "workers"), i,
                                    w) {
                        const char *p = json_string_value(json_object_get(w, "phase"));
                        if (json_integer_value(json_object_get(w, "task")) == id && p != NULL &&
                            strcmp(p, phase) == 0)
                                pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
                }
                json_decref(reply);
                if (pid > 0)
                        return pid;
                ck_assert_msg(h_now_ms() < deadline, "no worker shows task %lld in phase %s: %s",
                              id, phase, out);
                usleep(20000);
        }
}

/* ---- scenarios ---- */

START_TEST(chimerad_killed_with_tasks_running_is_taken_over_after_the_lease)
{
        char a_id[64], b_cfg[400], ids[256], sql[512];
        pid_t a, b, workers[16];

        write_config(2, "2s", NULL);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 3000}' FROM generate_series(1, 4)");
        a = h_start_chimerad(H.config, "a");
        wait_workers(a, 2, workers);
        supervisor_id(a, a_id, sizeof(a_id));
        ck_assert(h_wait_int(RUNNING, 2, 30000));
        h_text("SELECT string_agg(id::text, ',' ORDER BY id) FROM chimera.tasks "
               "WHERE status = 'running'",
               ids, sizeof(ids));
        kill9(a);
        /* Nothing tells A's workers but the EOF on their sockets. */
        assert_workers_exit(workers, 2, 10000);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE status = 'running' "
                 "AND lease_owner = '%s' AND id IN (%s)",
                 a_id, ids);
        ck_assert_int_eq(h_int(sql), 2);

        write_other_config("b", b_cfg, sizeof(b_cfg));
        b = h_start_chimerad(b_cfg, "b");
        wait_succeeded(4, 60000);
        ck_assert(still_running(b));
        check_queue(4);
        /* A's two tasks were reaped once their lease ran out, charging attempt 1... */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' AND attempt = 1 "
                 "AND detail->>'lost_owner' = '%s' AND task_id IN (%s)",
                 a_id, ids);
        ck_assert_int_eq(h_int(sql), 2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried'"),
                         2);
        /* ... claimed by A, then by B, and the other two by B once. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE attempts = 2 AND id IN (%s)", ids);
        ck_assert_int_eq(h_int(sql), 2);
        ck_assert_int_eq(h_int(COUNT_TASKS("attempts = 1")), 2);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed' "
                 "AND (detail->>'supervisor' = '%s') = (attempt = 1 AND task_id IN (%s))",
                 a_id, ids);
        ck_assert_int_eq(h_int(sql), 6);
}
END_TEST

/* How many times needle occurs in text. */
static int count_occurrences(const char *text, const char *needle)
{
        int n = 0;

        for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* Fails the test if the log text has a line with needle, quoting that line. */
static void assert_not_logged(const char *text, const char *needle)
{
        const char *at = strstr(text, needle), *start, *end;

        if (at == NULL)
                return;
        for (start = at; start > text && start[-1] != '\n'; start--)
                ;
        end = strchr(at, '\n');
        ck_abort_msg("the log says: %.*s", (int)(end ? end - start : (long)strlen(start)), start);
}

START_TEST(postgres_restarted_mid_run_loses_nothing)
{
        static char text[1 << 20], out[1 << 16];
        char path[400], pause_at[64], sup_id[64], sql[512], ids[1024];
        json_t *reply = NULL, *db, *cfg;
        long long paused_ms, deadline;
        pid_t sup, workers[16];

        write_config(4, "2s", NULL);
        /* Each task's success is logged at debug: the log must show every one once. */
        cfg = load_json(H.config);
        ck_assert_int_eq(json_object_set_new(cfg, "log", json_pack("{s:s}", "level", "debug")), 0);
        save_json(cfg, H.config);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT CASE WHEN i % 2 = 0 THEN 'noop' ELSE 'sleep' END, "
               "CASE WHEN i % 2 = 0 THEN '{}' ELSE jsonb_build_object('ms', 20 + i % 31) END "
               "FROM generate_series(1, 300) AS i");
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 4, workers);
        supervisor_id(sup, sup_id, sizeof(sup_id));
        ck_assert(h_wait_int("SELECT (count(*) >= 50)::int FROM chimera.tasks "
                             "WHERE status = 'succeeded'",
                             1, 60000));
        h_text("SELECT now()::text", pause_at, sizeof(pause_at));
        h_pg("pause");
        paused_ms = h_now_ms();

        /* While the database is away, the supervisor still answers, and says so. */
        deadline = h_now_ms() + 8000;
        for (;;) {
                reply = ctl_status(H.config, out, sizeof(out));
                db = json_object_get(reply, "database");
                if (json_is_false(json_object_get(db, "up")))
                        break;
                json_decref(reply);
                ck_assert_msg(h_now_ms() < deadline, "status never showed the database down: %s",
                              out);
                usleep(50000);
        }
        ck_assert_msg(json_is_null(json_object_get(reply, "tasks")), "%s", out);
        json_decref(reply);
        /* Down for about ten seconds: leases (2 s) run out meanwhile. */
        while (h_now_ms() < paused_ms + 10000) {
                ck_assert_msg(still_running(sup), "chimerad died while the database was down");
                usleep(100000);
        }
        h_pg("resume");
        h_reconnect(30000);

        wait_succeeded(300, 90000);
        ck_assert(still_running(sup));
        check_queue(300);
        /* The outage really was mid-run: tasks finished before it and after it. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE finished_at < '%s'::timestamptz",
                 pause_at);
        ck_assert_int_gt(h_int(sql), 0);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks "
                 "WHERE finished_at > '%s'::timestamptz + interval '9 seconds'",
                 pause_at);
        ck_assert_int_gt(h_int(sql), 0);
        /*
         * Nothing was charged: outcomes waited in memory for the database, and
         * claims whose answer the outage swallowed went back uncharged.
         */
        h_text("SELECT coalesce(string_agg(id || ' (' || attempts || ' attempts)', ', ' "
               "ORDER BY id), '') FROM chimera.tasks WHERE attempts <> 1",
               ids, sizeof(ids));
        ck_assert_msg(ids[0] == '\0', "charged an attempt by the outage: %s; %s", ids,
                      describe_queue());

        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        h_read_file(path, text, sizeof(text));
        ck_assert_msg(strstr(text, "database connection lost") != NULL,
                      "%s says nothing of the lost connection", path);
        ck_assert_msg(strstr(strstr(text, "database connection lost"), "database connection up") !=
                          NULL,
                      "%s: no reconnection after the loss", path);
        ck_assert_int_ge(count_occurrences(text, "database connection up"), 2);
        /* Each outcome the supervisor saw reached the table: none failed, none refused... */
        assert_not_logged(text, "task updates failed");
        assert_not_logged(text, "task updates were refused");
        /* ... and no task ran to its end twice. */
        ck_assert_int_eq(count_occurrences(text, ": succeeded (workflow "), 300);
}
END_TEST

/*
 * Makes every statement that records a final outcome or a retry wait, in
 * flight, while the test holds advisory lock HOLD_KEY: a trigger on
 * chimera.task_events (of this test's database) takes the lock first.
 */
#define HOLD_KEY 4242
/* A write (its SQL starts with a comment that says so) waiting for that lock. */
#define WRITE_WAITING                                                                              \
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "                    \
        "AND wait_event = 'advisory' AND datname = current_database() "                            \
        "AND query LIKE '/* chimerad write */%'"
#define HOLD_OUTCOMES                                                                              \
        "CREATE FUNCTION public.hold_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$ "           \
        "BEGIN "                                                                                   \
        "  IF NEW.kind IN ('succeeded', 'failed', 'dead', 'retried') THEN "                        \
        "    PERFORM pg_advisory_xact_lock(4242); "                                                \
        "  END IF; "                                                                               \
        "  RETURN NEW; "                                                                           \
        "END $$; "                                                                                 \
        "CREATE TRIGGER hold_outcomes BEFORE INSERT ON chimera.task_events "                       \
        "FOR EACH ROW EXECUTE FUNCTION public.hold_outcomes()"

/*
 * Starts a chimerad with pool_size workers, the given lease and debug
 * logging (the log then shows each dispatch and each write, for the
 * diagnosis), with HOLD_OUTCOMES installed and its lock held by the
 * connection returned in *locker.  Returns chimerad's pid once it is
 * registered.
 */
static pid_t start_with_outcomes_held(int pool_size, const char *lease, PGconn **locker)
{
        char sql[64];
        PGresult *r;
        json_t *cfg;
        pid_t sup, workers[16];

        write_config(pool_size, lease, NULL);
        cfg = load_json(H.config);
        ck_assert_int_eq(json_object_set_new(cfg, "log", json_pack("{s:s}", "level", "debug")), 0);
        save_json(cfg, H.config);
        h_exec(HOLD_OUTCOMES);
        *locker = PQconnectdb(H.url);
        ck_assert_msg(PQstatus(*locker) == CONNECTION_OK, "%s", PQerrorMessage(*locker));
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%d)", HOLD_KEY);
        r = PQexec(*locker, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
        PQclear(r);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, pool_size, workers);
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, 30000));
        return sup;
}

/*
 * The same outage, timed to cut the statement that writes an outcome: a
 * supervisor with one worker runs task A (1 s); the test holds the lock
 * of HOLD_OUTCOMES, so A's outcome, once sent, waits in flight when the
 * server stops.  With queue_c, task C is queued (with that payload) while
 * A runs, so that the claim that A's free worker asks for waits behind
 * that write's commit (pool.prefetch 0: the table never shows more tasks
 * running than there are workers).  Returns A's id, C's in *c.
 * The lease is 30 s: a lost outcome would leave A running well past the
 * tests' waits, and no periodic heartbeat (every 10 s) comes in between.
 */
static long long restart_postgres_while_an_outcome_is_written(const char *queue_c, long long *c)
{
        char sql[512];
        PGconn *locker;
        long long a;
        pid_t sup = start_with_outcomes_held(1, "30s", &locker);

        a = h_int("INSERT INTO chimera.tasks (workflow, payload) "
                  "VALUES ('sleep', '{\"ms\": 1000}') RETURNING id");
        ck_assert(h_wait_int(RUNNING, 1, 30000));
        if (queue_c != NULL) {
                snprintf(sql, sizeof(sql),
                         "INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '%s') "
                         "RETURNING id",
                         queue_c);
                *c = h_int(sql);
        }
        /* A's outcome waits for our lock. */
        ck_assert_msg(h_wait_int(WRITE_WAITING, 1, 30000), "A's outcome never waited on the lock");
        if (queue_c != NULL)
                ck_assert_int_eq(h_int(RUNNING), 1); /* C's claim is not through */
        h_pg("pause");
        PQfinish(locker);
        h_pg("resume");
        h_reconnect(30000);
        ck_assert(still_running(sup));
        return a;
}

/* Reads this test's chimerad.log into text. */
static void read_log(char *text, size_t size)
{
        char path[400];

        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        h_read_file(path, text, size);
}

/*
 * The guarantee: a batch lost with the connection is written again after
 * reconnecting, so A ends with the attempt that ran, long before its lease
 * could run out.
 */
START_TEST(outcome_being_written_when_postgres_stops_is_written_when_it_is_back)
{
        static char text[1 << 20];
        long long a = restart_postgres_while_an_outcome_is_written(NULL, NULL);

        ck_assert_msg(h_wait_int(COUNT_TASKS("status = 'succeeded' AND attempts = 1"), 1, 15000),
                      "the outcome cut by the restart was not written again (task %lld): %s", a,
                      describe_queue());
        check_queue(1);
        read_log(text, sizeof(text));
        assert_not_logged(text, "task updates failed");
}
END_TEST

/*
 * The claim that waited for the cut write goes out once the write is in,
 * on the new connections, and hands C to the worker: C is then ours and running, and
 * must not be taken for a claim lost with the old connection (requeued
 * while it runs, its outcome refused, run a second time).
 */
START_TEST(claim_queued_when_postgres_stops_runs_its_task_once)
{
        static char text[1 << 20];
        char sql[256], needle[64], events[2048];
        long long c = 0;

        restart_postgres_while_an_outcome_is_written("{\"ms\": 500}", &c);
        wait_succeeded(2, 15000);
        check_queue(2);
        read_log(text, sizeof(text));
        assert_not_logged(text, "task updates were refused");
        snprintf(sql, sizeof(sql),
                 "SELECT string_agg(attempt || ' ' || kind || coalesce(' ' || detail::text, ''), "
                 "', ' ORDER BY id) FROM chimera.task_events WHERE task_id = %lld",
                 c);
        h_text(sql, events, sizeof(events));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld "
                 "AND kind IN ('claimed', 'retried')",
                 c);
        ck_assert_msg(h_int(sql) == 1, "task %lld was claimed more than once: %s", c, events);
        snprintf(needle, sizeof(needle), "task %lld: succeeded (", c);
        ck_assert_int_eq(count_occurrences(text, needle), 1);
}
END_TEST

/*
 * Writes have a connection of their own.  While a write waits in flight
 * (on the test's lock, holding the row locks of the tasks it updates),
 * heartbeats and claims go on over the other connection; when the writing
 * connection is killed, its batch is written again over a new one and
 * every task ends once, with the attempt that ran.
 */
START_TEST(write_connection_lost_while_claims_go_on)
{
        static char text[1 << 20];
        char sql[512], beat[64];
        PGconn *locker;
        long long a, b;
        pid_t sup = start_with_outcomes_held(2, "3s", &locker); /* a heartbeat every second */

        a = h_int("INSERT INTO chimera.tasks (workflow) VALUES ('noop') RETURNING id");
        ck_assert_msg(h_wait_int(WRITE_WAITING, 1, 30000), "A's outcome never waited on the lock");
        /* The claim connection is not held up by the stuck write. */
        b = h_int("INSERT INTO chimera.tasks (workflow, payload) "
                  "VALUES ('sleep', '{\"ms\": 200}') RETURNING id");
        snprintf(sql, sizeof(sql), COUNT_TASKS("id = %lld AND status = 'running'"), b);
        ck_assert_msg(h_wait_int(sql, 1, 30000), "B was not claimed while A's write waited");
        /* Nor are heartbeats, though A's row is locked by our own write. */
        h_text("SELECT heartbeat_at::text FROM chimera.supervisors", beat, sizeof(beat));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.supervisors WHERE heartbeat_at > '%s'", beat);
        ck_assert_msg(h_wait_int(sql, 1, 30000), "no heartbeat while A's write waited");
        snprintf(sql, sizeof(sql), COUNT_TASKS("id = %lld AND status = 'running'"), a);
        ck_assert_int_eq(h_int(sql), 1);

        ck_assert_int_eq(h_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE wait_event = 'advisory' AND datname = current_database() "
                               "AND query LIKE '/* chimerad write */%'"),
                         1);
        PQfinish(locker);
        wait_succeeded(2, 30000);
        ck_assert_int_eq(h_int(COUNT_TASKS("attempts = 1")), 2);
        check_queue(2);
        ck_assert(still_running(sup));
        read_log(text, sizeof(text));
        ck_assert_msg(strstr(text, "database connection lost (writes)") != NULL,
                      "the write connection's loss was not logged");
        assert_not_logged(text, "database connection lost (claims)");
        assert_not_logged(text, "task updates failed");
        assert_not_logged(text, "task updates were refused");
}
END_TEST

START_TEST(sigterm_with_long_tasks_drains_or_requeues_uncharged)
{
        pid_t sup, workers[16];
        int st;

        write_config(4, NULL, "1s");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 60000}' FROM generate_series(1, 4)");
        sup = h_start_chimerad(H.config, "first");
        wait_workers(sup, 4, workers);
        ck_assert(h_wait_int(RUNNING, 4, 30000));
        st = h_signal_and_wait(sup, SIGTERM, 30000);
        ck_assert_msg(st != -1, "chimerad did not exit within 30 s of SIGTERM");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
        assert_workers_exit(workers, 4, 10000);
        ck_assert_int_eq(h_int(COUNT_TASKS("status = 'queued' AND attempts = 0 "
                                           "AND lease_owner IS NULL AND finished_at IS NULL")),
                         4);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.supervisors"), 0);
        check_queue(4);

        /* Another supervisor runs them later, as first attempts. */
        h_exec("UPDATE chimera.tasks SET payload = '{\"ms\": 50}'");
        sup = h_start_chimerad(H.config, "second");
        wait_succeeded(4, 30000);
        ck_assert_int_eq(h_int(COUNT_TASKS("attempts = 1")), 4);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND attempt = 1 AND detail->>'charged' = 'false'"),
                         4);
        check_queue(4);
}
END_TEST

/*
 * nsup supervisors with 4 workers each drain ntasks; once a quarter have
 * succeeded, one of them is killed with SIGKILL.  The others take over
 * its tasks when their leases run out.
 */
static void drain_with_one_supervisor_killed(int nsup, int ntasks)
{
        char cfg[3][400], victim_id[64], sql[512];
        pid_t sups[3], workers[16];
        int victim = nsup - 1;

        ck_assert_int_le(nsup, 3);
        write_config(4, "2s", NULL);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) "
                 "SELECT CASE WHEN i %% 2 = 0 THEN 'noop' ELSE 'sleep' END, "
                 "CASE WHEN i %% 2 = 0 THEN '{}' ELSE jsonb_build_object('ms', 5 + i %% 46) END "
                 "FROM generate_series(1, %d) AS i",
                 ntasks);
        h_exec(sql);
        for (int i = 0; i < nsup; i++) {
                char name[16];
                snprintf(name, sizeof(name), "sup%d", i);
                if (i == 0)
                        snprintf(cfg[i], sizeof(cfg[i]), "%s", H.config);
                else
                        write_other_config(name, cfg[i], sizeof(cfg[i]));
                sups[i] = h_start_chimerad(cfg[i], name);
        }
        wait_workers(sups[victim], 4, workers);
        supervisor_id(sups[victim], victim_id, sizeof(victim_id));
        snprintf(sql, sizeof(sql),
                 "SELECT (count(*) >= %d)::int FROM chimera.tasks WHERE status = 'succeeded'",
                 ntasks / 4);
        ck_assert(h_wait_int(sql, 1, 60000));
        kill9(sups[victim]);
        assert_workers_exit(workers, 4, 10000);

        wait_succeeded(ntasks, 120000);
        for (int i = 0; i < nsup; i++) {
                if (i != victim)
                        ck_assert_msg(still_running(sups[i]), "supervisor %d died", i);
        }
        check_queue(ntasks);
        /* Every supervisor took a share. */
        ck_assert_int_eq(h_int("SELECT count(DISTINCT detail->>'supervisor') FROM "
                               "chimera.task_events WHERE kind = 'claimed'"),
                         nsup);
        /* The only retries are the victim's tasks, reaped once each. */
        ck_assert_int_eq(h_int(COUNT_TASKS("attempts > 2")), 0);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' AND attempt = 1 "
                 "AND detail->>'lost_owner' = '%s'",
                 victim_id);
        long long reaped = h_int(sql);
        ck_assert_int_ge(reaped, 1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried'"),
                         reaped);
        ck_assert_int_eq(h_int(COUNT_TASKS("attempts = 2")), reaped);
        /* The victim claimed nothing after it died: its claims are all first attempts. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed' "
                 "AND detail->>'supervisor' = '%s' AND attempt <> 1",
                 victim_id);
        ck_assert_int_eq(h_int(sql), 0);
}

START_TEST(two_supervisors_with_one_killed_drain_every_task)
{
        drain_with_one_supervisor_killed(2, 2000);
}
END_TEST

START_TEST(three_supervisors_with_one_killed_drain_every_task)
{
        drain_with_one_supervisor_killed(3, 3000);
}
END_TEST

/*
 * The window that a supervisor killed mid-run can hit by chance, made
 * certain: the owner died after writing the checkpoint of the task's last
 * phase (state.phase is "complete") and before writing its outcome.  The
 * workflow is done; reaped when its lease runs out and claimed again, the
 * task must end succeeded, not fail on a checkpoint at a terminal phase.
 */
START_TEST(task_whose_owner_died_after_its_last_checkpoint_still_succeeds)
{
        long long id;
        char sql[512];

        write_config(1, "2s", NULL);
        id = h_int("INSERT INTO chimera.tasks (workflow, payload, status, attempts, lease_owner, "
                   "lease_expires_at, started_at, state) VALUES ('sleep', '{\"ms\": 10}', "
                   "'running', 1, gen_random_uuid(), now() - interval '1 second', "
                   "now() - interval '3 seconds', '{\"phase\": \"complete\", \"transitions\": 1, "
                   "\"results\": {\"run\": {}}}') RETURNING id");
        /* The timeline the dead owner left: its claim and the phase it finished. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.task_events (task_id, attempt, kind, phase) VALUES "
                 "(%lld, 1, 'claimed', NULL), (%lld, 1, 'phase_started', 'run'), "
                 "(%lld, 1, 'phase_finished', 'run')",
                 id, id, id);
        h_exec(sql);
        h_start_chimerad(H.config, "chimerad");
        wait_succeeded(1, 30000);
        ck_assert_int_eq(h_int("SELECT attempts FROM chimera.tasks"), 2);
        check_queue(1);
}
END_TEST

START_TEST(worker_killed_in_every_phase_of_a_task_resumes_there)
{
        static const char *const phases[] = {"e2e_test_generation", "code_implementation",
                                             "guardian_review", "staging_deployment",
                                             "e2e_validation"};
        enum { NPHASES = sizeof(phases) / sizeof(phases[0]) };
        long long ids[NPHASES];
        pid_t sup, workers[16];
        char sql[1024];

        ck_assert_msg(access(h_repo_path("examples/agents/guardian"), X_OK) == 0,
                      "%s is not executable", h_repo_path("examples/agents/guardian"));
        write_chimera_config(NPHASES);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, NPHASES, workers);
        /* Task k is slow in phase k on attempt 1 only: time to kill its worker there. */
        for (int k = 0; k < NPHASES; k++) {
                snprintf(sql, sizeof(sql),
                         "INSERT INTO chimera.tasks (workflow, payload) VALUES ('chimera', "
                         "'{\"feature\": \"f%d\", \"target_url\": \"https://example.com/%d\", "
                         "\"slow_phase\": \"%s\", \"slow_ms\": 60000}') RETURNING id",
                         k, k, phases[k]);
                ids[k] = h_int(sql);
        }
        for (int k = 0; k < NPHASES; k++) {
                snprintf(sql, sizeof(sql),
                         "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld "
                         "AND kind = 'phase_started' AND phase = '%s' AND attempt = 1",
                         ids[k], phases[k]);
                ck_assert_msg(h_wait_int(sql, 1, 60000), "task %lld never started %s", ids[k],
                              phases[k]);
                ck_assert_int_eq(kill(worker_running(ids[k], phases[k], 10000), SIGKILL), 0);
        }
        wait_succeeded(NPHASES, 60000);
        check_queue(NPHASES);
        for (int k = 0; k < NPHASES; k++) {
                char err[1024];
                snprintf(sql, sizeof(sql),
                         "SELECT status || ' ' || attempts FROM chimera.tasks WHERE id = %lld",
                         ids[k]);
                h_text(sql, err, sizeof(err));
                ck_assert_msg(strcmp(err, "succeeded 2") == 0, "task %lld (%s): %s", ids[k],
                              phases[k], err);
                snprintf(sql, sizeof(sql),
                         "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld "
                         "AND kind = 'retried' AND attempt = 1 "
                         "AND detail->>'error' LIKE '%%killed by signal 9%%during phase %s'",
                         ids[k], phases[k]);
                ck_assert_msg(h_int(sql) == 1, "task %lld: no retry for the kill in %s", ids[k],
                              phases[k]);
                /* Before the kill: once, in attempt 1; the killed phase: in both; after: in 2. */
                for (int p = 0; p < NPHASES; p++) {
                        long long want1 = p <= k, want2 = p >= k;
                        snprintf(sql, sizeof(sql),
                                 "SELECT (count(*) FILTER (WHERE attempt = 1)) * 10 + "
                                 "count(*) FILTER (WHERE attempt = 2) FROM chimera.task_events "
                                 "WHERE task_id = %lld AND kind = 'phase_started' "
                                 "AND phase = '%s'",
                                 ids[k], phases[p]);
                        ck_assert_msg(h_int(sql) == want1 * 10 + want2,
                                      "task %lld killed in %s: phase %s started %lld times in "
                                      "attempt 1 and %lld in attempt 2 (want %lld and %lld)",
                                      ids[k], phases[k], phases[p], h_int(sql) / 10,
                                      h_int(sql) % 10, want1, want2);
                }
                /* The killed phase never finished in attempt 1. */
                snprintf(sql, sizeof(sql),
                         "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld "
                         "AND kind = 'phase_finished' AND attempt = 1 AND phase = '%s'",
                         ids[k], phases[k]);
                ck_assert_int_eq(h_int(sql), 0);
        }
}
END_TEST

/*
 * A test case of its own for a test that stops the server: Check runs an
 * unchecked teardown in its own process once the test is over, so if the
 * test failed before it could start the server again, that teardown does,
 * before any other test needs it.
 */
static TCase *outage_tcase(const char *name)
{
        TCase *tc = h_tcase(name);

        tcase_add_unchecked_fixture(tc, NULL, h_pg_ensure_running);
        return tc;
}

Suite *faults_suite(void)
{
        Suite *s = suite_create("faults");
        TCase *tc = h_tcase("faults");
        TCase *restart = outage_tcase("faults_restart");
        TCase *cut_outcome = outage_tcase("faults_cut_outcome");
        TCase *cut_claim = outage_tcase("faults_cut_claim");

        tcase_add_test(tc, chimerad_killed_with_tasks_running_is_taken_over_after_the_lease);
        tcase_add_test(restart, postgres_restarted_mid_run_loses_nothing);
        tcase_add_test(cut_outcome,
                       outcome_being_written_when_postgres_stops_is_written_when_it_is_back);
        tcase_add_test(cut_claim, claim_queued_when_postgres_stops_runs_its_task_once);
        tcase_add_test(tc, write_connection_lost_while_claims_go_on);
        tcase_add_test(tc, sigterm_with_long_tasks_drains_or_requeues_uncharged);
        tcase_add_test(tc, two_supervisors_with_one_killed_drain_every_task);
        tcase_add_test(tc, three_supervisors_with_one_killed_drain_every_task);
        tcase_add_test(tc, task_whose_owner_died_after_its_last_checkpoint_still_succeeds);
        tcase_add_test(tc, worker_killed_in_every_phase_of_a_task_resumes_there);
        suite_add_tcase(s, tc);
        suite_add_tcase(s, restart);
        suite_add_tcase(s, cut_outcome);
        suite_add_tcase(s, cut_claim);
        return s;
}
