/*
 * test_prefetch.c - pool.prefetch: tasks claimed ahead of free workers.
 *
 * Claimed-ahead tasks are leased and count as running to everyone else;
 * these tests check that they still run exactly once, in priority order, keep their lease
 * while they wait, go back uncharged when the supervisor stops before a
 * worker took them, and can be cancelled while they wait.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

/* Writes H.config as h_write_config does, with pool.prefetch and extra members. */
static void write_config(int pool_size, int prefetch, const char *extra)
{
        json_error_t jerr;
        json_t *cfg;

        h_write_config(pool_size, extra);
        cfg = json_load_file(H.config, 0, &jerr);
        ck_assert_msg(cfg != NULL, "%s: %s", H.config, jerr.text);
        ck_assert_int_eq(
            json_object_set_new(json_object_get(cfg, "pool"), "prefetch", json_integer(prefetch)),
            0);
        ck_assert_int_eq(json_dump_file(cfg, H.config, JSON_INDENT(2)), 0);
        json_decref(cfg);
}

static void insert_sleeps(int n, int ms)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) SELECT 'sleep', "
                 "jsonb_build_object('ms', %d) FROM generate_series(1, %d)",
                 ms, n);
        h_exec(sql);
}

START_TEST(prefetched_tasks_each_run_once)
{
        write_config(2, 50, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 1000)");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1000,
                             60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE attempts <> 1"), 0);
        /* One claim, one start, one finish and one success per task: nothing ran twice. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM (SELECT task_id FROM chimera.task_events "
                               "GROUP BY task_id HAVING count(*) FILTER (WHERE kind = 'claimed') "
                               "<> 1 OR count(*) FILTER (WHERE kind = 'phase_started') <> 1 "
                               "OR count(*) FILTER (WHERE kind = 'phase_finished') <> 1 "
                               "OR count(*) FILTER (WHERE kind = 'succeeded') <> 1) x"),
                         0);
        ck_assert_int_eq(h_int("SELECT count(DISTINCT task_id) FROM chimera.task_events"), 1000);
}
END_TEST

/*
 * Higher priority runs first, then older: with one worker the tasks start in
 * claim order, whether each claim takes one task (prefetch 0) or one claim
 * takes them all (prefetch 20, the dispatch order being the claim's).
 */
/*
 * Writes go in batches, each task's events one array element apiece: the
 * timeline still reads in the order things happened, by id and by time,
 * for every task of a batch, with the outcome's event last.
 */
START_TEST(batched_timelines_keep_their_order)
{
        char sql[512], got[512];

        write_config(2, 20, NULL);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'loop' FROM generate_series(1, 200)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 200, 60000));
        /* Every task's timeline, by id, is the one a loop makes (200 alike). */
        snprintf(sql, sizeof(sql),
                 "SELECT string_agg(n || ': ' || kinds, '; ') FROM (SELECT kinds, count(*) AS n "
                 "FROM (SELECT string_agg(kind || coalesce(' ' || phase, ''), ', ' ORDER BY id) "
                 "AS kinds FROM chimera.task_events GROUP BY task_id) t GROUP BY kinds) x");
        h_text(sql, got, sizeof(got));
        ck_assert_str_eq(got, "200: claimed, phase_started a, phase_finished a, phase_started b, "
                              "phase_finished b, phase_started a, phase_finished a, failed");
        /* Ids follow the times each event was stamped with. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM (SELECT at < lag(at) OVER w AS back "
                               "FROM chimera.task_events WINDOW w AS (PARTITION BY task_id "
                               "ORDER BY id)) x WHERE back"),
                         0);
        /* The outcome's error went through as text. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE last_error LIKE "
                               "'%transitions%'"),
                         200);
}
END_TEST

/*
 * Twenty tasks of mixed priorities, queued while their queues are paused,
 * start in claim order once the queues resume: one queue ("default"), or
 * two ("default" and "bulk", the tasks alternating between them), which
 * chimerad claims with different statements.  Each claimed event names its
 * supervisor, host and the task's queue.
 */
static void tasks_start_in_priority_order(int prefetch, bool two_queues)
{
        char started[1024], expected[1024], sup[64], sql[512];

        write_config(1, prefetch, two_queues ? "\"queues\": [\"default\", \"bulk\"]" : NULL);
        h_exec("INSERT INTO chimera.queues (name, paused, paused_at)"
               " VALUES ('default', true, now()), ('bulk', true, now())");
        h_exec(two_queues ? "INSERT INTO chimera.tasks (workflow, priority, queue)"
                            " SELECT 'noop', 1 + i * 7 % 5, CASE i % 2 WHEN 0 THEN 'default'"
                            " ELSE 'bulk' END FROM generate_series(1, 20) AS i"
                          : "INSERT INTO chimera.tasks (workflow, priority)"
                            " SELECT 'noop', 1 + i * 7 % 5 FROM generate_series(1, 20) AS i");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, 30000));
        h_exec("UPDATE chimera.queues SET paused = false; NOTIFY chimera_tasks");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 20, 30000));
        h_text("SELECT string_agg(task_id::text, ' ' ORDER BY at) FROM chimera.task_events"
               " WHERE kind = 'phase_started'",
               started, sizeof(started));
        h_text("SELECT string_agg(id::text, ' ' ORDER BY priority DESC, run_at, id)"
               " FROM chimera.tasks",
               expected, sizeof(expected));
        ck_assert_msg(strcmp(started, expected) == 0, "prefetch %d, %s: started %s, expected %s",
                      prefetch, two_queues ? "two queues" : "one queue", started, expected);
        h_text("SELECT id::text FROM chimera.supervisors", sup, sizeof(sup));
        ck_assert_int_eq(h_int("SELECT count(DISTINCT queue) FROM chimera.tasks"),
                         two_queues ? 2 : 1);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events e JOIN chimera.tasks t"
                 " ON t.id = e.task_id WHERE e.kind = 'claimed'"
                 " AND e.detail = jsonb_build_object('supervisor', '%s', 'host',"
                 " (SELECT host FROM chimera.supervisors), 'queue', t.queue)",
                 sup);
        ck_assert_int_eq(h_int(sql), 20);
}

