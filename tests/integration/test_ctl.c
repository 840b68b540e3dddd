/*
 * test_ctl.c - chimera-ctl against a running chimerad, and without one.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

static int ctl(const char *a1, const char *a2, char *out, size_t outsz)
{
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, (char *)a1, (char *)a2, NULL};
        return h_run(argv, out, outsz);
}

START_TEST(status_shows_the_pool_and_task_counts)
{
        char out[16384];
        json_t *j;
        json_error_t jerr;

        h_write_config(3, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 5)");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '{\"ms\": 30000}')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 5, 30000));
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'", 1, 30000));

        ck_assert_int_eq(ctl("status", NULL, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "pool: 3 workers, 1 busy, 2 idle") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "succeeded 5") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "running 1") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "sleep") != NULL, "%s", out);
        for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
                ck_assert_msg(strlen(line) <= 80, "line over 80 columns: %s", line);

        ck_assert_int_eq(ctl("status", "--json", out, sizeof(out)), 0);
        j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "not JSON: %s", out);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "size")),
                         3);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "busy")),
                         1);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(j, "tasks"), "succeeded")), 5);
        ck_assert_int_eq(json_array_size(json_object_get(json_object_get(j, "pool"), "workers")),
                         3);
        json_decref(j);
}
END_TEST

START_TEST(status_without_a_supervisor_fails_clearly)
{
        char out[4096];

        h_write_config(1, NULL);
        ck_assert_int_eq(ctl("status", NULL, out, sizeof(out)), 1);
        ck_assert_msg(strstr(out, "no chimerad is running") != NULL, "%s", out);
        ck_assert_msg(strstr(out, H.socket) != NULL, "%s", out);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
        char out[4096];

        h_write_config(1, NULL);
        ck_assert_int_eq(ctl("frobnicate", NULL, out, sizeof(out)), 2);
        ck_assert_int_eq(ctl("status", "--bogus", out, sizeof(out)), 2);
}
END_TEST

Suite *ctl_suite(void)
{
        Suite *s = suite_create("ctl");
        TCase *tc = h_tcase("ctl");

        tcase_add_test(tc, status_shows_the_pool_and_task_counts);
        tcase_add_test(tc, status_without_a_supervisor_fails_clearly);
        tcase_add_test(tc, usage_errors_exit_2);
        suite_add_tcase(s, tc);
        return s;
}
