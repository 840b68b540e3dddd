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
 *
 * Output is "key=value" lines, read by bench/run.sh.  Errors go to stderr
 * with exit status 1.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

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

int main(int argc, char **argv)
{
        if (argc < 2)
                die("usage: chimera-bench ready|drain|rows|latency ARGS (see bench/bench.c)");
        if (strcmp(argv[1], "ready") == 0)
                return cmd_ready(argc - 2, argv + 2);
        if (strcmp(argv[1], "drain") == 0)
                return cmd_drain(argc - 2, argv + 2);
        if (strcmp(argv[1], "rows") == 0)
                return cmd_rows(argc - 2, argv + 2);
        if (strcmp(argv[1], "latency") == 0)
                return cmd_latency(argc - 2, argv + 2);
        die("unknown command %s", argv[1]);
}
