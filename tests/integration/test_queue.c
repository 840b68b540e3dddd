/*
 * test_queue.c - the schema as users meet it: migrations, plain INSERTs,
 * what the database refuses, and the NOTIFY an INSERT sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

static PGresult *try_exec(const char *sql)
{
        return PQexec(H.conn, sql);
}

START_TEST(plain_insert_gets_the_documented_defaults)
{
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('noop', '{}')");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'queued' AND "
                               "queue = 'default' AND priority = 3 AND attempts = 0 AND "
                               "max_attempts = 3 AND trace_id IS NOT NULL AND run_at <= now()"),
                         1);
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE payload = '{}'"), 2);
}
END_TEST

START_TEST(payload_that_is_not_an_object_is_refused_clearly)
{
        const char *bad[] = {"'[1,2]'", "'\"text\"'", "'42'", "'null'"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char sql[200];
                snprintf(sql, sizeof(sql),
                         "INSERT INTO chimera.tasks (workflow, payload) VALUES ('noop', %s)",
                         bad[i]);
                PGresult *r = try_exec(sql);
                ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
                ck_assert_msg(strstr(PQresultErrorMessage(r), "payload must be a JSON object"),
                              "%s", PQresultErrorMessage(r));
                PQclear(r);
        }
}
END_TEST

START_TEST(priority_outside_1_to_5_is_refused_clearly)
{
        const char *bad[] = {"0", "6", "-1", "100"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char sql[200];
                snprintf(sql, sizeof(sql),
                         "INSERT INTO chimera.tasks (workflow, priority) VALUES ('noop', %s)",
                         bad[i]);
                PGresult *r = try_exec(sql);
                ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
                ck_assert_msg(strstr(PQresultErrorMessage(r), "priority must be between 1 and 5"),
                              "%s", PQresultErrorMessage(r));
                PQclear(r);
        }
        h_exec("INSERT INTO chimera.tasks (workflow, priority) VALUES ('noop', 1), ('noop', 5)");
}
END_TEST

START_TEST(migrate_twice_and_concurrently_is_safe)
{
        char out[4096];
        char *argv[] = {(char *)h_bin("chimerad"), "-c", H.config, "--migrate", NULL};
        pid_t pids[3];
        int status;

        /* Fresh, empty database: three hosts migrating at once. */
        h_exec("DROP SCHEMA chimera CASCADE");
        h_write_config(1, NULL);
        for (int i = 0; i < 3; i++) {
                pids[i] = fork();
                ck_assert_int_ge(pids[i], 0);
                if (pids[i] == 0) {
                        freopen("/dev/null", "w", stdout);
                        execv(argv[0], argv);
                        _exit(127);
                }
        }
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                              "concurrent migrate %d failed", i);
        }
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(strstr(out, "up to date"));
        /* Each migration in sql/ applied once: 001_init, 002_retention, 003_event_key. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.schema_version"), 3);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('noop', '{}')");
}
END_TEST

START_TEST(insert_notifies_listening_supervisors)
{
        PGnotify *n;
        int got = 0;

        h_exec("LISTEN chimera_tasks");
        h_exec("INSERT INTO chimera.tasks (workflow, queue) "
               "SELECT 'noop', 'q' || (i % 2) FROM generate_series(1, 100) i");
        ck_assert_int_eq(PQconsumeInput(H.conn), 1);
        while ((n = PQnotifies(H.conn)) != NULL) {
                ck_assert_str_eq(n->relname, "chimera_tasks");
                got++;
                PQfreemem(n);
        }
        /* One notification per statement and queue, not one per row. */
        ck_assert_int_eq(got, 2);
}
END_TEST

START_TEST(chimerad_without_schema_says_to_migrate)
{
        char log[8192];
        pid_t pid;
        int st;

        h_exec("DROP SCHEMA chimera CASCADE");
        h_write_config(2, NULL);
        pid = h_start_chimerad(H.config, "chimerad");
        st = h_wait_exit(pid, 30000);
        ck_assert_msg(st != -1, "chimerad kept running without a schema");
        ck_assert_int_eq(WEXITSTATUS(st), 1);
        snprintf(log, sizeof(log), "%s/chimerad.log", H.dir);
        h_read_file(log, log, sizeof(log));
        ck_assert_msg(strstr(log, "chimerad --migrate") != NULL, "log: %s", log);
}
END_TEST

Suite *schema_suite(void)
{
        Suite *s = suite_create("schema");
        TCase *tc = h_tcase("schema");

        tcase_add_test(tc, plain_insert_gets_the_documented_defaults);
        tcase_add_test(tc, payload_that_is_not_an_object_is_refused_clearly);
        tcase_add_test(tc, priority_outside_1_to_5_is_refused_clearly);
        tcase_add_test(tc, migrate_twice_and_concurrently_is_safe);
        tcase_add_test(tc, insert_notifies_listening_supervisors);
        tcase_add_test(tc, chimerad_without_schema_says_to_migrate);
        suite_add_tcase(s, tc);
        return s;
}
