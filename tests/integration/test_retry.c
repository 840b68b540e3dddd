/*
 * test_retry.c - chimera-ctl retry ID: a dead task goes back in the queue
 * and resumes at its checkpointed phase, a failed one starts over, and
 * every other task is left exactly as it was.  The preconditions are rows
 * written with SQL where that is simpler than making chimerad produce
 * them, and the outcome is checked by running a real chimerad.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define OUT_SIZE 65536
#define WAIT_MS  30000

/* Runs chimera-ctl with the arguments given (NULL-terminated); returns its exit status. */
static int ctl(char *out, size_t outsz, ...)
{
        char *argv[16];
        int argc = 0;
        va_list ap;

        argv[argc++] = (char *)h_bin("chimera-ctl");
        va_start(ap, outsz);
        while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
                argc++;
        va_end(ap);
        argv[argc] = NULL;
        return h_run(argv, out, outsz);
}

/* chimera-ctl -c H.config retry ID [--json]; returns its exit status. */
static int retry(long long task, bool json, char *out, size_t outsz)
{
        char id[32];

        snprintf(id, sizeof(id), "%lld", task);
        return ctl(out, outsz, "-c", H.config, "retry", id, json ? "--json" : NULL, NULL);
}

/*
 * Inserts a task as runs that ended with status would leave it: attempts
 * used, a checkpoint (JSON, or NULL), an error (or NULL), started and
 * finished.  Returns its id.
 */
static long long insert_task(const char *workflow, const char *payload, const char *status,
                             int attempts, const char *state, const char *error)
{
        char sql[1024];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload, status, attempts, max_attempts,"
                 " state, last_error, started_at, finished_at)"
                 " VALUES ('%s', '%s', '%s', %d, 3, %s%s%s, %s%s%s, now(), now()) RETURNING id",
                 workflow, payload, status, attempts, state ? "'" : "", state ? state : "NULL",
                 state ? "'" : "", error ? "'" : "", error ? error : "NULL", error ? "'" : "");
        return h_int(sql);
}

static long long submit(const char *workflow, const char *payload)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) VALUES ('%s', '%s') RETURNING id",
                 workflow, payload);
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

static long long task_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void task_text(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The integer a query gives; fmt and what follows make the query (a task's id in it). */
static long long task_int(const char *fmt, ...)
{
        char sql[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        return h_int(sql);
}

/* The text a query gives ("" for NULL), as task_int() does. */
static void task_text(char *buf, size_t size, const char *fmt, ...)
{
        char sql[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        h_text(sql, buf, size);
}

/* The whole row, and how many events the task has: to prove nothing changed. */
static void snapshot(long long id, char *buf, size_t size)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "SELECT t::text || ' events ' || (SELECT count(*) FROM chimera.task_events"
                 " WHERE task_id = t.id) FROM chimera.tasks t WHERE t.id = %lld",
                 id);
        h_text(sql, buf, size);
}

START_TEST(retry_puts_a_dead_task_back_and_it_resumes_at_its_phase)
{
        char out[4096], want[128], text[256];
        long long id;

        h_write_config(1, NULL);
        id = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                         "{\"phase\": \"second\", \"transitions\": 1,"
                         " \"results\": {\"first\": {\"from\": \"before\"}}}",
                         "phase second: try again later");

        ck_assert_int_eq(retry(id, false, out, sizeof(out)), 0);
        snprintf(want, sizeof(want),
                 "task %lld queued again (was dead); it resumes at phase second\n", id);
        ck_assert_str_eq(out, want);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                  " AND status = 'queued' AND attempts = 0 AND finished_at IS NULL"
                                  " AND lease_owner IS NULL AND run_at <= now()"
                                  " AND state->>'phase' = 'second'",
                                  id),
                         1);
        /* The error of the last attempt stays until the task ends again. */
        task_text(text, sizeof(text), "SELECT last_error FROM chimera.tasks WHERE id = %lld", id);
        ck_assert_str_eq(text, "phase second: try again later");

        h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status(id, "succeeded"), "task %lld did not succeed", id);
        ck_assert_int_eq(task_int("SELECT attempts FROM chimera.tasks WHERE id = %lld", id), 1);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                  " AND kind = 'phase_started' AND phase = 'first'",
                                  id),
                         0);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                  " AND kind = 'phase_started' AND phase = 'second'",
                                  id),
                         1);
        /* The first phase's result, from before the retry, is still there. */
        task_text(text, sizeof(text),
                  "SELECT state->'results'->'first'->>'from' FROM chimera.tasks WHERE id = %lld",
                  id);
        ck_assert_str_eq(text, "before");
        task_text(text, sizeof(text),
                  "SELECT coalesce(last_error, 'none') FROM chimera.tasks WHERE id = %lld", id);
        ck_assert_str_eq(text, "none");
}
END_TEST

