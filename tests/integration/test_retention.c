/*
 * test_retention.c - `retention`: finished tasks older than it are deleted
 * with their events, in batches; younger ones, and queued or running ones
 * whatever their finished_at, are kept; "0" keeps everything; several
 * supervisors share the work without deleting a row twice.  Old rows are
 * written with SQL, their finished_at back-dated, and a real chimerad
 * deletes them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "retention.h"

#include "harness.h"
#include "suites.h"

#define WAIT_MS 60000

#define MACRO_TEXT_(x) #x
#define MACRO_TEXT(x)  MACRO_TEXT_(x)

/*
 * Inserts n tasks in status, finished age ago (an interval, such as
 * '2 hours'), tagged with group in their payload, each with three events.
 */
static void insert_tasks(int n, const char *status, const char *age, const char *group)
{
        char sql[1024];

        snprintf(sql, sizeof(sql),
                 "WITH t AS ("
                 " INSERT INTO chimera.tasks (workflow, payload, status, attempts, run_at,"
                 "   started_at, finished_at)"
                 " SELECT 'noop', jsonb_build_object('group', '%s'), '%s', 1,"
                 "   now() + interval '1 year', now() - interval '%s' - interval '1 second',"
                 "   now() - interval '%s'"
                 " FROM generate_series(1, %d)"
                 " RETURNING id)"
                 "INSERT INTO chimera.task_events (task_id, attempt, kind)"
                 " SELECT id, 1, k FROM t, unnest(ARRAY['claimed', 'phase_started', "
                 "   'phase_finished']) AS k",
                 group, status, age, age, n);
        h_exec(sql);
}

static long long group_tasks(const char *group)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE payload->>'group' = '%s'", group);
        return h_int(sql);
}

static long long group_events(const char *group)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events e JOIN chimera.tasks t"
                 " ON t.id = e.task_id WHERE t.payload->>'group' = '%s'",
                 group);
        return h_int(sql);
}

static long long all_events(void)
{
        return h_int("SELECT count(*) FROM chimera.task_events");
}

/* Waits until group has want tasks left. */
static bool wait_group(const char *group, long long want, int timeout_ms)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE payload->>'group' = '%s'", group);
        return h_wait_int(sql, want, timeout_ms);
}

/* Reads the log dir/NAME.log into a static buffer. */
static const char *read_log(const char *name)
{
        static char text[1 << 20];
        char path[400];

        snprintf(path, sizeof(path), "%s/%s.log", H.dir, name);
        h_read_file(path, text, sizeof(text));
        return text;
}

/* Waits until dir/NAME.log holds needle. */
static bool log_has(const char *name, const char *needle, int timeout_ms)
{
        for (int waited = 0; waited <= timeout_ms; waited += 20) {
                if (strstr(read_log(name), needle) != NULL)
                        return true;
                usleep(20000);
        }
        return false;
}

/* The tasks that the retention lines of dir/NAME.log say were deleted, summed. */
static long long logged_deletions(const char *name)
{
        const char *p = read_log(name);
        long long sum = 0;

        while ((p = strstr(p, "retention: deleted ")) != NULL) {
                p += strlen("retention: deleted ");
                sum += strtoll(p, NULL, 10);
        }
        return sum;
}

/*
 * Waits until the logs a and b (b may be NULL) account for at least n
 * deleted tasks, and returns their sum: a row is gone before the line
 * saying so is written.
 */
static long long wait_logged_deletions(const char *a, const char *b, long long n)
{
        long long sum;

        for (int waited = 0;; waited += 20) {
                sum = logged_deletions(a) + (b != NULL ? logged_deletions(b) : 0);
                if (sum >= n || waited > WAIT_MS)
                        return sum;
                usleep(20000);
        }
}

START_TEST(finished_tasks_past_retention_are_deleted_with_their_events)
{
        static const char *const final[] = {"succeeded", "failed", "dead", "cancelled"};
        char needle[200];

        h_write_config(2, "\"retention\": \"1h\"");
        /* More than two batches' worth, in every final status. */
        for (int i = 0; i < 4; i++)
                insert_tasks(RETENTION_BATCH / 2 + 50, final[i], "2 hours", "old");
        for (int i = 0; i < 4; i++)
                insert_tasks(5, final[i], "30 minutes", "young");
        /* Not finished, whatever their finished_at says (as a hand-edited row may). */
        insert_tasks(3, "queued", "2 hours", "queued");
        insert_tasks(3, "running", "2 hours", "running");
        h_exec("UPDATE chimera.tasks SET lease_owner = gen_random_uuid(),"
               " lease_expires_at = now() + interval '1 year'"
               " WHERE payload->>'group' = 'running'");
        ck_assert_int_eq(group_tasks("old"), 4 * (RETENTION_BATCH / 2 + 50));

        h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_group("old", 0, WAIT_MS), "old tasks left: %lld", group_tasks("old"));
        ck_assert_int_eq(group_tasks("young"), 20);
        ck_assert_int_eq(group_events("young"), 60);
        ck_assert_int_eq(group_tasks("queued"), 3);
        ck_assert_int_eq(group_events("queued"), 9);
        ck_assert_int_eq(group_tasks("running"), 3);
        ck_assert_int_eq(group_events("running"), 9);
        /* No event is left behind without its task. */
        ck_assert_int_eq(all_events(), 60 + 9 + 9);
        /* One line for the run, however many batches it took. */
        snprintf(needle, sizeof(needle),
                 "retention: deleted %d finished tasks older than 1h and their %d events in 3 "
                 "batches",
                 4 * (RETENTION_BATCH / 2 + 50), 3 * 4 * (RETENTION_BATCH / 2 + 50));
        ck_assert_msg(log_has("chimerad", needle, WAIT_MS), "%s", read_log("chimerad"));
}
END_TEST

