/*
 * test_partition.c - a real network partition.  PostgreSQL and two
 * supervisors, A and B, get hosts of their own: network namespaces joined
 * by veth links (tests/netns.sh), the server in "pg", A in "a", B in "b".
 * While A runs tasks, the test pulls A's cable (the pg end of A's link goes
 * down: A's packets vanish, nothing resets its connection) for longer than
 * the lease.  B must take A's tasks over once their leases run out; when
 * the link is back, A's late results must be refused by the fence (logged,
 * not written); A must recover without a restart and claim work again; and
 * every task must end with exactly one final status.
 *
 * The test needs root and network namespaces; where the machine does not
 * allow them it says "partition test skipped: <reason>" and passes.
 *
 * Everything the test makes is named after the check_integration process
 * that runs it, "chp-PID": the namespaces chp-PID-pg, -a and -b, the
 * server's directory /tmp/chp-PID-pg.  A failed test exits at once (Check
 * skips the checked teardown then), so the unchecked teardown, which runs in
 * check_integration itself, removes them on every way out; the unchecked
 * setup removes what runs that died (their PID is gone) left behind.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define NETNS_DIR  "/var/run/netns" /* where ip netns keeps the names */
#define RUN_PREFIX "chp-"
#define HUB        "pg"
#define SKIPPED    77 /* tests/netns.sh up: this machine does not allow it */

#define LEASE_MS 2000
#define TASK_MS  4000           /* long enough that A still runs them when cut */
#define CUT_MS   (3 * LEASE_MS) /* the shortest cut */

#define COUNT_TASKS(where) "SELECT count(*) FROM chimera.tasks WHERE " where
#define FINISHED           COUNT_TASKS("status NOT IN ('queued', 'running')")
#define SUCCEEDED          COUNT_TASKS("status = 'succeeded'")
#define RUNNING            COUNT_TASKS("status = 'running'")

/*
 * Up to five tasks that break the invariants of the fault suite (see
 * test_faults.c), described, or "" when every task keeps them: exactly
 * one final status and one final event, no lease left, one claimed event
 * per attempt plus one per uncharged requeue, one charged retried event
 * per attempt that did not end the task.
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

/* "chp-PID", PID that of check_integration (set by the unchecked setup). */
static char run_name[32];

/* The directory of run name's server. */
static void pg_dir(const char *name, char *out, size_t size)
{
        snprintf(out, size, "/tmp/%s-" HUB, name);
}

/*
 * Runs "sh tests/SCRIPT ARGS..." (ended by (char *)NULL), its output in out;
 * returns its exit status.
 */
static int script(char *out, size_t outsz, const char *name, ...)
{
        char *argv[24];
        int argc = 0;
        const char *arg;
        va_list ap;
        char rel[64];

        snprintf(rel, sizeof(rel), "tests/%s", name);
        argv[argc++] = "/bin/sh";
        argv[argc++] = (char *)h_repo_path(rel);
        va_start(ap, name);
        while ((arg = va_arg(ap, const char *)) != NULL && argc < 23)
                argv[argc++] = (char *)arg;
        va_end(ap);
        argv[argc] = NULL;
        return h_run(argv, out, outsz);
}

/*
 * Removes what run name made: stops its server (fast, and removes its
 * directory), then kills whatever is left in its namespaces (supervisors,
 * workers, a server that would not stop) and deletes them.  Never fails:
 * it also serves the unchecked fixtures; it reports on stderr.
 */
static void remove_run(const char *name)
{
        static char out[8192];
        char dir[64];

        pg_dir(name, dir, sizeof(dir));
        if (access(dir, F_OK) == 0 &&
            script(out, sizeof(out), "pg.sh", "stop", dir, (char *)NULL) != 0)
                fprintf(stderr, "partition: sh tests/pg.sh stop %s: %s\n", dir, out);
        if (script(out, sizeof(out), "netns.sh", "down", name, (char *)NULL) != 0)
                fprintf(stderr, "partition: sh tests/netns.sh down %s: %s\n", name, out);
}

/*
 * Whether pid is a live check_integration (the owner of a run): one of its
 * arguments is a path to it, so that it counts under a wrapper (valgrind)
 * too.
 */
static bool run_owner_alive(int pid)
{
        char path[64], cmd[4096];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        f = fopen(path, "r");
        if (f == NULL)
                return false;
        n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        cmd[n] = '\0';
        for (size_t i = 0; i < n; i += strlen(cmd + i) + 1) {
                const char *base = strrchr(cmd + i, '/');
                if (strcmp(base != NULL ? base + 1 : cmd + i, "check_integration") == 0)
                        return true;
        }
        return false;
}