START_TEST(retry_restarts_a_failed_task_from_the_beginning)
{
        char out[4096], want[128], text[256], sql[256];
        long long id;

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        id = submit("fail", "{}");
        ck_assert_msg(wait_status(id, "failed"), "task %lld did not fail", id);
        task_text(text, sizeof(text), "SELECT state->>'phase' FROM chimera.tasks WHERE id = %lld",
                  id);
        ck_assert_str_eq(text, "failed");

        /* The operator fixes what made it fail, then retries it. */
        snprintf(sql, sizeof(sql), "UPDATE chimera.tasks SET workflow = 'noop' WHERE id = %lld",
                 id);
        h_exec(sql);
        ck_assert_int_eq(retry(id, false, out, sizeof(out)), 0);
        snprintf(want, sizeof(want), "task %lld queued again (was failed); it starts over\n", id);
        ck_assert_str_eq(out, want);

        ck_assert_msg(wait_status(id, "succeeded"), "task %lld did not succeed", id);
        ck_assert_int_eq(task_int("SELECT attempts FROM chimera.tasks WHERE id = %lld", id), 1);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                  " AND state->'results' ? 'run'"
                                  " AND (state->>'transitions')::int = 1"
                                  " AND state->>'phase' = 'complete' AND finished_at IS NOT NULL"
                                  " AND last_error IS NULL",
                                  id),
                         1);
}
END_TEST

/*
 * A failed task whose checkpoint names a real phase (it ran out of
 * max_transitions there) starts over too: resumed, it would fail again at
 * once without running anything.
 */
START_TEST(retry_restarts_a_task_that_failed_past_max_transitions)
{
        char out[4096];
        long long id;

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        id = submit("loop", "{}");
        ck_assert_msg(wait_status(id, "failed"), "task %lld did not fail", id);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                  " AND state->>'phase' <> 'failed'"
                                  " AND last_error LIKE '%%max_transitions%%'",
                                  id),
                         1);

        ck_assert_int_eq(retry(id, false, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "(was failed); it starts over") != NULL, "%s", out);
        ck_assert_msg(wait_status(id, "failed"), "task %lld did not fail again", id);
        /* The new round ran the loop again from phase a: a, b, a. */
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events e WHERE task_id = %lld"
                                  " AND kind = 'phase_started' AND id > (SELECT id FROM"
                                  " chimera.task_events WHERE task_id = e.task_id"
                                  " AND kind = 'retried')",
                                  id),
                         3);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld"
                                  " AND attempts = 1 AND (state->>'transitions')::int = 3",
                                  id),
                         1);
}
END_TEST

/* A checkpoint at a terminal phase (a lease lost just after the last phase) cannot resume. */
START_TEST(retry_of_a_dead_task_checkpointed_at_a_terminal_phase_starts_over)
{
        char out[4096];
        long long id;

        h_write_config(1, NULL);
        id = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                         "{\"phase\": \"complete\", \"transitions\": 2,"
                         " \"results\": {\"first\": {}, \"second\": {}}}",
                         "lease expired");
        ck_assert_int_eq(retry(id, false, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "(was dead); it starts over") != NULL, "%s", out);
        ck_assert_int_eq(
            task_int("SELECT count(*) FROM chimera.tasks WHERE id = %lld AND state IS NULL", id),
            1);
        h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status(id, "succeeded"), "task %lld did not succeed", id);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                  " AND kind = 'phase_started'",
                                  id),
                         2);
}
END_TEST

