/*
 * test_commands.c - every chimera-ctl command against a live chimerad,
 * and without one or without a database: what it prints (key substrings,
 * 80 columns), that --json parses, its exit status, and what it does to
 * the queue and the pool - pause stops claims, cancel ends a running task
 * and replaces its worker, reload refuses a broken config, submitted tasks
 * run, migrate can run twice.
 *
 * chimera-ctl writes errors to stderr and results to stdout, so commands
 * run here with the two kept apart (ctl_split), to parse the JSON of one
 * and read the message of the other.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define OUT_SIZE 65536
#define WAIT_MS  30000
#define NO_DB    "postgresql://postgres:s3cret@127.0.0.1:1/x"

static char out[OUT_SIZE], err[OUT_SIZE];

/*
 * Runs chimera-ctl with the arguments given (NULL-terminated; first may be
 * NULL for none), its stdout into out and its stderr into err; returns its
 * exit status.
 */
static int ctl_split(const char *first, ...)
{
        char *argv[24], errpath[400];
        int argc = 0, pipefd[2], status;
        size_t got = 0;
        ssize_t n;
        va_list ap;
        pid_t pid;

        argv[argc++] = (char *)h_bin("chimera-ctl");
        va_start(ap, first);
        for (const char *a = first; a != NULL && argc < 23; a = va_arg(ap, const char *))
                argv[argc++] = (char *)a;
        va_end(ap);
        argv[argc] = NULL;
        snprintf(errpath, sizeof(errpath), "%s/ctl.err", H.dir);
        ck_assert_int_eq(pipe(pipefd), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                dup2(pipefd[1], 1);
                if (fd >= 0)
                        dup2(fd, 2);
                close(pipefd[0]);
                close(pipefd[1]);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], out + got, sizeof(out) - 1 - got)) > 0)
                got += (size_t)n;
        out[got] = '\0';
        close(pipefd[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        h_read_file(errpath, err, sizeof(err));
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* chimera-ctl -c H.config ARGS...: stdout in out, stderr in err. */
#define CTL(...) ctl_split("-c", H.config, __VA_ARGS__, (char *)NULL)

static void assert_fits_80_columns(const char *text)
{
        const char *line = text;

        while (*line != '\0') {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                ck_assert_msg(len <= 80, "line over 80 columns (%zu): %.*s", len, (int)len, line);
                line += len + (nl != NULL);
        }
}

/* Parses out as JSON; fails the test if it is not. */
static json_t *parse_out(void)
{
        json_error_t jerr;
        json_t *j = json_loads(out, 0, &jerr);

        ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
        return j;
}

static long long submit_sql(const char *workflow, const char *payload, const char *queue)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload, queue) VALUES ('%s', '%s', '%s')"
                 " RETURNING id",
                 workflow, payload, queue);
        return h_int(sql);
}

static long long query_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static long long query_int(const char *fmt, ...)
{
        char sql[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        return h_int(sql);
}

static bool wait_status(long long id, const char *status)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE id = %lld AND status = '%s'", id,
                 status);
        return h_wait_int(sql, 1, WAIT_MS);
}

/* Waits until the phase of task id has started on a worker. */
static bool wait_phase_started(long long id)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                 " AND kind = 'phase_started'",
                 id);
        return h_wait_int(sql, 1, WAIT_MS);
}

/* Replaces the first occurrence of from in H.config with to. */
static void edit_config(const char *from, const char *to)
{
        static char text[16384], edited[16384];
        char *p;

        h_read_file(H.config, text, sizeof(text));
        p = strstr(text, from);
        ck_assert_msg(p != NULL, "'%s' not in the config", from);
        snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
        h_write_config_text(edited);
}

/* Waits until chimerad (parent) has one chimera-worker child, other than old; returns it, or 0. */
static pid_t wait_new_worker(pid_t parent, pid_t old)
{
        long long deadline = h_now_ms() + WAIT_MS;
        struct timespec pause = {0, 20 * 1000000L};

        for (;;) {
                pid_t pids[4];
                int n = h_children(parent, "chimera-worker", pids, 4);
                if (n == 1 && pids[0] != old)
                        return pids[0];
                if (h_now_ms() > deadline)
                        return 0;
                nanosleep(&pause, NULL);
        }
}

/* ---- status ---- */