/* Adds the PID of run names in dir (RUN_PREFIX "PID-...") whose owner is gone to pids. */
static void find_stale_runs(const char *dir, int *pids, int *n, int max)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int pid, end;

        if (d == NULL)
                return;
        while ((e = readdir(d)) != NULL && *n < max) {
                end = 0;
                if (sscanf(e->d_name, RUN_PREFIX "%d-%n", &pid, &end) != 1 || end == 0 ||
                    pid == (int)getpid() || run_owner_alive(pid))
                        continue;
                bool seen = false;
                for (int i = 0; i < *n; i++)
                        seen = seen || pids[i] == pid;
                if (!seen)
                        pids[(*n)++] = pid;
        }
        closedir(d);
}

/* Unchecked setup, in check_integration: names this run, removes dead runs' leftovers. */
static void partition_setup_run(void)
{
        int pids[64], n = 0;
        char name[32];

        snprintf(run_name, sizeof(run_name), RUN_PREFIX "%d", (int)getpid());
        find_stale_runs(NETNS_DIR, pids, &n, 64);
        find_stale_runs("/tmp", pids, &n, 64);
        for (int i = 0; i < n; i++) {
                snprintf(name, sizeof(name), RUN_PREFIX "%d", pids[i]);
                fprintf(stderr, "partition: removing what run %s left behind\n", name);
                remove_run(name);
        }
}

/* Unchecked teardown, in check_integration: whatever happened to the test. */
static void partition_teardown_run(void)
{
        remove_run(run_name);
}

/* Checked teardown (after a test that passed): the supervisors first, then the rest. */
static void partition_teardown(void)
{
        for (int i = 0; i < H.nprocs; i++) {
                if (kill(H.procs[i], 0) == 0)
                        h_signal_and_wait(H.procs[i], SIGKILL, 5000);
        }
        remove_run(run_name);
}

/*
 * Starts chimerad -c config in the namespace of host, with stderr to
 * H.dir/NAME.log; returns its pid, which teardown kills.
 */
static pid_t start_chimerad_on(const char *host, const char *config, const char *logname)
{
        char log[400], ns[300];
        pid_t pid;

        snprintf(log, sizeof(log), "%s/%s.log", H.dir, logname);
        snprintf(ns, sizeof(ns), NETNS_DIR "/%s-%s", run_name, host);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644), nsfd;
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                nsfd = open(ns, O_RDONLY | O_CLOEXEC);
                if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                        fprintf(stderr, "partition: cannot enter %s: %s\n", ns, strerror(errno));
                        _exit(126);
                }
                execl(h_bin("chimerad"), "chimerad", "-c", config, (char *)NULL);
                _exit(127);
        }
        ck_assert_int_lt(H.nprocs, H_MAX_PROCS);
        H.procs[H.nprocs++] = pid;
        return pid;
}

/* Writes DIR/NAME.json: a supervisor of pool 2 reaching the server at url. */
static void write_config(const char *name, const char *url, char *path, size_t size)
{
        FILE *f;

        snprintf(path, size, "%s/%s.json", H.dir, name);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "{\n"
                "  \"database\": \"%s\",\n"
                "  \"control_socket\": \"%s/%s.sock\",\n"
                "  \"pool\": {\"size\": 2},\n"
                "  \"poll_interval\": \"200ms\",\n"
                "  \"lease\": \"%ds\",\n"
                "  \"retry\": {\"base\": \"100ms\", \"max\": \"1s\"},\n"
                "  \"log\": {\"level\": \"debug\"},\n"
                "  \"workflows\": {\n"
                "    \"sleep\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                "\"builtin:sleep\"}}}\n"
                "  }\n"
                "}\n",
                url, H.dir, name, LEASE_MS / 1000);
        ck_assert_int_eq(fclose(f), 0);
}

/* Whether chimerad pid is still running (not exited, not even a zombie). */
static bool still_running(pid_t pid)
{
        int st;

        return kill(pid, 0) == 0 && waitpid(pid, &st, WNOHANG) == 0;
}

/* The id of the supervisor whose pid is pid, once it has registered. */
static void supervisor_id(pid_t pid, char *id, size_t size)
{
        char sql[200];

        snprintf(sql, sizeof(sql), "SELECT count(*) FROM chimera.supervisors WHERE pid = %d",
                 (int)pid);
        ck_assert_msg(h_wait_int(sql, 1, 30000), "chimerad %d never registered (logs in %s)",
                      (int)pid, H.dir);
        snprintf(sql, sizeof(sql), "SELECT id::text FROM chimera.supervisors WHERE pid = %d",
                 (int)pid);
        h_text(sql, id, size);
}