START_TEST(retry_refuses_running_queued_succeeded_and_cancelled_tasks)
{
        static const char *const statuses[] = {"running", "queued", "succeeded", "cancelled"};
        char out[4096], want[128], before[4096], after[4096];

        h_write_config(1, NULL);
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
                long long id = insert_task("twophase", "{\"ms\": 10}", statuses[i], 1,
                                           "{\"phase\": \"second\", \"transitions\": 1}", NULL);
                snapshot(id, before, sizeof(before));
                ck_assert_msg(retry(id, false, out, sizeof(out)) == 1, "%s: %s", statuses[i], out);
                snprintf(want, sizeof(want),
                         "chimera-ctl: task %lld is %s: only dead or failed tasks can be "
                         "retried\n",
                         id, statuses[i]);
                ck_assert_str_eq(out, want);
                ck_assert_int_eq(retry(id, true, out, sizeof(out)), 1);
                ck_assert_str_eq(out, want);
                snapshot(id, after, sizeof(after));
                ck_assert_str_eq(after, before);
        }
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events"), 0);
}
END_TEST

START_TEST(retry_of_a_missing_task_exits_1)
{
        char out[4096];

        h_write_config(1, NULL);
        ck_assert_int_eq(retry(424242, false, out, sizeof(out)), 1);
        ck_assert_str_eq(out, "chimera-ctl: no task 424242\n");
        ck_assert_int_eq(retry(424242, true, out, sizeof(out)), 1);
        ck_assert_str_eq(out, "chimera-ctl: no task 424242\n");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events"), 0);
}
END_TEST

START_TEST(retry_with_a_bad_id_exits_2)
{
        static const char *const bad[] = {"abc", "0",  "12x", "",
                                          " 7",  "+7", "1.5", "99999999999999999999"};
        char out[8192];

        h_write_config(1, NULL);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(ctl(out, sizeof(out), "-c", H.config, "retry", bad[i], NULL) == 2,
                              "retry '%s': %s", bad[i], out);
                ck_assert_msg(strstr(out, "retry: a task id is a positive integer") != NULL, "%s",
                              out);
                ck_assert_msg(strstr(out, "usage: chimera-ctl") != NULL, "%s", out);
        }
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "retry", "-5", NULL), 2);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "retry", NULL), 2);
        ck_assert_msg(strstr(out, "retry takes one task id") != NULL, "%s", out);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "retry", "1", "2", NULL), 2);
        ck_assert_msg(strstr(out, "retry takes one task id") != NULL, "%s", out);
}
END_TEST

START_TEST(retry_json_output)
{
        char out[4096];
        long long dead, failed;
        json_error_t jerr;
        json_t *j;

        h_write_config(1, NULL);
        dead = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                           "{\"phase\": \"second\", \"transitions\": 1}", "boom");
        failed = insert_task("fail", "{}", "failed", 1, "{\"phase\": \"failed\"}", "no");

        ck_assert_int_eq(retry(dead, true, out, sizeof(out)), 0);
        j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), dead);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "queued");
        ck_assert_str_eq(json_string_value(json_object_get(j, "previous_status")), "dead");
        ck_assert_str_eq(json_string_value(json_object_get(j, "resume_phase")), "second");
        json_decref(j);

        ck_assert_int_eq(retry(failed, true, out, sizeof(out)), 0);
        j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), failed);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "queued");
        ck_assert_str_eq(json_string_value(json_object_get(j, "previous_status")), "failed");
        ck_assert_msg(json_is_null(json_object_get(j, "resume_phase")), "%s", out);
        json_decref(j);
}
END_TEST