START_TEST(status_shows_live_supervisors_rates_and_the_oldest_queued_task)
{
        char host[256] = "";
        long long waiting;
        json_t *j, *cluster, *sv;

        h_write_config(2, NULL);
        h_start_chimerad(H.config, "chimerad");
        for (int i = 0; i < 3; i++)
                submit_sql("noop", "{}", "default");
        submit_sql("fail", "{}", "default");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE finished_at IS NOT NULL", 4,
                             WAIT_MS));
        h_exec("INSERT INTO chimera.queues (name, paused, paused_at) VALUES ('bulk', true, now())");
        waiting = submit_sql("noop", "{}", "bulk");

        ck_assert_int_eq(CTL("status"), 0);
        ck_assert_msg(strstr(out, "pool: 2 workers") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "tasks: queued 1, running 0, succeeded 3, failed 1") != NULL,
                      "%s", out);
        ck_assert_msg(strstr(out, "throughput: 4 finished in the last minute") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "last hour: 4 finished, 75.0% succeeded, average duration ") !=
                          NULL,
                      "%s", out);
        snprintf(host, sizeof(host), "oldest queued: task %lld, waiting ", waiting);
        ck_assert_msg(strstr(out, host) != NULL, "%s", out);
        ck_assert_msg(strstr(out, "paused queues: bulk") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "supervisors: 1 live (heartbeat within 15.0s)") != NULL, "%s",
                      out);
        ck_assert_msg(strstr(out, "HEARTBEAT") != NULL, "%s", out);
        assert_fits_80_columns(out);

        ck_assert_int_eq(CTL("status", "--json"), 0);
        j = parse_out();
        cluster = json_object_get(j, "cluster");
        ck_assert_int_eq(json_array_size(json_object_get(cluster, "supervisors")), 1);
        sv = json_array_get(json_object_get(cluster, "supervisors"), 0);
        gethostname(host, sizeof(host) - 1);
        ck_assert_str_eq(json_string_value(json_object_get(sv, "host")), host);
        ck_assert_int_eq(json_integer_value(json_object_get(sv, "pool_size")), 2);
        ck_assert_int_eq(json_integer_value(
                             json_object_get(json_object_get(cluster, "last_minute"), "finished")),
                         4);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(cluster, "last_hour"), "succeeded")),
            3);
        ck_assert(json_is_integer(
            json_object_get(json_object_get(cluster, "last_hour"), "avg_duration_ms")));
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(cluster, "oldest_queued"), "id")),
            waiting);
        ck_assert_str_eq(
            json_string_value(json_array_get(json_object_get(cluster, "paused_queues"), 0)),
            "bulk");
        /* chimerad's own reply is there as before. */
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "size")),
                         2);
        json_decref(j);
}
END_TEST

START_TEST(status_without_a_supervisor_shows_the_database_and_exits_1)
{
        json_t *j;

        h_write_config(1, NULL);
        submit_sql("noop", "{}", "default");
        ck_assert_int_eq(CTL("status"), 1);
        ck_assert_msg(strstr(err, "chimera-ctl: no chimerad is running") != NULL, "%s", err);
        ck_assert_msg(strstr(err, H.socket) != NULL, "%s", err);
        ck_assert_msg(strstr(out, "tasks: queued 1, running 0") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "supervisors: none live") != NULL, "%s", out);
        assert_fits_80_columns(out);

        ck_assert_int_eq(CTL("status", "--json"), 1);
        j = parse_out();
        ck_assert(json_is_null(json_object_get(j, "supervisor")));
        ck_assert_msg(strstr(json_string_value(json_object_get(j, "error")),
                             "no chimerad is running") != NULL,
                      "%s", out);
        ck_assert_int_eq(json_integer_value(json_object_get(
                             json_object_get(json_object_get(j, "cluster"), "tasks"), "queued")),
                         1);
        json_decref(j);

        /* Neither: both said, nothing else. */
        ck_assert_int_eq(ctl_split("-c", H.config, "--database", NO_DB, "status", NULL), 1);
        ck_assert_msg(strstr(err, "no chimerad is running") != NULL, "%s", err);
        ck_assert_msg(strstr(err, "cannot connect to the database") != NULL, "%s", err);
        ck_assert_msg(strstr(err, "s3cret") == NULL, "password shown: %s", err);
        ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(status_with_the_database_unreachable_still_shows_the_live_part)
{
        json_t *j;

        h_write_config(2, NULL);
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, WAIT_MS));
        ck_assert_int_eq(ctl_split("-c", H.config, "--database", NO_DB, "status", NULL), 0);
        ck_assert_msg(strstr(out, "pool: 2 workers") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "chimera-ctl cannot read the database") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "s3cret") == NULL, "password shown: %s", out);
        assert_fits_80_columns(out);

        ck_assert_int_eq(ctl_split("-c", H.config, "--database", NO_DB, "--json", "status", NULL),
                         0);
        j = parse_out();
        ck_assert(json_is_null(json_object_get(j, "cluster")));
        ck_assert_msg(strstr(json_string_value(json_object_get(j, "cluster_error")),
                             "cannot connect to the database") != NULL,
                      "%s", out);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "size")),
                         2);
        json_decref(j);
}
END_TEST

/* ---- workers ---- */

START_TEST(workers_lists_each_worker_with_its_task)
{
        char want[64];
        long long id;
        json_t *j, *w;
        size_t i;
        int busy = 0;

        h_write_config(2, NULL);
        h_start_chimerad(H.config, "chimerad");
        id = submit_sql("sleep", "{\"ms\": 30000}", "default");
        ck_assert(wait_phase_started(id));

        ck_assert_int_eq(CTL("workers"), 0);
        ck_assert_msg(strstr(out, "SLOT PID     STATE     DONE  UP    TASK      ATT WORKFLOW") !=
                          NULL,
                      "%s", out);
        snprintf(want, sizeof(want), "busy         0");
        ck_assert_msg(strstr(out, want) != NULL, "%s", out);
        snprintf(want, sizeof(want), "%-9lld   1 sleep        run", id);
        ck_assert_msg(strstr(out, want) != NULL, "want '%s' in:\n%s", want, out);
        ck_assert_msg(strstr(out, "pool: 2 workers, 1 busy, 1 idle") != NULL, "%s", out);
        assert_fits_80_columns(out);

        ck_assert_int_eq(CTL("workers", "--json"), 0);
        j = parse_out();
        json_array_foreach (json_object_get(json_object_get(j, "pool"), "workers"), i, w) {
                ck_assert(json_is_integer(json_object_get(w, "uptime_ms")));
                if (json_integer_value(json_object_get(w, "task")) == id) {
                        busy++;
                        ck_assert_str_eq(json_string_value(json_object_get(w, "phase")), "run");
                        ck_assert(json_is_string(json_object_get(w, "trace_id")));
                }
        }
        ck_assert_int_eq(busy, 1);
        ck_assert(json_object_get(j, "tasks") == NULL); /* no database query */
        json_decref(j);

        h_signal_and_wait(H.procs[0], SIGKILL, WAIT_MS);
        ck_assert_int_eq(CTL("workers"), 1);
        ck_assert_msg(strstr(err, "no chimerad is running") != NULL, "%s", err);
}
END_TEST

