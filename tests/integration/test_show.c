/*
 * test_show.c - chimera-ctl show ID: a task's row and timeline, read from
 * PostgreSQL, for tasks run by a real chimerad, and the ways it can fail
 * (no such task, bad id, no database, no schema, where the database is
 * found).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define OUT_SIZE   65536
#define WAIT_MS    30000
#define MAX_EVENTS 64

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

/* Inserts a task and returns its id. */
static long long submit(const char *workflow, const char *payload)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) VALUES ('%s', '%s') RETURNING id",
                 workflow, payload);
        return h_int(sql);
}

/* Waits until task id has the status given. */
static bool wait_status(long long id, const char *status)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE id = %lld AND status = '%s'", id,
                 status);
        return h_wait_int(sql, 1, WAIT_MS);
}

/* Runs one task of workflow through a chimerad until it reaches status; returns its id. */
static long long run_task(const char *workflow, const char *payload, const char *status)
{
        long long id;

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        id = submit(workflow, payload);
        ck_assert_msg(wait_status(id, status), "task %lld never became %s", id, status);
        return id;
}

static void assert_fits_80_columns(const char *out)
{
        const char *line = out;

        while (*line != '\0') {
                size_t n = strcspn(line, "\n");
                ck_assert_msg(n <= 80, "line over 80 columns: %.*s", (int)n, line);
                line += n + (line[n] == '\n');
        }
}

struct event_row {
        int attempt;
        char kind[32];
};

/* Reads the timeline's rows ("21:54:06.249    1  claimed ...") out of the output. */
static int event_rows(const char *out, struct event_row *rows, int max)
{
        const char *line = out;
        int n = 0;

        while (*line != '\0' && n < max) {
                int h, m, s, ms;
                if (sscanf(line, "%2d:%2d:%2d.%3d %d %31s", &h, &m, &s, &ms, &rows[n].attempt,
                           rows[n].kind) == 6)
                        n++;
                line += strcspn(line, "\n");
                line += *line == '\n';
        }
        return n;
}

/* Whether the timeline has an event of kind at attempt. */
static bool has_event(const struct event_row *rows, int n, const char *kind, int attempt)
{
        for (int i = 0; i < n; i++) {
                if (rows[i].attempt == attempt && strcmp(rows[i].kind, kind) == 0)
                        return true;
        }
        return false;
}

static int count_events(const struct event_row *rows, int n, const char *kind)
{
        int count = 0;

        for (int i = 0; i < n; i++)
                count += strcmp(rows[i].kind, kind) == 0;
        return count;
}

START_TEST(show_prints_the_row_and_timeline_of_a_finished_task)
{
        static char out[OUT_SIZE];
        struct event_row rows[MAX_EVENTS];
        char id[32], head[64], sql[128], trace[64];
        long long task = run_task("twophase", "{\"ms\": 10}", "succeeded");
        int n;

        snprintf(id, sizeof(id), "%lld", task);
        snprintf(sql, sizeof(sql), "SELECT trace_id::text FROM chimera.tasks WHERE id = %lld",
                 task);
        h_text(sql, trace, sizeof(trace));

        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", id, NULL), 0);
        snprintf(head, sizeof(head), "task %lld  twophase  succeeded  attempt 1 of 3", task);
        ck_assert_msg(strncmp(out, head, strlen(head)) == 0, "%s", out);
        ck_assert_msg(strstr(out, trace) != NULL, "no trace id %s in:\n%s", trace, out);
        ck_assert_msg(strstr(out, "payload   {\"ms\": 10}") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "state     phase complete, 2 transitions") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "success -> second") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "success -> complete") != NULL, "%s", out);
        n = event_rows(out, rows, MAX_EVENTS);
        ck_assert_msg(has_event(rows, n, "claimed", 1), "%s", out);
        ck_assert_int_eq(count_events(rows, n, "phase_started"), 2);
        ck_assert_int_eq(count_events(rows, n, "phase_finished"), 2);
        ck_assert_msg(has_event(rows, n, "succeeded", 1), "%s", out);
        ck_assert_msg(strstr(out, " first ") != NULL && strstr(out, " second ") != NULL, "%s", out);
        assert_fits_80_columns(out);
}
END_TEST

START_TEST(show_json_has_the_row_and_every_event)
{
        static char out[OUT_SIZE];
        char id[32], sql[128];
        long long task = run_task("twophase", "{\"ms\": 10}", "succeeded");
        json_error_t jerr;
        json_t *j, *t, *events;

        snprintf(id, sizeof(id), "%lld", task);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", id, "--json", NULL), 0);
        j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
        t = json_object_get(j, "task");
        events = json_object_get(j, "events");
        ck_assert_int_eq(json_integer_value(json_object_get(t, "id")), task);
        ck_assert_str_eq(json_string_value(json_object_get(t, "status")), "succeeded");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(t, "payload"), "ms")),
                         10);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM chimera.task_events WHERE task_id = %lld",
                 task);
        ck_assert_int_eq((long long)json_array_size(events), h_int(sql));
        ck_assert_int_ge(json_array_size(events), 6);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(events, 0), "kind")),
                         "claimed");
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(events, json_array_size(events) - 1), "kind")),
                         "succeeded");
        json_decref(j);
}
END_TEST

