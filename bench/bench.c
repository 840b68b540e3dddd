/*
 * chimera-bench - the timing side of `make bench` (bench/run.sh drives it).
 *
 *   chimera-bench ready SOCKET TIMEOUT_S [PID]
 *       waits until chimerad answers on its control socket, is running and
 *       has every worker idle; prints the workers' pids on one line.  With
 *       PID, gives up as soon as that process (chimerad) is gone
 *   chimera-bench drain URL SOCKET N all|count TIMEOUT_S
 *       resumes the paused queue "default" (filled beforehand) with the
 *       NOTIFY chimera-ctl resume sends, and waits until chimerad's counters
 *       show N more tasks finished (succeeded + failed); with "all", also
 *       until no task is queued or running in the table any more.  Prints
 *       wall_s, from the resume's commit to then, and chimerad's counters.
 *       Past TIMEOUT_S, "all" fails; "count" stops waiting and says
 *       timed_out=1, so that the caller reports what did finish
 *   chimera-bench rows URL [M]
 *       drain figures from the rows: the first M finished tasks (all, when
 *       M is 0 or absent), how many did not succeed, and the span from the
 *       first claim (started_at) to the last finish (finished_at)
 *   chimera-bench latency URL N INTERVAL_MS WORKFLOW WARMUP
 *       inserts WARMUP + N single tasks INTERVAL_MS apart, each its own
 *       transaction, and takes the wall clock (CLOCK_REALTIME) as soon as
 *       its COMMIT returns; then reads each task's events and reports the
 *       percentiles of commit -> "claimed", commit -> "phase_started" and
 *       commit -> "succeeded" (the warm-up tasks are left out)
 *   chimera-bench spawn P N AGENT [ARG...]
 *       the ceiling of a process per task on this machine, with neither
 *       chimera nor PostgreSQL: P processes each start AGENT N times, one
 *       after the other, as a worker does (posix_spawn, which clones
 *       without copying the page tables; the request written to a stdin
 *       pipe, stdout read to its end, waitpid).  Prints spawns_per_s, the
 *       CPU per start of the agent (agent_cpu_us) and of the loop that
 *       started it (spawner_cpu_us), and, on x86, what one CPUID
 *       instruction costs (cpuid_us): a virtual machine traps it to the
 *       hypervisor, and the C library runs it dozens of times as each
 *       process starts
 *
 * Output is "key=value" lines, read by bench/run.sh.  Errors go to stderr
 * with exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
        va_list ap;

        fputs("chimera-bench: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

static int64_t now_us(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
        struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static long parse_long(const char *s, const char *what)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < 0)
                die("%s: expected a number, got \"%s\"", what, s);
        return v;
}

/* ---- chimerad's control socket ---- */

/* Sends one request and returns the reply, or NULL when chimerad does not answer. */
static json_t *ctl_ask(const char *path, const char *request)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char buf[65536];
        size_t len = 0;
        json_t *reply = NULL;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                die("control socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                goto out;
        if (write(fd, request, strlen(request)) != (ssize_t)strlen(request))
                goto out;
        while (len < sizeof(buf) - 1) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t n;

                if (poll(&p, 1, 5000) <= 0)
                        goto out;
                n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n <= 0)
                        goto out;
                len += (size_t)n;
                if (memchr(buf, '\n', len) != NULL)
                        break;
        }
        buf[len] = '\0';
        reply = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
out:
        close(fd);
        return reply;
}

static json_int_t counter(json_t *reply, const char *name)
{
        return json_integer_value(json_object_get(
            json_object_get(json_object_get(reply, "supervisor"), "counters"), name));
}

static json_int_t finished_count(json_t *reply)
{
        return counter(reply, "succeeded") + counter(reply, "failed");
}