/* ---- tasks ---- */

START_TEST(tasks_lists_the_newest_first_and_filters)
{
        long long first, failed, other;
        json_t *j;

        h_write_config(1, NULL);
        first = submit_sql("noop", "{}", "default");
        failed = h_int("INSERT INTO chimera.tasks (workflow, status, attempts, last_error,"
                       " finished_at) VALUES ('fail', 'failed', 1, 'phase run failed: a very long"
                       " error that goes on\nover two lines and past the edge of the screen',"
                       " now()) RETURNING id");
        other = submit_sql("sleep", "{}", "other");

        ck_assert_int_eq(CTL("tasks"), 0);
        ck_assert_msg(
            strncmp(out, "ID        WORKFLOW         STATUS    ATT   AGE    LAST ERROR\n", 61) == 0,
            "%s", out);
        /* Newest first. */
        ck_assert_msg(strstr(out, "sleep") != NULL && strstr(out, "fail ") != NULL &&
                          strstr(out, "noop") != NULL,
                      "%s", out);
        ck_assert_msg(strstr(out, "sleep") < strstr(out, "fail ") &&
                          strstr(out, "fail ") < strstr(out, "noop"),
                      "not newest first: %s", out);
        ck_assert_msg(strstr(out, "failed    1/3") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "phase run failed: a very long~") != NULL, "%s", out);
        assert_fits_80_columns(out);

        ck_assert_int_eq(CTL("tasks", "--status", "failed", "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(json_array_size(j), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "id")), failed);
        json_decref(j);
        ck_assert_int_eq(CTL("tasks", "--queue", "other", "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(json_array_size(j), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "id")), other);
        json_decref(j);
        ck_assert_int_eq(CTL("tasks", "--workflow", "noop", "--status", "queued", "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(json_array_size(j), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "id")), first);
        json_decref(j);
        ck_assert_int_eq(CTL("tasks", "--limit", "2", "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(json_array_size(j), 2);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "id")), other);
        json_decref(j);
        ck_assert_int_eq(CTL("tasks", "--status", "dead"), 0);
        ck_assert_str_eq(out, "no tasks match\n");

        ck_assert_int_eq(CTL("tasks", "--status", "bogus"), 2);
        ck_assert_msg(strstr(err, "--status is queued, running") != NULL, "%s", err);
        ck_assert_int_eq(CTL("tasks", "--limit", "0"), 2);
        ck_assert_int_eq(CTL("tasks", "--limit", "x"), 2);
        ck_assert_int_eq(CTL("tasks", "--priority", "3"), 2);
        ck_assert_msg(strstr(err, "tasks does not take --priority") != NULL, "%s", err);
        ck_assert_int_eq(CTL("tasks", "extra"), 2);
}
END_TEST

/* ---- submit ---- */

START_TEST(submit_queues_a_task_that_runs)
{
        long long id;
        json_t *j;

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        ck_assert_int_eq(CTL("submit", "twophase", "{\"ms\": 10}"), 0);
        id = strtoll(out, NULL, 10);
        ck_assert_msg(id > 0, "%s", out);
        ck_assert_msg(wait_status(id, "succeeded"), "task %lld did not succeed", id);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND payload = '{\"ms\": 10}' AND priority = 3"
                                   " AND queue = 'default' AND max_attempts = 3",
                                   id),
                         1);
        /* A number too big for 64 bits is still JSON: stored as given (in a queue no one serves).
         */
        ck_assert_int_eq(
            CTL("submit", "noop", "{\"big\": 123456789012345678901}", "--queue", "kept"), 0);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND payload->>'big' = '123456789012345678901'",
                                   strtoll(out, NULL, 10)),
                         1);

        ck_assert_int_eq(CTL("submit", "noop", "--priority", "5", "--queue", "later",
                             "--max-attempts", "7", "--run-at", "+1h", "--json"),
                         0);
        j = parse_out();
        id = json_integer_value(json_object_get(j, "id"));
        ck_assert_str_eq(json_string_value(json_object_get(j, "workflow")), "noop");
        ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "later");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "priority")), 5);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_attempts")), 7);
        json_decref(j);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND run_at > now() + interval '50 minutes'"
                                   " AND payload = '{}'",
                                   id),
                         1);
        ck_assert_int_eq(
            CTL("submit", "noop", "--run-at", "2001-02-03 04:05:06", "--queue", "past"), 0);
        id = strtoll(out, NULL, 10);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND run_at = '2001-02-03 04:05:06+00'",
                                   id),
                         1);

        /* A workflow this config lacks is submitted, with a warning. */
        ck_assert_int_eq(CTL("submit", "nosuch"), 0);
        ck_assert_msg(strstr(err, "warning: workflow \"nosuch\" is not in") != NULL, "%s", err);
}
END_TEST

