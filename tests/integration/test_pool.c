/*
 * test_pool.c - chimerad with its worker pool against a real PostgreSQL:
 * draining, parallelism, several supervisors, signals and dying workers.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define ALL_DONE(n) "SELECT count(*) FROM chimera.tasks WHERE status NOT IN ('queued', 'running')"

/* Waits until chimerad has its n workers (so that ps shows the pool). */
static void wait_workers(pid_t sup, int n)
{
        pid_t pids[64];

        for (int i = 0; i < 1500; i++) {
                if (h_children(sup, "chimera-worker", pids, 64) == n)
                        return;
                usleep(20000);
        }
        ck_abort_msg("chimerad %d never had %d workers", (int)sup, n);
}

START_TEST(noop_tasks_all_succeed_with_one_claim_each_and_no_more_running_than_workers)
{
        pid_t sup, pids[64];
        long long running_max = 0;

        h_write_config(4, NULL);
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 2000)");
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 4);
        for (int i = 0; i < 3000; i++) {
                long long running =
                    h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'");
                if (running > running_max)
                        running_max = running;
                if (h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'") == 2000)
                        break;
                usleep(10000);
        }
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'"),
                         2000);
        ck_assert_int_le(running_max, 4);
        ck_assert_int_eq(h_children(sup, "chimera-worker", pids, 64), 4);
        /* Each task claimed once, one attempt, and its outcome recorded. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed'"),
                         2000);
        ck_assert_int_eq(h_int("SELECT count(DISTINCT task_id) FROM chimera.task_events "
                               "WHERE kind = 'claimed'"),
                         2000);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE attempts <> 1 OR "
                               "finished_at IS NULL OR result IS NULL OR lease_owner IS NOT NULL"),
                         0);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'succeeded'"),
                         2000);
}
END_TEST

START_TEST(sleep_tasks_run_in_parallel_on_every_worker)
{
        pid_t sup;

        h_write_config(8, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 8);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 200}' FROM generate_series(1, 40)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 40, 60000));
        /* The most tasks whose runs overlapped: all 8 workers were used at once,
         * and never more than 8 (a claim happens only after the outcome that
         * freed its worker is written, on the same connection). */
        ck_assert_int_eq(
            h_int("SELECT max(n) FROM (SELECT (SELECT count(*) FROM chimera.tasks b "
                  "WHERE b.started_at <= a.started_at AND b.finished_at > a.started_at) n "
                  "FROM chimera.tasks a) x"),
            8);
}
END_TEST

START_TEST(two_supervisors_drain_one_queue_without_claiming_a_task_twice)
{
        char cfg2[400], sock2[400], text[8192];
        FILE *in, *out;
        size_t n;

        h_write_config(4, NULL);
        /* The second supervisor: same database, its own control socket. */
        snprintf(cfg2, sizeof(cfg2), "%s/second.json", H.dir);
        snprintf(sock2, sizeof(sock2), "%s/ctl2.sock", H.dir);
        in = fopen(H.config, "r");
        n = fread(text, 1, sizeof(text) - 1, in);
        text[n] = '\0';
        fclose(in);
        char *at = strstr(text, H.socket);
        ck_assert_ptr_nonnull(at);
        out = fopen(cfg2, "w");
        fprintf(out, "%.*s%s%s", (int)(at - text), text, sock2, at + strlen(H.socket));
        fclose(out);

        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 5000)");
        h_start_chimerad(H.config, "first");
        h_start_chimerad(cfg2, "second");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 5000,
                             120000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed'"),
                         5000);
        ck_assert_int_eq(h_int("SELECT count(DISTINCT task_id) FROM chimera.task_events "
                               "WHERE kind = 'claimed'"),
                         5000);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE attempts <> 1"), 0);
        ck_assert_int_eq(h_int("SELECT count(DISTINCT detail->>'supervisor') FROM "
                               "chimera.task_events WHERE kind = 'claimed'"),
                         2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.supervisors"), 2);
}
END_TEST