/* Whether pid runs: neither gone nor a zombie its parent has not reaped yet. */
static bool process_alive(long pid)
{
        char path[64], buf[256], *p;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        f = fopen(path, "r");
        if (f == NULL)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int cmd_ready(int argc, char **argv)
{
        int64_t deadline;
        json_t *reply = NULL;

        if (argc != 2 && argc != 3)
                die("usage: chimera-bench ready SOCKET TIMEOUT_S [PID]");
        deadline = now_us(CLOCK_MONOTONIC) + parse_long(argv[1], "TIMEOUT_S") * 1000000;
        for (;;) {
                json_t *pool, *workers, *w;
                const char *state;
                size_t i;

                reply = ctl_ask(argv[0], "{\"cmd\":\"workers\"}\n");
                pool = json_object_get(reply, "pool");
                state = json_string_value(
                    json_object_get(json_object_get(reply, "supervisor"), "state"));
                /* Running, both database connections up, every worker idle. */
                if (state != NULL && strcmp(state, "running") == 0 &&
                    json_is_true(json_object_get(json_object_get(reply, "database"), "up")) &&
                    json_integer_value(json_object_get(pool, "idle")) ==
                        json_integer_value(json_object_get(pool, "size"))) {
                        workers = json_object_get(pool, "workers");
                        printf("pids=");
                        json_array_foreach (workers, i, w)
                                printf("%s%lld", i > 0 ? " " : "",
                                       (long long)json_integer_value(json_object_get(w, "pid")));
                        printf("\n");
                        json_decref(reply);
                        return 0;
                }
                json_decref(reply);
                if (argc == 3 && !process_alive(parse_long(argv[2], "PID")))
                        die("chimerad (pid %s) exited before it was ready", argv[2]);
                if (now_us(CLOCK_MONOTONIC) > deadline)
                        die("chimerad did not become ready on %s within %s s", argv[0], argv[1]);
                sleep_us(20000);
        }
}

static void print_counters(json_t *reply)
{
        printf("claimed=%lld\nsucceeded=%lld\nfailed=%lld\nretried=%lld\n",
               (long long)counter(reply, "claimed"), (long long)counter(reply, "succeeded"),
               (long long)counter(reply, "failed"), (long long)counter(reply, "retried"));
}

/*
 * Polls chimerad until n tasks finished since it started; returns its last
 * reply.  At the deadline: dies, or with give_up (and an answer from
 * chimerad) returns its last reply and sets *timed_out.  Every 20 ms: each
 * poll costs chimerad a connection on its control socket and a reply, which
 * every 5 ms came to 4-8 us of its CPU per task in the exec drain.  The
 * rates are read from the rows, so the poll's period does not enter them.
 */
static json_t *wait_finished(const char *sock, json_int_t n, int64_t deadline, bool give_up,
                             bool *timed_out)
{
        for (;;) {
                json_t *reply = ctl_ask(sock, "{\"cmd\":\"workers\"}\n");

                if (reply != NULL && finished_count(reply) >= n)
                        return reply;
                if (now_us(CLOCK_MONOTONIC) > deadline) {
                        if (give_up && reply != NULL) {
                                *timed_out = true;
                                return reply;
                        }
                        die("chimerad finished %lld of %lld tasks before the timeout",
                            reply ? (long long)finished_count(reply) : -1LL, (long long)n);
                }
                json_decref(reply);
                sleep_us(20000);
        }
}

/* ---- the database ---- */

static PGconn *db_connect(const char *url)
{
        PGconn *c = PQconnectdb(url);

        if (PQstatus(c) != CONNECTION_OK)
                die("cannot connect to %s: %s", url, PQerrorMessage(c));
        return c;
}

static PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
        PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

        if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
                die("%s\n  in: %s", PQresultErrorMessage(r), sql);
        return r;
}

static long long db_count(PGconn *c, const char *sql)
{
        PGresult *r = db_exec(c, sql, 0, NULL);
        long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);

        PQclear(r);
        return v;
}