START_TEST(submit_refuses_bad_payloads_and_reports_the_databases_refusal)
{
        h_write_config(1, NULL);
        ck_assert_int_eq(CTL("submit", "noop", "{\"a\": "), 2);
        ck_assert_msg(strstr(err, "submit: the payload is not valid JSON") != NULL, "%s", err);
        ck_assert_int_eq(CTL("submit", "noop", "[1, 2]"), 2);
        ck_assert_msg(strstr(err, "submit: the payload must be a JSON object, not an array") !=
                          NULL,
                      "%s", err);
        ck_assert_int_eq(CTL("submit", "noop", "--priority", "high"), 2);
        ck_assert_int_eq(CTL("submit", "noop", "--run-at", "+soon"), 2);
        ck_assert_int_eq(CTL("submit"), 2);
        ck_assert_int_eq(CTL("submit", "noop", "{}", "more"), 2);
        ck_assert_int_eq(CTL("submit", "noop", "--status", "queued"), 2);

        ck_assert_int_eq(CTL("submit", "noop", "--priority", "9"), 1);
        ck_assert_msg(strstr(err, "chimera-ctl: the database refused the task: ") != NULL, "%s",
                      err);
        ck_assert_msg(strstr(err, "priority must be between 1 and 5") != NULL, "%s", err);
        ck_assert_int_eq(CTL("submit", "noop", "--max-attempts", "0"), 1);
        ck_assert_msg(strstr(err, "max_attempts must be at least 1") != NULL, "%s", err);
        ck_assert_int_eq(CTL("submit", "noop", "--run-at", "next tuesday-ish"), 1);
        ck_assert_msg(strstr(err, "timestamp") != NULL, "%s", err);
        ck_assert_int_eq(CTL("submit", "noop", "--queue", ""), 1);
        ck_assert_msg(strstr(err, "queue must not be empty") != NULL, "%s", err);
        ck_assert_str_eq(out, "");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);
}
END_TEST

/* ---- cancel ---- */

START_TEST(cancel_of_a_queued_task_ends_it_at_once)
{
        char want[128];
        long long id, other;
        json_t *j;

        h_write_config(1, NULL);
        id = submit_sql("noop", "{}", "default");
        other = submit_sql("noop", "{}", "default");

        snprintf(want, sizeof(want), "%lld", id);
        ck_assert_int_eq(CTL("cancel", want), 0);
        snprintf(want, sizeof(want), "task %lld cancelled (was queued)\n", id);
        ck_assert_str_eq(out, want);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND status = 'cancelled' AND finished_at IS NOT NULL",
                                   id),
                         1);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                   " AND kind = 'cancelled' AND detail->>'by' = 'chimera-ctl'"
                                   " AND detail->>'previous_status' = 'queued'",
                                   id),
                         1);

        snprintf(want, sizeof(want), "%lld", id);
        ck_assert_int_eq(CTL("cancel", want), 1);
        snprintf(want, sizeof(want),
                 "chimera-ctl: task %lld is cancelled: only queued or running tasks can be "
                 "cancelled\n",
                 id);
        ck_assert_str_eq(err, want);

        snprintf(want, sizeof(want), "%lld", other);
        ck_assert_int_eq(CTL("cancel", want, "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), other);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "cancelled");
        ck_assert_str_eq(json_string_value(json_object_get(j, "previous_status")), "queued");
        json_decref(j);

        /* A cancelled task stays so: a supervisor started now claims nothing. */
        h_start_chimerad(H.config, "chimerad");
        id = submit_sql("noop", "{}", "default");
        ck_assert(wait_status(id, "succeeded"));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'cancelled'"
                               " AND attempts = 0"),
                         2);

        ck_assert_int_eq(CTL("cancel", "424242"), 1);
        ck_assert_str_eq(err, "chimera-ctl: no task 424242\n");
        ck_assert_int_eq(CTL("cancel", "abc"), 2);
        ck_assert_msg(strstr(err, "cancel: a task id is a positive integer") != NULL, "%s", err);
        ck_assert_int_eq(CTL("cancel"), 2);
}
END_TEST

START_TEST(cancel_of_a_running_task_kills_its_worker_and_it_never_succeeds)
{
        char id_text[32], want[128];
        pid_t chimerad, old, fresh;
        long long id, after;
        json_t *j;

        h_write_config(1, NULL);
        chimerad = h_start_chimerad(H.config, "chimerad");
        id = submit_sql("sleep", "{\"ms\": 30000}", "default");
        ck_assert(wait_phase_started(id));
        ck_assert_int_eq(CTL("workers", "--json"), 0);
        j = parse_out();
        old = (pid_t)json_integer_value(json_object_get(
            json_array_get(json_object_get(json_object_get(j, "pool"), "workers"), 0), "pid"));
        json_decref(j);
        ck_assert_int_gt(old, 0);

        snprintf(id_text, sizeof(id_text), "%lld", id);
        ck_assert_int_eq(CTL("cancel", id_text), 0);
        snprintf(want, sizeof(want),
                 "task %lld cancelled (was running phase run); its worker is replaced\n", id);
        ck_assert_str_eq(out, want);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND status = 'cancelled' AND finished_at IS NOT NULL"
                                   " AND lease_owner IS NULL AND attempts = 1",
                                   id),
                         1);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                   " AND kind = 'cancelled' AND attempt = 1"
                                   " AND detail->>'by' = 'chimera-ctl'"
                                   " AND detail->>'previous_status' = 'running'",
                                   id),
                         1);

        /* Its worker is gone and another one took the slot... */
        fresh = wait_new_worker(chimerad, old);
        ck_assert_msg(fresh > 0, "worker %d was not replaced", (int)old);
        /* ...which runs the next task; by then any late outcome would be written. */
        after = submit_sql("noop", "{}", "default");
        ck_assert(wait_status(after, "succeeded"));
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                   " AND kind IN ('succeeded', 'retried', 'failed', 'dead')",
                                   id),
                         0);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND status = 'cancelled' AND attempts = 1",
                                   id),
                         1);
        ck_assert_int_eq(CTL("workers", "--json"), 0);
        j = parse_out();
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(j, "pool"), "restarts")), 1);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(j, "pool"), "crash_streak")), 0);
        json_decref(j);

        /* show tells the story. */
        ck_assert_int_eq(CTL("show", id_text), 0);
        ck_assert_msg(strstr(out, "cancelled") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "by chimera-ctl (was running)") != NULL, "%s", out);
        ck_assert_int_eq(CTL("cancel", id_text), 1);
}
END_TEST