START_TEST(tasks_chimerad_finished_are_deleted_once_past_retention)
{
        h_write_config(2, "\"retention\": \"2s\"");
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, payload)"
               " SELECT 'noop', '{\"group\": \"mine\"}' FROM generate_series(1, 20)");
        /* Queued for later: never finished, so never deleted. */
        h_exec("INSERT INTO chimera.tasks (workflow, payload, run_at)"
               " VALUES ('noop', '{\"group\": \"later\"}', now() + interval '1 year')");
        /* The run after the tasks are 2 s old deletes them (one run a second). */
        ck_assert_msg(wait_group("mine", 0, WAIT_MS), "tasks left: %lld", group_tasks("mine"));
        ck_assert_int_eq(all_events(), 0);
        ck_assert_int_eq(group_tasks("later"), 1);
        ck_assert_int_eq(wait_logged_deletions("chimerad", NULL, 20), 20);
}
END_TEST

START_TEST(retention_zero_keeps_finished_tasks_until_a_reload_turns_it_on)
{
        pid_t sup;

        h_write_config(2, "\"retention\": \"0\"");
        insert_tasks(RETENTION_BATCH + 10, "succeeded", "10 years", "old");
        sup = h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('noop', '{}')");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'"
                             " AND payload = '{}'",
                             1, WAIT_MS));
        /* Three periods of the shortest retention: long enough for a run to show. */
        ck_assert_msg(
            !h_wait_int("SELECT (count(*) < " MACRO_TEXT(
                            RETENTION_BATCH) " + 10)::int"
                                             " FROM chimera.tasks WHERE payload->>'group' = 'old'",
                        1, 3000),
            "a task was deleted");
        ck_assert_int_eq(group_events("old"), 3 * (RETENTION_BATCH + 10));
        ck_assert_ptr_null(strstr(read_log("chimerad"), "retention: deleted"));

        h_write_config(2, "\"retention\": \"1d\"");
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(wait_group("old", 0, WAIT_MS));
        /* The task finished just now is younger than a day: it stays, with its events. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 1);
        ck_assert_int_eq(all_events(), h_int("SELECT count(*) FROM chimera.task_events e"
                                             " JOIN chimera.tasks t ON t.id = e.task_id"));
        ck_assert_int_gt(all_events(), 0);
}
END_TEST

START_TEST(two_supervisors_share_the_deleting_without_doing_it_twice)
{
        const int n = 6 * RETENTION_BATCH;
        char a_cfg[300];

        h_write_config(2, "\"retention\": \"1h\"");
        snprintf(a_cfg, sizeof(a_cfg), "%s", H.config);
        /* The second config differs only in its control socket. */
        snprintf(H.config, sizeof(H.config), "%s/b.json", H.dir);
        snprintf(H.socket, sizeof(H.socket), "%s/b.sock", H.dir);
        h_write_config(2, "\"retention\": \"1h\"");
        for (int i = 0; i < 2; i++)
                insert_tasks(n / 2, i == 0 ? "succeeded" : "dead", "1 day", "old");
        h_start_chimerad(a_cfg, "a");
        h_start_chimerad(H.config, "b");
        ck_assert_msg(wait_group("old", 0, WAIT_MS), "old tasks left: %lld", group_tasks("old"));
        ck_assert_int_eq(all_events(), 0);
        /* Each row was deleted by exactly one of them, and neither failed. */
        ck_assert_int_eq(wait_logged_deletions("a", "b", n), n);
        ck_assert_ptr_null(strstr(read_log("a"), "retention: deleting finished tasks failed"));
        ck_assert_ptr_null(strstr(read_log("b"), "retention: deleting finished tasks failed"));
}
END_TEST

Suite *retention_suite(void)
{
        Suite *s = suite_create("retention");
        TCase *tc = h_tcase("retention");

        tcase_add_test(tc, finished_tasks_past_retention_are_deleted_with_their_events);
        tcase_add_test(tc, tasks_chimerad_finished_are_deleted_once_past_retention);
        tcase_add_test(tc, retention_zero_keeps_finished_tasks_until_a_reload_turns_it_on);
        tcase_add_test(tc, two_supervisors_share_the_deleting_without_doing_it_twice);
        suite_add_tcase(s, tc);
        return s;
}