static int cmd_drain(int argc, char **argv)
{
        static const char resume_sql[] =
            "UPDATE chimera.queues SET paused = false, paused_at = NULL WHERE name = 'default';"
            "SELECT pg_notify('chimera_tasks', 'default')";
        PGconn *c;
        PGresult *r;
        json_t *reply;
        json_int_t base;
        int64_t t1, t2, deadline;
        bool all, timed_out = false;

        if (argc != 5 || (strcmp(argv[3], "all") != 0 && strcmp(argv[3], "count") != 0))
                die("usage: chimera-bench drain URL SOCKET N all|count TIMEOUT_S");
        all = strcmp(argv[3], "all") == 0;
        c = db_connect(argv[0]);
        reply = ctl_ask(argv[1], "{\"cmd\":\"workers\"}\n");
        if (reply == NULL)
                die("chimerad does not answer on %s", argv[1]);
        base = finished_count(reply);
        json_decref(reply);
        /* Two statements in one query string run as one transaction. */
        r = PQexec(c, resume_sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
                die("resuming the queue: %s", PQresultErrorMessage(r));
        PQclear(r);
        t1 = now_us(CLOCK_MONOTONIC);
        deadline = t1 + parse_long(argv[4], "TIMEOUT_S") * 1000000;
        reply = wait_finished(argv[1], base + parse_long(argv[2], "N"), deadline, !all, &timed_out);
        /* chimerad counts a task when its worker reports; the row follows with
         * the next write batch. */
        while (all && db_count(c, "SELECT count(*) FROM chimera.tasks"
                                  " WHERE status IN ('queued', 'running')") > 0) {
                if (now_us(CLOCK_MONOTONIC) > deadline)
                        die("tasks still queued or running at the timeout");
                sleep_us(2000);
        }
        t2 = now_us(CLOCK_MONOTONIC);
        printf("wall_s=%.3f\ntimed_out=%d\n", (t2 - t1) / 1e6, timed_out);
        print_counters(reply);
        json_decref(reply);
        PQfinish(c);
        return 0;
}

static int cmd_rows(int argc, char **argv)
{
        static const char sql[] =
            "SELECT count(*), count(*) FILTER (WHERE status <> 'succeeded'),"
            "       coalesce(extract(epoch FROM max(finished_at) - min(started_at)), 0)"
            "  FROM (SELECT status, started_at, finished_at FROM chimera.tasks"
            "         WHERE finished_at IS NOT NULL ORDER BY finished_at LIMIT $1::bigint) f";
        const char *params[1] = {NULL};
        PGconn *c;
        PGresult *r;
        long long n;
        double span;

        if (argc != 1 && argc != 2)
                die("usage: chimera-bench rows URL [M]");
        if (argc == 2 && parse_long(argv[1], "M") > 0)
                params[0] = argv[1];
        c = db_connect(argv[0]);
        r = db_exec(c, sql, 1, params);
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        span = strtod(PQgetvalue(r, 0, 2), NULL);
        printf("tasks=%lld\nnot_succeeded=%s\nspan_s=%.3f\ntasks_per_s=%.0f\n", n,
               PQgetvalue(r, 0, 1), span, span > 0 ? (double)n / span : 0.0);
        PQclear(r);
        PQfinish(c);
        return 0;
}

/* ---- pickup latency ---- */

struct sample {
        long long id;
        int64_t commit_us; /* CLOCK_REALTIME right after COMMIT returned */
        int64_t claimed_us, started_us, succeeded_us;
};

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static int64_t pct(const int64_t *v, size_t n, double p)
{
        size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1];
}

static void report(const char *name, struct sample *s, size_t n, size_t off)
{
        int64_t *v = calloc(n, sizeof(*v));
        double sum = 0;

        if (v == NULL)
                die("out of memory");
        for (size_t i = 0; i < n; i++) {
                v[i] = *(int64_t *)((char *)&s[i] + off) - s[i].commit_us;
                sum += (double)v[i];
        }
        qsort(v, n, sizeof(*v), cmp_i64);
        printf("%s_min_ms=%.3f\n%s_p50_ms=%.3f\n%s_p95_ms=%.3f\n%s_p99_ms=%.3f\n"
               "%s_max_ms=%.3f\n%s_mean_ms=%.3f\n",
               name, v[0] / 1e3, name, pct(v, n, 50) / 1e3, name, pct(v, n, 95) / 1e3, name,
               pct(v, n, 99) / 1e3, name, v[n - 1] / 1e3, name, sum / (double)n / 1e3);
        free(v);
}