START_TEST(cancel_of_a_running_task_kills_its_agent_program)
{
        char agent[400], config[4096], trace[64], env[128], id_text[32];
        long long id;
        FILE *f;

        snprintf(agent, sizeof(agent), "%s/sleeper", H.dir);
        f = fopen(agent, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "#!/bin/sh\nsleep 60\n");
        fclose(f);
        ck_assert_int_eq(chmod(agent, 0755), 0);
        snprintf(config, sizeof(config),
                 "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": 1},\n"
                 " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
                 " \"agents\": {\"sleeper\": {\"argv\": [\"%s\"]}},\n"
                 " \"workflows\": {\"slow\": {\"initial\": \"wait\", \"phases\": {\"wait\":\n"
                 "   {\"agent\": \"sleeper\"}}}}}\n",
                 H.url, H.socket, agent);
        h_write_config_text(config);
        h_start_chimerad(H.config, "chimerad");
        id = submit_sql("slow", "{}", "default");
        ck_assert(wait_phase_started(id));
        snprintf(env, sizeof(env), "SELECT trace_id::text FROM chimera.tasks WHERE id = %lld", id);
        h_text(env, trace, sizeof(trace));
        snprintf(env, sizeof(env), "CHIMERA_TRACE_ID=%s", trace);
        /* The agent (its shell, and its sleep) carries the trace in its environment. */
        for (long long deadline = h_now_ms() + WAIT_MS; h_count_procs_with_env(env, NULL) < 1;) {
                struct timespec pause = {0, 20 * 1000000L};
                ck_assert_msg(h_now_ms() < deadline, "the agent did not start");
                nanosleep(&pause, NULL);
        }

        snprintf(id_text, sizeof(id_text), "%lld", id);
        ck_assert_int_eq(CTL("cancel", id_text), 0);
        for (long long deadline = h_now_ms() + WAIT_MS; h_count_procs_with_env(env, NULL) > 0;) {
                struct timespec pause = {0, 20 * 1000000L};
                ck_assert_msg(h_now_ms() < deadline, "the agent outlived the cancel");
                nanosleep(&pause, NULL);
        }
        ck_assert(wait_status(id, "cancelled"));
}
END_TEST

START_TEST(cancel_of_a_task_running_elsewhere_names_its_host)
{
        char id_text[32];
        long long id;

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, WAIT_MS));
        h_exec("INSERT INTO chimera.supervisors (id, host, pid, pool_size, version, queues)"
               " VALUES ('11111111-1111-4111-8111-111111111111', 'otherhost', 777, 2, '0.1.0',"
               " '{elsewhere}')");
        id = h_int("INSERT INTO chimera.tasks (workflow, queue, status, attempts, lease_owner,"
                   " lease_expires_at, started_at) VALUES ('noop', 'elsewhere', 'running', 1,"
                   " '11111111-1111-4111-8111-111111111111', now() + interval '1 hour', now())"
                   " RETURNING id");
        snprintf(id_text, sizeof(id_text), "%lld", id);

        ck_assert_int_eq(CTL("cancel", id_text), 1);
        ck_assert_msg(strstr(err, "runs on otherhost (chimerad pid 777), not here") != NULL, "%s",
                      err);
        ck_assert_int_eq(query_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                   " AND status = 'running'",
                                   id),
                         1);

        /* Without a chimerad here, the same host is named. */
        h_signal_and_wait(H.procs[0], SIGTERM, WAIT_MS);
        ck_assert_int_eq(CTL("cancel", id_text), 1);
        ck_assert_msg(strstr(err, "runs on otherhost (chimerad pid 777)") != NULL, "%s", err);
        ck_assert_msg(strstr(err, "no chimerad is running") != NULL, "%s", err);
        ck_assert_int_eq(
            query_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld", id), 0);
}
END_TEST