START_TEST(show_of_a_retried_task_shows_each_attempt)
{
        static char out[OUT_SIZE];
        struct event_row rows[MAX_EVENTS];
        long long task = run_task("flaky", "{}", "dead");
        char id[32];
        int n;

        snprintf(id, sizeof(id), "%lld", task);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", id, NULL), 0);
        ck_assert_msg(strstr(out, "dead  attempt 3 of 3") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "error     ") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "try again later (retry in ") != NULL, "%s", out);
        n = event_rows(out, rows, MAX_EVENTS);
        for (int attempt = 1; attempt <= 3; attempt++)
                ck_assert_msg(has_event(rows, n, "claimed", attempt), "no claim %d:\n%s", attempt,
                              out);
        ck_assert_msg(has_event(rows, n, "retried", 1), "%s", out);
        ck_assert_msg(has_event(rows, n, "retried", 2), "%s", out);
        ck_assert_int_eq(count_events(rows, n, "retried"), 2);
        ck_assert_msg(has_event(rows, n, "dead", 3), "%s", out);
        assert_fits_80_columns(out);
}
END_TEST

START_TEST(show_of_a_missing_task_exits_1)
{
        char out[4096];

        h_write_config(1, NULL);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", "424242", NULL), 1);
        ck_assert_msg(strstr(out, "chimera-ctl: no task 424242") != NULL, "%s", out);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", "424242", "--json", NULL),
                         1);
        ck_assert_msg(strstr(out, "no task 424242") != NULL, "%s", out);
}
END_TEST

START_TEST(show_with_a_bad_id_exits_2)
{
        static const char *const bad[] = {"abc", "0",  "12x", "",
                                          " 7",  "+7", "1.5", "99999999999999999999"};
        char out[8192];

        h_write_config(1, NULL);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(ctl(out, sizeof(out), "-c", H.config, "show", bad[i], NULL) == 2,
                              "show '%s': %s", bad[i], out);
                ck_assert_msg(strstr(out, "positive integer") != NULL, "%s", out);
        }
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", "-5", NULL), 2);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", NULL), 2);
        ck_assert_msg(strstr(out, "show takes one task id") != NULL, "%s", out);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", "1", "2", NULL), 2);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", "1", "--database", NULL), 2);
}
END_TEST

START_TEST(show_without_a_database_fails_clearly)
{
        char out[4096];

        ck_assert_int_eq(ctl(out, sizeof(out), "--database",
                             "postgresql://postgres:s3cret@127.0.0.1:1/x", "show", "1", NULL),
                         1);
        ck_assert_msg(strstr(out, "chimera-ctl: cannot connect to the database: ") != NULL, "%s",
                      out);
        ck_assert_msg(strstr(out, "s3cret") == NULL, "password shown: %s", out);
}
END_TEST

START_TEST(show_without_the_schema_says_to_migrate)
{
        char out[4096];

        h_exec("DROP SCHEMA chimera CASCADE");
        ck_assert_int_eq(ctl(out, sizeof(out), "--database", H.url, "show", "1", NULL), 1);
        ck_assert_msg(strstr(out, "the chimera schema is missing") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "run 'chimerad --migrate'") != NULL, "%s", out);
}
END_TEST

START_TEST(show_with_database_needs_no_config_file)
{
        static char out[OUT_SIZE];
        char id[32], arg[600];
        const char *missing = "/nonexistent/chimerad.json";

        snprintf(id, sizeof(id), "%lld", submit("noop", "{\"n\": 1}"));
        ck_assert_int_eq(
            ctl(out, sizeof(out), "-c", missing, "--database", H.url, "show", id, NULL), 0);
        ck_assert_msg(strstr(out, "noop  queued  attempt 0 of 3") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "run at ") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "no events yet") != NULL, "%s", out);
        assert_fits_80_columns(out);

        snprintf(arg, sizeof(arg), "--database=%s", H.url);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", missing, arg, "show", id, NULL), 0);
        ck_assert_msg(strstr(out, "queued") != NULL, "%s", out);

        /* Without --database the config named with -c is needed. */
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", missing, "show", id, NULL), 1);
        ck_assert_msg(strstr(out, missing) != NULL, "%s", out);
}
END_TEST

START_TEST(show_takes_the_database_from_the_config_then_the_environment)
{
        char out[8192], config[400], id[32];
        FILE *f;

        snprintf(id, sizeof(id), "%lld", submit("noop", "{}"));
        /* The config's database wins over CHIMERA_DATABASE_URL. */
        h_write_config(1, NULL);
        setenv("CHIMERA_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x", 1);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", H.config, "show", id, NULL), 0);

        /* A config without one leaves it to CHIMERA_DATABASE_URL. */
        snprintf(config, sizeof(config), "%s/nodb.json", H.dir);
        f = fopen(config, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"control_socket\": \"%s\"}\n", H.socket);
        fclose(f);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", config, "show", id, NULL), 1);
        ck_assert_msg(strstr(out, "cannot connect to the database") != NULL, "%s", out);
        setenv("CHIMERA_DATABASE_URL", H.url, 1);
        ck_assert_int_eq(ctl(out, sizeof(out), "-c", config, "show", id, NULL), 0);
        ck_assert_msg(strstr(out, "queued") != NULL, "%s", out);
        unsetenv("CHIMERA_DATABASE_URL");
}
END_TEST

Suite *show_suite(void)
{
        Suite *s = suite_create("show");
        TCase *tc = h_tcase("show");

        tcase_add_test(tc, show_prints_the_row_and_timeline_of_a_finished_task);
        tcase_add_test(tc, show_json_has_the_row_and_every_event);
        tcase_add_test(tc, show_of_a_retried_task_shows_each_attempt);
        tcase_add_test(tc, show_of_a_missing_task_exits_1);
        tcase_add_test(tc, show_with_a_bad_id_exits_2);
        tcase_add_test(tc, show_without_a_database_fails_clearly);
        tcase_add_test(tc, show_without_the_schema_says_to_migrate);
        tcase_add_test(tc, show_with_database_needs_no_config_file);
        tcase_add_test(tc, show_takes_the_database_from_the_config_then_the_environment);
        suite_add_tcase(s, tc);
        return s;
}