static int cmd_latency(int argc, char **argv)
{
        static const char events_sql[] =
            "SELECT task_id, kind, (extract(epoch FROM at) * 1000000)::bigint"
            "  FROM chimera.task_events"
            " WHERE task_id BETWEEN $1::bigint AND $2::bigint AND attempt = 1"
            "   AND kind IN ('claimed', 'phase_started', 'succeeded')";
        PGconn *c;
        PGresult *r;
        long n, interval_ms, warmup, total;
        struct sample *s;
        int64_t next, deadline;
        char lo[32], hi[32];
        const char *params[2];
        size_t done = 0;

        if (argc != 5)
                die("usage: chimera-bench latency URL N INTERVAL_MS WORKFLOW WARMUP");
        n = parse_long(argv[1], "N");
        interval_ms = parse_long(argv[2], "INTERVAL_MS");
        warmup = parse_long(argv[4], "WARMUP");
        total = n + warmup;
        if (n < 1)
                die("N must be at least 1");
        s = calloc((size_t)total, sizeof(*s));
        if (s == NULL)
                die("out of memory");
        c = db_connect(argv[0]);
        r = PQprepare(c, "ins", "INSERT INTO chimera.tasks (workflow) VALUES ($1) RETURNING id", 1,
                      NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
                die("prepare: %s", PQresultErrorMessage(r));
        PQclear(r);
        params[0] = argv[3];
        next = now_us(CLOCK_MONOTONIC);
        for (long i = 0; i < total; i++) {
                int64_t now = now_us(CLOCK_MONOTONIC);

                if (next > now)
                        sleep_us(next - now);
                next += interval_ms * 1000;
                /* One statement in autocommit: PQexecPrepared returns once the
                 * server has committed it (synchronous_commit = on: flushed). */
                r = PQexecPrepared(c, "ins", 1, params, NULL, NULL, 0);
                s[i].commit_us = now_us(CLOCK_REALTIME);
                if (PQresultStatus(r) != PGRES_TUPLES_OK)
                        die("insert: %s", PQresultErrorMessage(r));
                s[i].id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                PQclear(r);
        }
        /* Wait for every task to be written as finished. */
        snprintf(lo, sizeof(lo), "%lld", s[0].id);
        snprintf(hi, sizeof(hi), "%lld", s[total - 1].id);
        params[0] = lo;
        params[1] = hi;
        deadline = now_us(CLOCK_MONOTONIC) + 30000000;
        for (;;) {
                r = db_exec(c,
                            "SELECT count(*) FROM chimera.tasks WHERE id BETWEEN $1::bigint AND"
                            " $2::bigint AND finished_at IS NOT NULL",
                            2, params);
                done = (size_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                PQclear(r);
                if (done >= (size_t)total)
                        break;
                if (now_us(CLOCK_MONOTONIC) > deadline)
                        die("only %zu of %ld tasks finished within 30 s", done, total);
                sleep_us(20000);
        }
        r = db_exec(c, events_sql, 2, params);
        for (int row = 0; row < PQntuples(r); row++) {
                long long id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
                const char *kind = PQgetvalue(r, row, 1);
                int64_t at = strtoll(PQgetvalue(r, row, 2), NULL, 10);
                /* ids are consecutive unless someone else inserted meanwhile */
                for (long i = 0; i < total; i++) {
                        if (s[i].id != id)
                                continue;
                        if (strcmp(kind, "claimed") == 0)
                                s[i].claimed_us = at;
                        else if (strcmp(kind, "phase_started") == 0)
                                s[i].started_us = at;
                        else
                                s[i].succeeded_us = at;
                        break;
                }
        }
        PQclear(r);
        for (long i = warmup; i < total; i++)
                if (s[i].claimed_us == 0 || s[i].started_us == 0 || s[i].succeeded_us == 0)
                        die("task %lld lacks its claimed, phase_started or succeeded event",
                            s[i].id);
        printf("samples=%ld\n", n);
        report("claim", s + warmup, (size_t)n, offsetof(struct sample, claimed_us));
        report("pickup", s + warmup, (size_t)n, offsetof(struct sample, started_us));
        report("finish", s + warmup, (size_t)n, offsetof(struct sample, succeeded_us));
        free(s);
        PQfinish(c);
        return 0;
}

/* ---- the price of a process, without chimera ---- */

extern char **environ;

static int64_t tv_us(struct timeval tv)
{
        return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int64_t rusage_cpu_us(int who)
{
        struct rusage ru;

        if (getrusage(who, &ru) < 0)
                die("getrusage: %s", strerror(errno));
        return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

/* One start of the agent, as a worker does it; dies on any failure. */
static void spawn_once(char **argv, const char *req, size_t reqlen)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t sa;
        sigset_t dfl;
        int in[2], out[2], status, rc;
        char buf[4096];
        ssize_t n;
        pid_t pid;

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                die("pipe2: %s", strerror(errno));
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        /* The loop ignores SIGPIPE (an agent need not read its request); the agent must not. */
        posix_spawnattr_init(&sa);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE);
        posix_spawnattr_setsigdefault(&sa, &dfl);
        posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGDEF);
        rc = posix_spawn(&pid, argv[0], &fa, &sa, argv, environ);
        posix_spawnattr_destroy(&sa);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
                die("cannot start %s: %s", argv[0], strerror(rc));
        close(in[0]);
        close(out[1]);
        if (write(in[1], req, reqlen) != (ssize_t)reqlen && errno != EPIPE)
                die("writing to %s: %s", argv[0], strerror(errno));
        close(in[1]);
        while ((n = read(out[0], buf, sizeof(buf))) != 0)
                if (n < 0 && errno != EINTR)
                        die("reading from %s: %s", argv[0], strerror(errno));
        close(out[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s did not exit 0 (wait status %d)", argv[0], status);
}

/* What one CPUID instruction costs, in microseconds; 0 where there is none. */
static double cpuid_us(void)
{
#if defined(__x86_64__) || defined(__i386__)
        enum { ROUNDS = 2000 };
        unsigned a, b, c, d, sum = 0;
        int64_t t0 = now_us(CLOCK_MONOTONIC);

        for (unsigned i = 0; i < ROUNDS; i++) {
                /* Leaf 4, the cache parameters glibc walks at each process start. */
                __cpuid_count(4, i & 3, a, b, c, d);
                sum += a ^ b ^ c ^ d;
        }
        __asm__ volatile("" : : "r"(sum));
        return (double)(now_us(CLOCK_MONOTONIC) - t0) / ROUNDS;
#else
        return 0;
#endif
}

static int cmd_spawn(int argc, char **argv)
{
        /* About the size of the request a worker writes for a small payload. */
        static const char req[] =
            "{\"task_id\":1,\"attempt\":1,\"trace_id\":\"00000000000000000000000000000000\","
            "\"workflow\":\"exec\",\"phase\":\"run\",\"action\":\"run\",\"params\":{},"
            "\"payload\":{},\"state\":{}}\n";
        struct {
                int64_t agent_us, self_us;
        } got, sum = {0, 0};
        int fds[2], status;
        long p, n;
        int64_t t0, t1;

        if (argc < 3)
                die("usage: chimera-bench spawn P N AGENT [ARG...]");
        p = parse_long(argv[0], "P");
        n = parse_long(argv[1], "N");
        if (p < 1 || n < 1)
                die("spawn: P and N must be at least 1");
        if (pipe2(fds, O_CLOEXEC) < 0)
                die("pipe2: %s", strerror(errno));
        signal(SIGPIPE, SIG_IGN);
        /* A quick check, before the clock starts, that the agent runs at all. */
        spawn_once(argv + 2, req, sizeof(req) - 1);
        t0 = now_us(CLOCK_MONOTONIC);
        for (long i = 0; i < p; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        die("fork: %s", strerror(errno));
                if (pid == 0) {
                        close(fds[0]);
                        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the bench was stopped */
                        if (getppid() == 1)
                                _exit(1);
                        for (long j = 0; j < n; j++)
                                spawn_once(argv + 2, req, sizeof(req) - 1);
                        got.agent_us = rusage_cpu_us(RUSAGE_CHILDREN);
                        got.self_us = rusage_cpu_us(RUSAGE_SELF);
                        if (write(fds[1], &got, sizeof(got)) != (ssize_t)sizeof(got))
                                _exit(1);
                        _exit(0);
                }
        }
        close(fds[1]);
        for (long i = 0; i < p; i++) {
                if (wait(&status) < 0)
                        die("wait: %s", strerror(errno));
                if (WIFSIGNALED(status))
                        die("spawn: a loop was killed by signal %d", WTERMSIG(status));
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        die("spawn: a loop failed (see above)");
        }
        t1 = now_us(CLOCK_MONOTONIC);
        for (long i = 0; i < p; i++) {
                if (read(fds[0], &got, sizeof(got)) != (ssize_t)sizeof(got))
                        die("spawn: a loop did not report");
                sum.agent_us += got.agent_us;
                sum.self_us += got.self_us;
        }
        close(fds[0]);
        printf("spawns=%ld\n", p * n);
        printf("wall_s=%.3f\n", (double)(t1 - t0) / 1e6);
        printf("spawns_per_s=%.0f\n", (double)(p * n) * 1e6 / (double)(t1 - t0));
        printf("agent_cpu_us=%.0f\n", (double)sum.agent_us / (double)(p * n));
        printf("spawner_cpu_us=%.0f\n", (double)sum.self_us / (double)(p * n));
        printf("cpuid_us=%.2f\n", cpuid_us());
        return 0;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                die("usage: chimera-bench ready|drain|rows|latency|spawn ARGS (see bench/bench.c)");
        if (strcmp(argv[1], "ready") == 0)
                return cmd_ready(argc - 2, argv + 2);
        if (strcmp(argv[1], "drain") == 0)
                return cmd_drain(argc - 2, argv + 2);
        if (strcmp(argv[1], "rows") == 0)
                return cmd_rows(argc - 2, argv + 2);
        if (strcmp(argv[1], "latency") == 0)
                return cmd_latency(argc - 2, argv + 2);
        if (strcmp(argv[1], "spawn") == 0)
                return cmd_spawn(argc - 2, argv + 2);
        die("unknown command %s", argv[1]);
}