START_TEST(cancel_refuses_tasks_that_have_ended)
{
        static const char *const statuses[] = {"succeeded", "failed", "dead", "cancelled"};
        char sql[512], id[32], want[160], before[4096], after[4096];

        h_write_config(1, NULL);
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
                snprintf(sql, sizeof(sql),
                         "INSERT INTO chimera.tasks (workflow, status, attempts, finished_at)"
                         " VALUES ('noop', '%s', 1, now()) RETURNING id",
                         statuses[i]);
                snprintf(id, sizeof(id), "%lld", h_int(sql));
                snprintf(sql, sizeof(sql), "SELECT t::text FROM chimera.tasks t WHERE id = %s", id);
                h_text(sql, before, sizeof(before));
                ck_assert_int_eq(CTL("cancel", id), 1);
                snprintf(want, sizeof(want),
                         "chimera-ctl: task %s is %s: only queued or running tasks can be "
                         "cancelled\n",
                         id, statuses[i]);
                ck_assert_str_eq(err, want);
                h_text(sql, after, sizeof(after));
                ck_assert_str_eq(after, before);
        }
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events"), 0);
}
END_TEST

/* ---- pause and resume ---- */

/* Waits for a NOTIFY on channel with payload on H.conn (which LISTENs); true when it came. */
static bool wait_notify(const char *channel, const char *payload)
{
        long long deadline = h_now_ms() + WAIT_MS;
        struct timespec pause = {0, 20 * 1000000L};

        for (;;) {
                PGnotify *n;
                ck_assert_int_eq(PQconsumeInput(H.conn), 1);
                while ((n = PQnotifies(H.conn)) != NULL) {
                        bool match =
                            strcmp(n->relname, channel) == 0 && strcmp(n->extra, payload) == 0;
                        PQfreemem(n);
                        if (match)
                                return true;
                }
                if (h_now_ms() > deadline)
                        return false;
                nanosleep(&pause, NULL);
        }
}

START_TEST(pause_stops_claims_from_a_queue_and_resume_restarts_them)
{
        json_t *j;

        h_write_config(1, "\"queues\": [\"default\", \"bulk\"]");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, WAIT_MS));

        ck_assert_int_eq(CTL("pause", "bulk"), 0);
        ck_assert_str_eq(out, "queue bulk paused: 0 queued tasks wait, 0 running go on\n");
        ck_assert_int_eq(CTL("pause", "bulk"), 0);
        ck_assert_msg(strstr(out, "queue bulk was paused already (since ") != NULL, "%s", out);
        /* Bulk first: were it claimable, a pool of one would run it before the others. */
        h_exec("INSERT INTO chimera.tasks (workflow, queue)"
               " SELECT 'noop', q FROM unnest(ARRAY['bulk', 'bulk', 'bulk', 'default', 'default',"
               " 'default']) WITH ORDINALITY AS u(q, n) ORDER BY n");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'default'"
                             " AND status = 'succeeded'",
                             3, WAIT_MS));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'bulk'"
                               " AND status = 'queued' AND attempts = 0"),
                         3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events e JOIN chimera.tasks t"
                               " ON t.id = e.task_id WHERE t.queue = 'bulk'"),
                         0);
        ck_assert_int_eq(CTL("status"), 0);
        ck_assert_msg(strstr(out, "paused queues: bulk") != NULL, "%s", out);
        ck_assert_int_eq(CTL("pause", "bulk", "--json"), 0);
        j = parse_out();
        ck_assert(json_is_true(json_object_get(j, "paused")));
        ck_assert(json_is_false(json_object_get(j, "changed")));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "queued")), 3);
        json_decref(j);

        /* Resume wakes idle supervisors as an insert does, rather than leave it to their poll. */
        h_exec("LISTEN chimera_tasks");
        ck_assert_int_eq(CTL("resume", "bulk"), 0);
        ck_assert_str_eq(out, "queue bulk resumed: 3 queued tasks can run\n");
        ck_assert_msg(wait_notify("chimera_tasks", "bulk"), "resume sent no NOTIFY");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'bulk'"
                             " AND status = 'succeeded'",
                             3, WAIT_MS));
        ck_assert_int_eq(CTL("resume", "bulk"), 0);
        ck_assert_str_eq(out, "queue bulk was not paused\n");
        ck_assert_int_eq(CTL("resume", "bulk", "--json"), 0);
        j = parse_out();
        ck_assert(json_is_false(json_object_get(j, "paused")));
        ck_assert(json_is_false(json_object_get(j, "changed")));
        json_decref(j);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.queues WHERE paused"), 0);

        ck_assert_int_eq(CTL("pause"), 2);
        ck_assert_int_eq(CTL("pause", ""), 2);
        ck_assert_int_eq(CTL("resume", "a", "b"), 2);
}
END_TEST

/* ---- reload ---- */