START_TEST(retry_records_a_retried_event_in_the_timeline)
{
        static char out[OUT_SIZE];
        char id[32], text[256];
        long long task;

        h_write_config(1, NULL);
        task = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                           "{\"phase\": \"second\", \"transitions\": 1}", "boom");
        ck_assert_int_eq(retry(task, false, out, sizeof(out)), 0);

        ck_assert_int_eq(
            task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld", task), 1);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                  " AND kind = 'retried' AND attempt = 0 AND phase IS NULL"
                                  " AND detail->>'by' = 'chimera-ctl'"
                                  " AND detail->>'previous_status' = 'dead'"
                                  " AND (detail->>'previous_attempts')::int = 3"
                                  " AND detail->>'resume_phase' = 'second'"
                                  " AND detail->>'role' = current_user",
                                  task),
                         1);

        /* show puts it in the timeline, saying who and what it was. */
        snprintf(id, sizeof(id), "%lld", task);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", id, NULL), 0);
        ck_assert_msg(strstr(out, "queued  attempt 0 of 3") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "retried") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "by chimera-ctl (was dead)") != NULL, "%s", out);

        /* A second retry of the now queued task adds nothing. */
        ck_assert_int_eq(retry(task, false, out, sizeof(out)), 1);
        task_text(text, sizeof(text),
                  "SELECT count(*)::text FROM chimera.task_events WHERE task_id = %lld", task);
        ck_assert_str_eq(text, "1");
}
END_TEST

/* Starts chimera-ctl retry ID in the background, its output to path; returns its pid. */
static pid_t start_retry(long long task, const char *path)
{
        char id[32];
        pid_t pid;

        snprintf(id, sizeof(id), "%lld", task);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execl(h_bin("chimera-ctl"), "chimera-ctl", "-c", H.config, "retry", id,
                      (char *)NULL);
                _exit(127);
        }
        return pid;
}

/*
 * Two operators retry the same task at once, while a third transaction
 * holds its row: once it commits, exactly one of them queues the task, and
 * the other is told it is queued already.
 */
START_TEST(retry_acts_once_when_two_operators_race)
{
        char path[2][400], out[2][4096], sql[256];
        int status[2], ok = 0, refused = 0;
        pid_t pid[2];
        PGconn *holder;
        PGresult *r;
        long long task;

        h_write_config(1, NULL);
        task = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                           "{\"phase\": \"second\", \"transitions\": 1}", "boom");
        holder = PQconnectdb(H.url);
        ck_assert_msg(PQstatus(holder) == CONNECTION_OK, "%s", PQerrorMessage(holder));
        snprintf(sql, sizeof(sql), "BEGIN; SELECT 1 FROM chimera.tasks WHERE id = %lld FOR UPDATE",
                 task);
        r = PQexec(holder, sql);
        ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);

        for (int i = 0; i < 2; i++) {
                snprintf(path[i], sizeof(path[i]), "%s/retry%d.out", H.dir, i);
                pid[i] = start_retry(task, path[i]);
        }
        /* Both wait for the row's lock. */
        ck_assert(h_wait_int("SELECT count(*) FROM pg_stat_activity"
                             " WHERE application_name = 'chimera-ctl' AND wait_event_type = 'Lock'",
                             2, WAIT_MS));
        r = PQexec(holder, "COMMIT");
        ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(holder);

        for (int i = 0; i < 2; i++) {
                status[i] = h_wait_exit(pid[i], WAIT_MS);
                ck_assert_msg(status[i] != -1 && WIFEXITED(status[i]), "chimera-ctl %d hung", i);
                h_read_file(path[i], out[i], sizeof(out[i]));
                if (WEXITSTATUS(status[i]) == 0) {
                        ok++;
                        ck_assert_msg(strstr(out[i], "queued again (was dead)") != NULL, "%s",
                                      out[i]);
                } else {
                        refused++;
                        ck_assert_int_eq(WEXITSTATUS(status[i]), 1);
                        ck_assert_msg(strstr(out[i], "is queued: only dead or failed") != NULL,
                                      "%s", out[i]);
                }
        }
        ck_assert_int_eq(ok, 1);
        ck_assert_int_eq(refused, 1);
        ck_assert_int_eq(task_int("SELECT count(*) FROM chimera.task_events WHERE task_id = %lld"
                                  " AND kind = 'retried'",
                                  task),
                         1);
}
END_TEST