static void read_log(const char *name, char *text, size_t size)
{
        char path[400];

        snprintf(path, sizeof(path), "%s/%s.log", H.dir, name);
        h_read_file(path, text, size);
}

static int count_occurrences(const char *text, const char *needle)
{
        int n = 0;

        for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* The task updates that log text says were refused: the sum of N in "N of M ... refused". */
static long long refused_updates(const char *text)
{
        static const char needle[] = " task updates were refused";
        long long sum = 0;

        for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
                const char *q = p, *end;
                while (q > text && isdigit((unsigned char)q[-1]))
                        q--; /* M */
                if (q == p || q - text < 4 || strncmp(q - 4, " of ", 4) != 0)
                        continue;
                end = q -= 4;
                while (q > text && isdigit((unsigned char)q[-1]))
                        q--; /* N */
                if (q < end)
                        sum += strtoll(q, NULL, 10);
        }
        return sum;
}

/* The timeline of the tasks in ids (a comma-separated list), for failure messages. */
static const char *describe(const char *ids)
{
        static char buf[16384];
        char sql[1024], counts[512], tasks[15000];

        h_text("SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') "
               "FROM (SELECT status, count(*) n FROM chimera.tasks GROUP BY status) c",
               counts, sizeof(counts));
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(string_agg(format('task %%s %%s, attempt %%s, lease %%s, "
                 "events [%%s]', id, status, attempts, lease_owner, (SELECT string_agg("
                 "e.attempt || ' ' || e.kind || coalesce(' ' || e.phase, '') || "
                 "coalesce(' ' || e.detail::text, ''), ', ' ORDER BY e.id) "
                 "FROM chimera.task_events e WHERE e.task_id = t.id)), '; ' ORDER BY id), '') "
                 "FROM chimera.tasks t WHERE id IN (%s)",
                 ids);
        h_text(sql, tasks, sizeof(tasks));
        snprintf(buf, sizeof(buf), "tasks: %s; %s (logs in %s)", counts, tasks, H.dir);
        return buf;
}

START_TEST(supervisor_cut_off_past_its_lease_is_fenced_and_recovers)
{
        static char out[8192], text[1 << 20];
        char dir[64], real[256], url[300], admin[400], cfg_a[400], cfg_b[400];
        char a_id[64], b_id[64], ids[256], sql[1024], needle[128], bad[4096];
        char *migrate[] = {(char *)h_bin("chimerad"), "--migrate", NULL};
        long long cut_at, port, deadline, first_ids[2];
        pid_t a, b;
        int st;

        if (run_name[0] == '\0') /* no unchecked setup: CK_FORK=no with another runner */
                snprintf(run_name, sizeof(run_name), RUN_PREFIX "%d", (int)getpid());

        /* Three hosts: pg (10.231.1.1 for a, 10.231.2.1 for b), a (10.231.1.2), b (10.231.2.2). */
        remove_run(run_name);
        st = script(out, sizeof(out), "netns.sh", "up", run_name, HUB, "a", "b", (char *)NULL);
        if (st == SKIPPED) {
                /* out is "netns.sh: REASON\n" */
                fprintf(stderr, "partition test skipped: %s",
                        strncmp(out, "netns.sh: ", 10) == 0 ? out + 10 : out);
                return;
        }
        ck_assert_msg(st == 0, "sh tests/netns.sh up %s: exit %d: %s", run_name, st, out);

        /* A server of its own on host pg, reachable from a and b; the test uses its socket. */
        pg_dir(run_name, dir, sizeof(dir));
        st = script(out, sizeof(out), "netns.sh", "exec", run_name, HUB, "/bin/sh",
                    h_repo_path("tests/pg.sh"), "start", dir, "--listen",
                    "127.0.0.1,10.231.1.1,10.231.2.1", "--hba", "10.231.0.0/16", (char *)NULL);
        ck_assert_msg(st == 0, "pg.sh start in %s-%s: exit %d: %s", run_name, HUB, st, out);
        snprintf(sql, sizeof(sql), "%s/url", dir);
        h_read_file(sql, url, sizeof(url));
        ck_assert_msg(sscanf(url, "postgresql://postgres@127.0.0.1:%lld/", &port) == 1,
                      "no port in %s", url);
        snprintf(sql, sizeof(sql), "%s/.chimera-pg", dir);
        h_read_file(sql, real, sizeof(real));
        real[strcspn(real, "\n")] = '\0';
        snprintf(admin, sizeof(admin), "host=%s port=%lld user=postgres dbname=postgres", real,
                 port);
        setenv("CHIMERA_DATABASE_URL", admin, 1);
        st = h_run(migrate, out, sizeof(out));
        unsetenv("CHIMERA_DATABASE_URL");
        ck_assert_msg(st == 0, "chimerad --migrate: %s", out);
        PQfinish(H.conn);
        H.conn = PQconnectdb(admin);
        ck_assert_msg(PQstatus(H.conn) == CONNECTION_OK, "%s", PQerrorMessage(H.conn));

        /* A on host a, B on host b, each through its own link. */
        snprintf(url, sizeof(url), "postgresql://postgres@10.231.1.1:%lld/postgres", port);
        write_config("a", url, cfg_a, sizeof(cfg_a));
        snprintf(url, sizeof(url), "postgresql://postgres@10.231.2.1:%lld/postgres", port);
        write_config("b", url, cfg_b, sizeof(cfg_b));
        a = start_chimerad_on("a", cfg_a, "a");
        b = start_chimerad_on("b", cfg_b, "b");
        supervisor_id(a, a_id, sizeof(a_id));
        supervisor_id(b, b_id, sizeof(b_id));

        /* Four long tasks: two run on A, two on B. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) "
                 "SELECT 'sleep', '{\"ms\": %d}' FROM generate_series(1, 4)",
                 TASK_MS);
        h_exec(sql);
        snprintf(sql, sizeof(sql),
                 "SELECT 10 * count(*) FILTER (WHERE lease_owner = '%s') + "
                 "count(*) FILTER (WHERE lease_owner = '%s') FROM chimera.tasks "
                 "WHERE status = 'running'",
                 a_id, b_id);
        ck_assert_msg(h_wait_int(sql, 22, 30000), "A and B never ran two tasks each: %s",
                      describe("1, 2, 3, 4"));
        snprintf(sql, sizeof(sql),
                 "SELECT string_agg(id::text, ', ' ORDER BY id) FROM chimera.tasks "
                 "WHERE status = 'running' AND lease_owner = '%s'",
                 a_id);
        h_text(sql, ids, sizeof(ids));
        ck_assert_int_eq(sscanf(ids, "%lld, %lld", &first_ids[0], &first_ids[1]), 2);

        /* Pull A's cable while it runs them. */
        st = script(out, sizeof(out), "netns.sh", "cut", run_name, HUB, "a", (char *)NULL);
        ck_assert_msg(st == 0, "cut: %s", out);
        cut_at = h_now_ms();

        /*
         * Keep it cut until (well past the lease) A has noticed, A's workers
         * have finished both tasks, and B has taken both over.
         */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed' "
                 "AND attempt = 2 AND detail->>'supervisor' = '%s' AND task_id IN (%s)",
                 b_id, ids);
        deadline = cut_at + 30000;
        for (;;) {
                bool done = h_now_ms() >= cut_at + CUT_MS && h_int(sql) == 2;
                read_log("a", text, sizeof(text));
                done = done && strstr(text, "database connection lost") != NULL;
                for (int i = 0; i < 2; i++) {
                        snprintf(needle, sizeof(needle),
                                 "task %lld: succeeded (workflow sleep, attempt 1,", first_ids[i]);
                        done = done && strstr(text, needle) != NULL;
                }
                if (done)
                        break;
                ck_assert_msg(still_running(a), "A died while cut off (logs in %s)", H.dir);
                ck_assert_msg(h_now_ms() < deadline,
                              "30 s into the cut, A has not noticed, not finished its tasks, or "
                              "B has not taken them over: %s",
                              describe(ids));
                h_sleep_ms(50);
        }
        /* Nothing of what A's workers reported reached the rows meanwhile. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE attempt = 1 "
                 "AND kind IN ('phase_finished', 'succeeded', 'failed', 'dead') "
                 "AND task_id IN (%s)",
                 ids);
        ck_assert_msg(h_int(sql) == 0, "A's results went through the cut: %s", describe(ids));

        st = script(out, sizeof(out), "netns.sh", "heal", run_name, HUB, "a", (char *)NULL);
        ck_assert_msg(st == 0, "heal: %s", out);
        fprintf(stderr, "partition: A was cut off for %lld ms\n", h_now_ms() - cut_at);

        /* A reconnects by itself, and the fence refuses its late results. */
        deadline = h_now_ms() + 30000;
        for (;;) {
                read_log("a", text, sizeof(text));
                if (strstr(text, "task updates were refused") != NULL)
                        break;
                ck_assert_msg(still_running(a), "A died after the cut (logs in %s)", H.dir);
                ck_assert_msg(h_now_ms() < deadline,
                              "30 s after the link came back, A's log shows no refused update: "
                              "%s",
                              describe(ids));
                h_sleep_ms(50);
        }

        /* New work, of which A, recovered, must take its share. */
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 1000}' FROM generate_series(1, 8)");
        ck_assert_msg(h_wait_int(FINISHED, 12, 60000), "not all 12 finished: %s",
                      describe("SELECT id FROM chimera.tasks WHERE status <> 'succeeded'"));
        ck_assert_msg(h_int(SUCCEEDED) == 12, "not all succeeded: %s",
                      describe("SELECT id FROM chimera.tasks WHERE status <> 'succeeded'"));
        ck_assert_msg(still_running(a), "A died (logs in %s)", H.dir);
        ck_assert_msg(still_running(b), "B died (logs in %s)", H.dir);

        /* Every task: one final status, one final event, its claims and retries add up. */
        ck_assert_int_eq(h_int(RUNNING), 0);
        h_text(BROKEN_TASKS, bad, sizeof(bad));
        ck_assert_msg(bad[0] == '\0', "tasks that do not add up: %s; %s", bad, describe(ids));

        /* A's two tasks: reaped once (charged, naming A), then run by B as attempt 2... */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' AND attempt = 1 "
                 "AND detail->>'lost_owner' = '%s' AND task_id IN (%s)",
                 a_id, ids);
        ck_assert_msg(h_int(sql) == 2, "%s", describe(ids));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE id IN (%s) AND attempts = 2", ids);
        ck_assert_msg(h_int(sql) == 2, "%s", describe(ids));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'succeeded' "
                 "AND attempt = 2 AND task_id IN (%s)",
                 ids);
        ck_assert_msg(h_int(sql) == 2, "%s", describe(ids));
        /* ... and nothing A reported of attempt 1 after the cut made it into the rows. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE attempt = 1 "
                 "AND kind IN ('phase_finished', 'succeeded', 'failed', 'dead') "
                 "AND task_id IN (%s)",
                 ids);
        ck_assert_msg(h_int(sql) == 0, "A's late results were written: %s", describe(ids));
        /* Those were the only retries. */
        ck_assert_msg(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried'") == 2,
                      "%s",
                      describe("SELECT task_id FROM chimera.task_events WHERE kind = 'retried'"));

        /* A ran both to their end while cut off, and logged their results as refused. */
        read_log("a", text, sizeof(text));
        for (int i = 0; i < 2; i++) {
                snprintf(needle, sizeof(needle), "task %lld: succeeded (workflow sleep, attempt 1,",
                         first_ids[i]);
                ck_assert_int_eq(count_occurrences(text, needle), 1);
        }
        ck_assert_msg(refused_updates(text) == 2,
                      "A's log refuses %lld task updates, not the 2 late results (logs in %s)",
                      refused_updates(text), H.dir);
        ck_assert_msg(strstr(text, "task updates failed") == NULL, "logs in %s", H.dir);
        /* It reconnected by itself: the same process, a new connection. */
        ck_assert_int_ge(count_occurrences(text, "database connection up"), 2);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.supervisors WHERE id = '%s' AND pid = %d", a_id,
                 (int)a);
        ck_assert_int_eq(h_int(sql), 1);
        /* And took new work after it: tasks it claimed from the second batch. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events e JOIN chimera.tasks t "
                 "ON t.id = e.task_id WHERE e.kind = 'claimed' AND e.detail->>'supervisor' = '%s' "
                 "AND t.id > (SELECT max(id) FROM (SELECT id FROM chimera.tasks ORDER BY id "
                 "LIMIT 4) f) AND t.status = 'succeeded' AND t.attempts = 1",
                 a_id);
        ck_assert_msg(h_int(sql) >= 1, "A claimed none of the new tasks: %s",
                      describe("SELECT id FROM chimera.tasks"));
        /* B's results all went through. */
        read_log("b", text, sizeof(text));
        ck_assert_msg(strstr(text, "task updates were refused") == NULL,
                      "B had updates refused (logs in %s)", H.dir);
}
END_TEST

Suite *partition_suite(void)
{
        Suite *s = suite_create("partition");
        TCase *tc = h_tcase("partition");

        tcase_add_checked_fixture(tc, NULL, partition_teardown);
        tcase_add_unchecked_fixture(tc, partition_setup_run, partition_teardown_run);
        tcase_add_test(tc, supervisor_cut_off_past_its_lease_is_fenced_and_recovers);
        suite_add_tcase(s, tc);
        return s;
}