START_TEST(reload_applies_a_good_config_and_refuses_a_broken_one)
{
        static char log[1 << 16];
        char path[400];
        pid_t chimerad;
        long long id;
        json_t *j;

        h_write_config(1, NULL);
        chimerad = h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, WAIT_MS));

        /* A new workflow, known only once reloaded. */
        edit_config("\"workflows\": {",
                    "\"workflows\": {\n    \"added\": {\"initial\": \"run\", \"phases\": "
                    "{\"run\": {\"agent\": \"builtin:noop\"}}},");
        ck_assert_int_eq(CTL("reload"), 0);
        ck_assert_msg(strstr(out, "chimerad reloaded ") != NULL, "%s", out);
        ck_assert_msg(strstr(out, ": 7 workflows, 0 agents") != NULL, "%s", out);
        assert_fits_80_columns(out);
        id = submit_sql("added", "{}", "default");
        ck_assert_msg(wait_status(id, "succeeded"), "the added workflow did not run");

        /* Broken: chimera-ctl cannot even find the socket in it, and says so... */
        edit_config("\"pool\": {\"size\": 1}", "\"pool\": {\"size\": \"one\"}");
        ck_assert_int_eq(CTL("reload"), 1);
        ck_assert_msg(strstr(err, "pool.size") != NULL, "%s", err);
        ck_assert_msg(strstr(err, "chimerad was not asked to reload") != NULL, "%s", err);
        /* ...and chimerad, asked all the same, refuses it with the same reason. */
        ck_assert_int_eq(ctl_split("--socket", H.socket, "reload", NULL), 1);
        ck_assert_msg(strstr(err, "chimerad refused the new configuration and keeps its running "
                                  "one: ") != NULL,
                      "%s", err);
        ck_assert_msg(strstr(err, "pool.size: expected an integer") != NULL, "%s", err);
        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        h_read_file(path, log, sizeof(log));
        ck_assert_msg(strstr(log, "keeping the running configuration") != NULL, "%s", log);
        /* It runs on, with the config it had. */
        ck_assert_int_eq(kill(chimerad, 0), 0);
        id = submit_sql("added", "{}", "default");
        ck_assert_msg(wait_status(id, "succeeded"), "chimerad stopped working");

        edit_config("\"pool\": {\"size\": \"one\"}", "\"pool\": {\"size\": 1}");
        ck_assert_int_eq(CTL("reload", "--json"), 0);
        j = parse_out();
        ck_assert(json_is_true(json_object_get(j, "ok")));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "workflows")), 7);
        json_decref(j);
        ck_assert_int_eq(CTL("reload", "now"), 2);
}
END_TEST

/* ---- migrate ---- */

START_TEST(migrate_twice_creates_the_schema_then_finds_it_current)
{
        json_t *j;

        h_exec("DROP SCHEMA chimera CASCADE");
        ck_assert_int_eq(ctl_split("--database", H.url, "migrate", NULL), 0);
        ck_assert_msg(strstr(out, "applied 001_init") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "applied 002_retention") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "applied 003_event_key") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "schema is now at version 3") != NULL, "%s", out);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);
        ck_assert_int_eq(ctl_split("--database", H.url, "migrate", NULL), 0);
        ck_assert_str_eq(out, "schema is up to date (version 3)\n");

        ck_assert_int_eq(ctl_split("--database", H.url, "migrate", "--json", NULL), 0);
        j = parse_out();
        ck_assert_int_eq(json_integer_value(json_object_get(j, "from_version")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 3);
        ck_assert_int_eq(json_array_size(json_object_get(j, "applied")), 0);
        json_decref(j);

        h_exec("DROP SCHEMA chimera CASCADE");
        ck_assert_int_eq(ctl_split("--database", H.url, "--json", "migrate", NULL), 0);
        j = parse_out();
        ck_assert_int_eq(json_integer_value(json_object_get(j, "from_version")), 0);
        ck_assert_int_eq(json_array_size(json_object_get(j, "applied")), 3);
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "applied"), 0)),
                         "001_init");
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "applied"), 1)),
                         "002_retention");
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "applied"), 2)),
                         "003_event_key");
        json_decref(j);

        /* The config's database, as for every command; and a supervisor starts on it. */
        h_write_config(1, NULL);
        ck_assert_int_eq(CTL("migrate"), 0);
        ck_assert_str_eq(out, "schema is up to date (version 3)\n");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(wait_status(submit_sql("noop", "{}", "default"), "succeeded"));
}
END_TEST

/*
 * A database at schema version 2 (task_events keyed by id, with a second
 * index on (task_id, id)) keeps its events through 003_event_key and ends
 * with the one index, its primary key on (task_id, id).
 */
START_TEST(migrate_from_version_2_keeps_the_events_under_one_key)
{
        h_exec("ALTER TABLE chimera.task_events DROP CONSTRAINT task_events_pkey;"
               "ALTER TABLE chimera.task_events ADD PRIMARY KEY (id);"
               "CREATE INDEX task_events_task_idx ON chimera.task_events (task_id, id);"
               "DELETE FROM chimera.schema_version WHERE version = 3;"
               "INSERT INTO chimera.task_events (task_id, attempt, kind)"
               " SELECT i / 4, 1, 'claimed' FROM generate_series(4, 403) AS i");
        ck_assert_int_eq(ctl_split("--database", H.url, "migrate", NULL), 0);
        ck_assert_msg(strstr(out, "applied 003_event_key") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "schema is now at version 3") != NULL, "%s", out);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events"), 400);
        ck_assert_int_eq(h_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'chimera'"
                               " AND tablename = 'task_events'"),
                         1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM pg_index i"
                               " JOIN pg_class c ON c.oid = i.indexrelid"
                               " WHERE c.relname = 'task_events_pkey' AND i.indisprimary"
                               " AND i.indkey::text = '2 1'"),
                         1);
        ck_assert_int_eq(ctl_split("--database", H.url, "migrate", NULL), 0);
        ck_assert_str_eq(out, "schema is up to date (version 3)\n");
}
END_TEST

/* ---- every command ---- */