/*
 * An idle chimerad that polls once an hour still runs a retried task at
 * once: retry sends the NOTIFY that a new task's insert sends.
 */
START_TEST(retry_wakes_an_idle_supervisor)
{
        static const char fast[] = "\"poll_interval\": \"200ms\"";
        static char config[8192], slow[8192];
        char out[4096], *p;
        long long warmup, task;

        h_write_config(1, NULL);
        h_read_file(H.config, config, sizeof(config));
        p = strstr(config, fast);
        ck_assert_ptr_nonnull(p);
        snprintf(slow, sizeof(slow), "%.*s\"poll_interval\": \"1h\"%s", (int)(p - config), config,
                 p + strlen(fast));
        h_write_config_text(slow);
        h_start_chimerad(H.config, "chimerad");
        warmup = submit("noop", "{}");
        ck_assert_msg(wait_status(warmup, "succeeded"), "chimerad did not start");

        /* Its insert wakes chimerad too, but the task is dead: nothing to claim. */
        task = insert_task("twophase", "{\"ms\": 10}", "dead", 3,
                           "{\"phase\": \"second\", \"transitions\": 1}", "boom");
        ck_assert_int_eq(retry(task, false, out, sizeof(out)), 0);
        ck_assert_msg(wait_status(task, "succeeded"), "retried task %lld was not run", task);
}
END_TEST

START_TEST(retry_without_a_database_fails_clearly)
{
        char out[4096];

        ck_assert_int_eq(ctl(out, sizeof(out), "--database",
                             "postgresql://postgres:s3cret@127.0.0.1:1/x", "retry", "1", NULL),
                         1);
        ck_assert_msg(strstr(out, "chimera-ctl: cannot connect to the database: ") != NULL, "%s",
                      out);
        ck_assert_msg(strstr(out, "s3cret") == NULL, "password shown: %s", out);
}
END_TEST

START_TEST(retry_without_the_schema_says_to_migrate)
{
        char out[4096];

        h_exec("DROP SCHEMA chimera CASCADE");
        ck_assert_int_eq(ctl(out, sizeof(out), "--database", H.url, "retry", "1", NULL), 1);
        ck_assert_msg(strstr(out, "the chimera schema is missing") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "run 'chimerad --migrate'") != NULL, "%s", out);
}
END_TEST

Suite *retry_suite(void)
{
        Suite *s = suite_create("retry");
        TCase *tc = h_tcase("retry");

        tcase_add_test(tc, retry_puts_a_dead_task_back_and_it_resumes_at_its_phase);
        tcase_add_test(tc, retry_restarts_a_failed_task_from_the_beginning);
        tcase_add_test(tc, retry_restarts_a_task_that_failed_past_max_transitions);
        tcase_add_test(tc, retry_of_a_dead_task_checkpointed_at_a_terminal_phase_starts_over);
        tcase_add_test(tc, retry_refuses_running_queued_succeeded_and_cancelled_tasks);
        tcase_add_test(tc, retry_of_a_missing_task_exits_1);
        tcase_add_test(tc, retry_with_a_bad_id_exits_2);
        tcase_add_test(tc, retry_json_output);
        tcase_add_test(tc, retry_records_a_retried_event_in_the_timeline);
        tcase_add_test(tc, retry_acts_once_when_two_operators_race);
        tcase_add_test(tc, retry_wakes_an_idle_supervisor);
        tcase_add_test(tc, retry_without_a_database_fails_clearly);
        tcase_add_test(tc, retry_without_the_schema_says_to_migrate);
        suite_add_tcase(s, tc);
        return s;
}