START_TEST(sigterm_lets_running_tasks_finish_then_exits_zero)
{
        pid_t sup, pids[8];
        int st;

        h_write_config(4, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 4);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 1500}' FROM generate_series(1, 4)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'", 4, 30000));
        st = h_signal_and_wait(sup, SIGTERM, 60000);
        ck_assert_msg(st != -1, "chimerad did not exit after SIGTERM");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'"), 4);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'"), 0);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.supervisors"), 0);
        ck_assert_int_eq(h_children(sup, "chimera-worker", pids, 8), 0);
}
END_TEST

START_TEST(sigterm_past_shutdown_timeout_requeues_without_charging_an_attempt)
{
        pid_t sup;
        int st;

        h_write_config(2, "\"shutdown_timeout\": \"300ms\"");
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 2);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'sleep', '{\"ms\": 60000}' FROM generate_series(1, 2)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'", 2, 30000));
        st = h_signal_and_wait(sup, SIGTERM, 30000);
        ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'queued' "
                               "AND attempts = 0 AND lease_owner IS NULL"),
                         2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'charged' = 'false'"),
                         2);
}
END_TEST

START_TEST(killed_worker_is_replaced_and_its_task_retried)
{
        pid_t sup, pids[8], after[8];
        int n;

        h_write_config(2, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 2);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '{\"ms\": 3000}')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'", 1, 30000));
        /* One of the two workers runs it; killing both is the simple way to hit it. */
        n = h_children(sup, "chimera-worker", pids, 8);
        ck_assert_int_eq(n, 2);
        for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                             "AND attempts = 2",
                             1, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'error' LIKE '%killed by signal 9%'"),
                         1);
        wait_workers(sup, 2);
        n = h_children(sup, "chimera-worker", after, 8);
        for (int i = 0; i < n; i++)
                ck_assert_int_ne(after[i], pids[0]);
}
END_TEST

START_TEST(transient_errors_are_retried_with_backoff_until_dead)
{
        pid_t sup;

        h_write_config(2, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        wait_workers(sup, 2);
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('flaky')");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'dead'", 1, 30000));
        ck_assert_int_eq(h_int("SELECT attempts FROM chimera.tasks"), 3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE finished_at IS NOT NULL "
                               "AND last_error = 'phase run: try again later'"),
                         1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed'"),
                         3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND (detail->>'retry_in_ms')::int BETWEEN 50 AND 1000"),
                         2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'dead'"), 1);
}
END_TEST

START_TEST(a_loop_past_max_transitions_fails)
{
        char err[512];

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('loop')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 30000));
        h_text("SELECT last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_str_eq(err, "workflow loop exceeded max_transitions (3) before reaching a "
                              "terminal phase");
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'phase_finished'"), 3);
}
END_TEST

START_TEST(unknown_workflow_fails_with_a_clear_error_and_is_not_lost)
{
        char err[512];

        h_write_config(2, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('nobody-knows-me')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 30000));
        h_text("SELECT last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_msg(strstr(err, "unknown workflow \"nobody-knows-me\"") != NULL, "%s", err);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'failed'"),
                         1);
}
END_TEST

START_TEST(missing_required_field_fails_naming_the_field)
{
        char err[512];

        h_write_config(2, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('twophase', '{}'), "
               "('twophase', '{\"ms\": 10}')");
        ck_assert(h_wait_int(ALL_DONE(2), 2, 30000));
        h_text("SELECT last_error FROM chimera.tasks WHERE status = 'failed'", err, sizeof(err));
        ck_assert_str_eq(err, "payload is missing required field \"ms\"");
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                  "AND state->>'phase' = 'complete' AND (state->>'transitions')::int = 2"),
            1);
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'phase_finished'"), 2);
}
END_TEST