START_TEST(every_command_says_when_its_database_or_supervisor_is_missing)
{
        static const char *const db_commands[][3] = {
            {"tasks", NULL, NULL}, {"show", "1", NULL},    {"submit", "noop", NULL},
            {"cancel", "1", NULL}, {"retry", "1", NULL},   {"pause", "q", NULL},
            {"resume", "q", NULL}, {"migrate", NULL, NULL}};
        char missing[400];

        for (size_t i = 0; i < sizeof(db_commands) / sizeof(db_commands[0]); i++) {
                ck_assert_msg(
                    ctl_split("--database", NO_DB, db_commands[i][0], db_commands[i][1], NULL) == 1,
                    "%s: %s", db_commands[i][0], err);
                ck_assert_msg(strstr(err, "chimera-ctl: cannot connect to the database") != NULL,
                              "%s: %s", db_commands[i][0], err);
                ck_assert_msg(strstr(err, "s3cret") == NULL, "password shown: %s", err);
                ck_assert_str_eq(out, "");
        }
        snprintf(missing, sizeof(missing), "%s/none.sock", H.dir);
        ck_assert_int_eq(ctl_split("--socket", missing, "workers", NULL), 1);
        ck_assert_msg(strstr(err, "no chimerad is running") != NULL, "%s", err);
        ck_assert_int_eq(ctl_split("--socket", missing, "reload", NULL), 1);
        ck_assert_msg(strstr(err, "no chimerad is running") != NULL, "%s", err);

        /* Without the schema, the way out is named. */
        h_exec("DROP SCHEMA chimera CASCADE");
        ck_assert_int_eq(ctl_split("--database", H.url, "tasks", NULL), 1);
        ck_assert_msg(strstr(err, "'chimera-ctl migrate'") != NULL, "%s", err);
        ck_assert_int_eq(ctl_split("--database", H.url, "submit", "noop", NULL), 1);
        ck_assert_msg(strstr(err, "the chimera schema is missing") != NULL, "%s", err);
}
END_TEST

START_TEST(help_for_every_command_fits_80_columns)
{
        static const char *const names[] = {"status", "workers", "tasks",  "show",
                                            "submit", "cancel",  "retry",  "pause",
                                            "resume", "reload",  "migrate"};
        json_t *j;

        ck_assert_int_eq(ctl_split("help", NULL), 0);
        assert_fits_80_columns(out);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char want[64];
                snprintf(want, sizeof(want), "\n  %s", names[i]);
                ck_assert_msg(strstr(out, want) != NULL, "%s not listed: %s", names[i], out);
        }
        ck_assert_msg(strstr(out, "Exit status:") != NULL, "%s", out);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char want[64];
                ck_assert_int_eq(ctl_split("help", names[i], NULL), 0);
                assert_fits_80_columns(out);
                snprintf(want, sizeof(want), "usage: chimera-ctl [OPTIONS] %s", names[i]);
                ck_assert_msg(strstr(out, want) != NULL, "%s", out);
                ck_assert_msg(strstr(out, "Exit status: ") != NULL, "%s", out);
                ck_assert_int_eq(ctl_split(names[i], "--help", NULL), 0);
                ck_assert_msg(strstr(out, want) != NULL, "%s", out);
        }
        ck_assert_int_eq(ctl_split("help", "submit", NULL), 0);
        ck_assert_msg(strstr(out, "--run-at TIME") != NULL, "%s", out);
        ck_assert_int_eq(ctl_split("help", "bogus", NULL), 2);
        ck_assert_int_eq(ctl_split("--help", NULL), 0);
        ck_assert_msg(strstr(out, "usage: chimera-ctl") != NULL, "%s", out);
        ck_assert_int_eq(ctl_split(NULL, NULL), 2);

        ck_assert_int_eq(ctl_split("--version", NULL), 0);
        ck_assert_str_eq(out, "chimera-ctl 0.1.0\n");
        ck_assert_int_eq(ctl_split("--version", "--json", NULL), 0);
        j = parse_out();
        ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "0.1.0");
        json_decref(j);
}
END_TEST

Suite *commands_suite(void)
{
        Suite *s = suite_create("commands");
        TCase *tc = h_tcase("commands");

        tcase_add_test(tc, status_shows_live_supervisors_rates_and_the_oldest_queued_task);
        tcase_add_test(tc, status_without_a_supervisor_shows_the_database_and_exits_1);
        tcase_add_test(tc, status_with_the_database_unreachable_still_shows_the_live_part);
        tcase_add_test(tc, workers_lists_each_worker_with_its_task);
        tcase_add_test(tc, tasks_lists_the_newest_first_and_filters);
        tcase_add_test(tc, submit_queues_a_task_that_runs);
        tcase_add_test(tc, submit_refuses_bad_payloads_and_reports_the_databases_refusal);
        tcase_add_test(tc, cancel_of_a_queued_task_ends_it_at_once);
        tcase_add_test(tc, cancel_of_a_running_task_kills_its_worker_and_it_never_succeeds);
        tcase_add_test(tc, cancel_of_a_running_task_kills_its_agent_program);
        tcase_add_test(tc, cancel_of_a_task_running_elsewhere_names_its_host);
        tcase_add_test(tc, cancel_refuses_tasks_that_have_ended);
        tcase_add_test(tc, pause_stops_claims_from_a_queue_and_resume_restarts_them);
        tcase_add_test(tc, reload_applies_a_good_config_and_refuses_a_broken_one);
        tcase_add_test(tc, migrate_twice_creates_the_schema_then_finds_it_current);
        tcase_add_test(tc, migrate_from_version_2_keeps_the_events_under_one_key);
        tcase_add_test(tc, every_command_says_when_its_database_or_supervisor_is_missing);
        tcase_add_test(tc, help_for_every_command_fits_80_columns);
        suite_add_tcase(s, tc);
        return s;
}