START_TEST(tasks_start_in_priority_order_one_claim_each)
{
        tasks_start_in_priority_order(0, false);
}
END_TEST

START_TEST(tasks_start_in_priority_order_claimed_together)
{
        tasks_start_in_priority_order(20, false);
}
END_TEST

START_TEST(tasks_of_two_queues_start_in_priority_order_one_claim_each)
{
        tasks_start_in_priority_order(0, true);
}
END_TEST

START_TEST(tasks_of_two_queues_start_in_priority_order_claimed_together)
{
        tasks_start_in_priority_order(20, true);
}
END_TEST

START_TEST(claimed_ahead_tasks_keep_their_lease_while_they_wait)
{
        /* One worker, 400 ms per task, a 1 s lease: the last of the six waits
         * 2 s, well past its first lease, and must be renewed, not reaped. */
        write_config(1, 5, "\"lease\": \"1s\"");
        h_start_chimerad(H.config, "chimerad");
        insert_sleeps(6, 400);
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 6, 30000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE attempts <> 1"), 0);
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events WHERE kind IN ('retried', 'dead')"), 0);
}
END_TEST

START_TEST(stopping_gives_claimed_ahead_tasks_back_uncharged)
{
        long long succeeded, claimed;
        pid_t sup;

        write_config(1, 5, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        insert_sleeps(10, 1500);
        /* One on the worker, some claimed ahead (two to five: refilled once half is used). */
        ck_assert(h_wait_int("SELECT (count(*) >= 3)::int FROM chimera.tasks "
                             "WHERE status = 'running'",
                             1, 20000));
        ck_assert(h_wait_int("SELECT (count(*) >= 1)::int FROM chimera.task_events "
                             "WHERE kind = 'phase_started'",
                             1, 20000));
        ck_assert_int_eq(h_signal_and_wait(sup, SIGTERM, 30000), 0);
        /* What ran finished; what only waited is queued again, uncharged, never started. */
        succeeded = h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'");
        claimed = h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed'");
        ck_assert_int_ge(succeeded, 1);
        ck_assert_int_ge(claimed - succeeded, 2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'queued'"),
                         10 - succeeded);
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'queued' AND attempts <> 0"),
            0);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'charged' = 'false'"),
                         claimed - succeeded);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_started'"),
                         succeeded);
}
END_TEST

START_TEST(a_claimed_ahead_task_can_be_cancelled)
{
        char out[4096], id[32], sql[256];
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "cancel", id, NULL};

        write_config(1, 3, NULL);
        h_start_chimerad(H.config, "chimerad");
        insert_sleeps(4, 3000);
        /* One on the worker, two or three claimed ahead (refilled once half is used). */
        ck_assert(h_wait_int("SELECT (count(*) >= 3)::int FROM chimera.tasks "
                             "WHERE status = 'running'",
                             1, 20000));
        ck_assert(h_wait_int("SELECT (count(*) >= 1)::int FROM chimera.task_events "
                             "WHERE kind = 'phase_started'",
                             1, 20000));
        /* The last claimed: at least second in line for the one worker, 3 s a task. */
        h_text("SELECT max(id) FROM chimera.tasks WHERE status = 'running'", id, sizeof(id));
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "waiting for a free worker") != NULL, "%s", out);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE id = %s AND status = 'cancelled'", id);
        ck_assert(h_wait_int(sql, 1, 10000));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE task_id = %s "
                 "AND kind = 'phase_started'",
                 id);
        ck_assert_int_eq(h_int(sql), 0);
        /* The others still run to their end. */
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 3, 30000));
}
END_TEST

Suite *prefetch_suite(void)
{
        Suite *s = suite_create("prefetch");
        TCase *tc = h_tcase("prefetch");

        tcase_add_test(tc, prefetched_tasks_each_run_once);
        tcase_add_test(tc, batched_timelines_keep_their_order);
        tcase_add_test(tc, tasks_start_in_priority_order_one_claim_each);
        tcase_add_test(tc, tasks_start_in_priority_order_claimed_together);
        tcase_add_test(tc, tasks_of_two_queues_start_in_priority_order_one_claim_each);
        tcase_add_test(tc, tasks_of_two_queues_start_in_priority_order_claimed_together);
        tcase_add_test(tc, claimed_ahead_tasks_keep_their_lease_while_they_wait);
        tcase_add_test(tc, stopping_gives_claimed_ahead_tasks_back_uncharged);
        tcase_add_test(tc, a_claimed_ahead_task_can_be_cancelled);
        suite_add_tcase(s, tc);
        return s;
}