START_TEST(failing_phase_ends_the_task_failed_with_its_reason)
{
        char err[512];

        h_write_config(1, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('fail')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 30000));
        h_text("SELECT last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_str_eq(err, "phase run failed: builtin:fail always fails");
        /* A phase failure is final: no second attempt. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE finished_at IS NOT NULL "
                               "AND attempts = 1"),
                         1);
}
END_TEST

/*
 * A worker keeps the last workflow definition it parsed and uses it again
 * while the frames carry the same text: one worker fed four workflows in
 * turn must run each task by its own.
 */
START_TEST(one_worker_runs_interleaved_workflows_each_by_its_own_definition)
{
        h_write_config(1, NULL);
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT (ARRAY['noop', 'fail', 'loop', 'twophase'])[i % 4 + 1], '{\"ms\": 1}' "
               "FROM generate_series(0, 39) i ORDER BY i");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int(ALL_DONE(40), 40, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'noop' "
                               "AND status = 'succeeded' AND (state->>'transitions')::int = 1"),
                         10);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'fail' "
                               "AND status = 'failed' "
                               "AND last_error = 'phase run failed: builtin:fail always fails'"),
                         10);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'loop' "
                               "AND status = 'failed' AND last_error LIKE '%max_transitions (3)%'"),
                         10);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'twophase' "
                               "AND status = 'succeeded' AND (state->>'transitions')::int = 2"),
                         10);
}
END_TEST

START_TEST(expired_lease_of_a_dead_supervisor_is_reaped)
{
        h_write_config(1, NULL);
        /* A task left running by a supervisor that no longer exists. */
        h_exec("INSERT INTO chimera.tasks (workflow, status, attempts, lease_owner, "
               "lease_expires_at, started_at) VALUES ('noop', 'running', 1, gen_random_uuid(), "
               "now() - interval '1 minute', now() - interval '2 minutes')");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                             "AND attempts = 2",
                             1, 30000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'error' = 'lease expired'"),
                         1);
}
END_TEST

START_TEST(bad_config_is_refused_naming_the_key)
{
        char out[4096];
        char *argv[] = {(char *)h_bin("chimerad"), "-c", H.config, "--check-config", NULL};
        FILE *f = fopen(H.config, "w");

        fprintf(f, "{\"pool\": {\"size\": 0}}");
        fclose(f);
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 1);
        ck_assert_msg(strstr(out, "pool.size") != NULL, "%s", out);
        f = fopen(H.config, "w");
        fprintf(f, "{\"pool\": {\"size\": 2}, \"bogus\": 1}");
        fclose(f);
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 1);
        ck_assert_msg(strstr(out, "bogus") != NULL, "%s", out);
        h_write_config(2, NULL);
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
}
END_TEST

START_TEST(second_chimerad_on_the_same_socket_is_refused)
{
        pid_t first, second;
        int st;

        h_write_config(1, NULL);
        first = h_start_chimerad(H.config, "first");
        wait_workers(first, 1);
        second = h_start_chimerad(H.config, "second");
        st = h_wait_exit(second, 30000);
        ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
        ck_assert_int_eq(kill(first, 0), 0);
}
END_TEST

Suite *pool_suite(void)
{
        Suite *s = suite_create("pool");
        TCase *tc = h_tcase("pool");

        tcase_add_test(tc,
                       noop_tasks_all_succeed_with_one_claim_each_and_no_more_running_than_workers);
        tcase_add_test(tc, sleep_tasks_run_in_parallel_on_every_worker);
        tcase_add_test(tc, two_supervisors_drain_one_queue_without_claiming_a_task_twice);
        tcase_add_test(tc, sigterm_lets_running_tasks_finish_then_exits_zero);
        tcase_add_test(tc, sigterm_past_shutdown_timeout_requeues_without_charging_an_attempt);
        tcase_add_test(tc, killed_worker_is_replaced_and_its_task_retried);
        tcase_add_test(tc, transient_errors_are_retried_with_backoff_until_dead);
        tcase_add_test(tc, a_loop_past_max_transitions_fails);
        tcase_add_test(tc, unknown_workflow_fails_with_a_clear_error_and_is_not_lost);
        tcase_add_test(tc, missing_required_field_fails_naming_the_field);
        tcase_add_test(tc, failing_phase_ends_the_task_failed_with_its_reason);
        tcase_add_test(tc, one_worker_runs_interleaved_workflows_each_by_its_own_definition);
        tcase_add_test(tc, expired_lease_of_a_dead_supervisor_is_reaped);
        tcase_add_test(tc, bad_config_is_refused_naming_the_key);
        tcase_add_test(tc, second_chimerad_on_the_same_socket_is_refused);
        suite_add_tcase(s, tc);
        return s;
}
