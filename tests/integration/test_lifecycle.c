/*
 * test_lifecycle.c - the life of workers and of chimerad itself: the
 * workflow timeout, recycling by task count and by memory, reloading the
 * config with SIGHUP, back-off when workers keep crashing, and the agent
 * circuit breaker.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

/* Writes H.config: pool, extra top-level members, and the given workflows object body. */
static void config(int pool, const char *extra, const char *workflows)
{
        char text[8192];

        snprintf(text, sizeof(text),
                 "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": %d%s},\n"
                 " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
                 " \"retry\": {\"base\": \"100ms\", \"max\": \"200ms\"}%s%s,\n"
                 " \"workflows\": {\"noop\": {\"initial\": \"run\", \"phases\": {\"run\": "
                 "{\"agent\": \"builtin:noop\"}}}%s%s}}\n",
                 H.url, H.socket, pool, "", extra ? ",\n " : "", extra ? extra : "",
                 workflows ? ", " : "", workflows ? workflows : "");
        h_write_config_text(text);
}

/* Same with pool members (e.g. ", \"max_tasks_per_worker\": 2"). */
static void config_pool(int pool, const char *pool_extra)
{
        char text[4096];

        snprintf(text, sizeof(text),
                 "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": %d%s},\n"
                 " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
                 " \"workflows\": {\"noop\": {\"initial\": \"run\", \"phases\": {\"run\": "
                 "{\"agent\": \"builtin:noop\"}}}}}\n",
                 H.url, H.socket, pool, pool_extra);
        h_write_config_text(text);
}

/* chimera-ctl status --json, parsed (a new reference). */
static json_t *status_json(void)
{
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "status", "--json", NULL};
        static char out[65536];
        json_error_t jerr;
        json_t *j;

        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "status is not JSON: %s", out);
        return j;
}

static long long pool_number(const char *key)
{
        json_t *j = status_json();
        long long v = json_integer_value(json_object_get(json_object_get(j, "pool"), key));

        json_decref(j);
        return v;
}

/* Waits until the log of this test's chimerad contains needle. */
static bool log_has(const char *needle, int timeout_ms)
{
        static char text[1 << 20];
        char path[400];

        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        for (int waited = 0; waited <= timeout_ms; waited += 20) {
                h_read_file(path, text, sizeof(text));
                if (strstr(text, needle) != NULL)
                        return true;
                usleep(20000);
        }
        return false;
}

START_TEST(workflow_timeout_stops_a_task_that_runs_too_long)
{
        char err[512];

        config(2, NULL,
               "\"slow\": {\"initial\": \"run\", \"timeout\": \"500ms\", \"phases\": "
               "{\"run\": {\"agent\": \"builtin:sleep\"}}}");
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, payload, max_attempts) "
               "VALUES ('slow', '{\"ms\": 60000}', 2)");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'dead'", 1, 30000));
        h_text("SELECT last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_msg(strstr(err, "past the workflow timeout of 500ms") != NULL, "%s", err);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'claimed'"),
                         2);
        /* The workers that were stopped are replaced. */
        for (int i = 0; i < 500 && pool_number("idle") != 2; i++)
                usleep(20000);
        ck_assert_int_eq(pool_number("idle"), 2);
}
END_TEST

START_TEST(workers_are_replaced_after_max_tasks_per_worker)
{
        config_pool(1, ", \"max_tasks_per_worker\": 2");
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 6)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 6, 30000));
        for (int i = 0; i < 500 && pool_number("restarts") < 3; i++)
                usleep(20000);
        ck_assert_int_ge(pool_number("restarts"), 3);
        ck_assert_int_eq(pool_number("crash_streak"), 0);
}
END_TEST

START_TEST(workers_above_max_worker_rss_are_replaced)
{
        config_pool(1, ", \"max_worker_rss\": \"1MB\"");
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 4)");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 4, 30000));
        for (int i = 0; i < 500 && pool_number("restarts") < 4; i++)
                usleep(20000);
        ck_assert_int_ge(pool_number("restarts"), 4);
        ck_assert(log_has("above pool.max_worker_rss", 5000));
}
END_TEST

START_TEST(sighup_with_a_broken_config_keeps_the_running_one)
{
        pid_t sup;

        config(2, NULL, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        ck_assert(log_has("ready", 30000));
        h_write_config_text("{\"pool\": {\"size\": \"many\"}");
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(log_has("SIGHUP: keeping the running configuration", 30000));
        ck_assert_int_eq(kill(sup, 0), 0);
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 30000));
}
END_TEST

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static bool listening(int port)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        ck_assert_int_ge(fd, 0);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        return ok;
}

/*
 * What a reload cannot change (bound to the socket, the connection, the
 * listener, the worker slots) keeps its running value, and the log says
 * which setting waits for a restart.
 */
START_TEST(sighup_keeps_what_needs_a_restart_and_says_so)
{
        char extra[256];
        pid_t sup;
        int port = h_free_port(AF_INET);
        json_t *j;

        config(2, NULL, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        ck_assert(log_has("ready", 30000));
        snprintf(extra, sizeof(extra),
                 "\"http\": {\"listen\": \"127.0.0.1:%d\", \"token_file\": \"/nonexistent\"}",
                 port);
        config(3, extra, NULL);
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(log_has("configuration reloaded", 30000));
        ck_assert(log_has("reload: pool.size changed; restart chimerad to apply it", 1000));
        ck_assert(log_has("reload: http.listen changed; restart chimerad to apply it", 1000));
        ck_assert(log_has("reload: http.token_file changed; restart chimerad to apply it", 1000));
        j = status_json();
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "size")),
                         2);
        json_decref(j);
        /* Nothing listens on the new address, and the old config still runs tasks. */
        ck_assert(!listening(port));
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 30000));
}
END_TEST

/* Waits until needle appears at least n times in this test's chimerad log. */
static bool log_count_at_least(const char *needle, int n, int timeout_ms)
{
        static char text[1 << 20];
        char path[400];

        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        for (int waited = 0; waited <= timeout_ms; waited += 20) {
                int found = 0;

                h_read_file(path, text, sizeof(text));
                for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
                        found++;
                if (found >= n)
                        return true;
                usleep(20000);
        }
        return false;
}

/* How many tasks of queue q have status st. */
static long long tasks_in(const char *q, const char *st)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE queue = '%s' AND status = '%s'", q, st);
        return h_int(sql);
}

/*
 * A reload that changes "queues" serves exactly the new list from then on,
 * whether it names one queue or several (chimerad claims with a different
 * statement for each case), and a queue it no longer serves is left alone.
 */
START_TEST(sighup_changes_the_served_queues)
{
        pid_t sup;

        config(1, NULL, NULL); /* "queues" defaults to ["default"] */
        sup = h_start_chimerad(H.config, "chimerad");
        ck_assert(log_has("ready", 30000));
        /* Inserted first: a pool of one would run it first were bulk served. */
        h_exec("INSERT INTO chimera.tasks (workflow, queue) VALUES ('noop', 'bulk')");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'default'"
                             " AND status = 'succeeded'",
                             1, 30000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'bulk'"
                               " AND status = 'queued' AND attempts = 0"),
                         1);

        config(1, "\"queues\": [\"default\", \"bulk\"]", NULL);
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(log_count_at_least("configuration reloaded", 1, 30000));
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'bulk'"
                             " AND status = 'succeeded'",
                             1, 30000));
        h_exec("INSERT INTO chimera.tasks (workflow, queue) VALUES ('noop', 'bulk'), ('noop', "
               "'default')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 4, 30000));

        config(1, "\"queues\": [\"bulk\"]", NULL);
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(log_count_at_least("configuration reloaded", 2, 30000));
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        h_exec("INSERT INTO chimera.tasks (workflow, queue) VALUES ('noop', 'bulk')");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE queue = 'bulk'"
                             " AND status = 'succeeded'",
                             3, 30000));
        ck_assert_int_eq(tasks_in("default", "succeeded"), 2);
        ck_assert_int_eq(tasks_in("default", "queued"), 1);
        /* Every claim said which queue the task came from. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events e JOIN chimera.tasks t"
                               " ON t.id = e.task_id WHERE e.kind = 'claimed'"
                               " AND e.detail->>'queue' = t.queue"),
                         5);
}
END_TEST

START_TEST(sighup_applies_a_new_workflow_and_replaces_the_workers)
{
        pid_t sup;

        config(2, NULL, NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        ck_assert(log_has("ready", 30000));
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '{\"ms\": 1500}')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 30000));
        config(2, NULL,
               "\"sleep\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
               "\"builtin:sleep\"}}}");
        ck_assert_int_eq(kill(sup, SIGHUP), 0);
        ck_assert(log_has("configuration reloaded", 30000));
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '{\"ms\": 10}')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 30000));
        for (int i = 0; i < 500 && pool_number("restarts") < 2; i++)
                usleep(20000);
        ck_assert_int_ge(pool_number("restarts"), 2);
        ck_assert_int_eq(pool_number("crash_streak"), 0);
}
END_TEST

START_TEST(workers_that_keep_crashing_are_respawned_with_a_growing_delay)
{
        char wf[1024];
        json_t *j;

        /* The agent crashes its own worker on every task.  SIGABRT rather than SIGSEGV:
         * in the sanitizer build ASan reports a SEGV as an error of its own. */
        snprintf(
            wf, sizeof(wf),
            "\"crash\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": \"killer\"}}}");
        char extra[600];
        snprintf(extra, sizeof(extra), "\"agents\": {\"killer\": {\"argv\": [\"%s\"]}}",
                 h_script("killer", "kill -ABRT $PPID\nsleep 5"));
        config(1, extra, wf);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, max_attempts) "
               "SELECT 'crash', 1 FROM generate_series(1, 20)");
        /* Each crash in a row doubles the wait: the fourth waits 800 ms. */
        ck_assert(log_has("next one in 800 ms", 60000));
        j = status_json();
        ck_assert_int_ge(
            json_integer_value(json_object_get(json_object_get(j, "pool"), "crash_streak")), 4);
        json_decref(j);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'") <= 1,
                         1);
}
END_TEST

START_TEST(circuit_breaker_defers_tasks_while_an_agent_keeps_failing)
{
        char extra[800], err[512];
        const char *agent = h_script("flappy", "cat > /dev/null\n"
                                               "[ -e \"$0.fixed\" ] && { echo '{}'; exit 0; }\n"
                                               "echo 'backend down' >&2; exit 75");
        json_t *j, *b;

        snprintf(extra, sizeof(extra),
                 "\"circuit_breaker\": {\"failures\": 2, \"cooldown\": \"2s\"},\n"
                 " \"agents\": {\"flappy\": {\"argv\": [\"%s\"]}}",
                 agent);
        config(1, extra,
               "\"flap\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": \"flappy\"}}}");
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, max_attempts) VALUES ('flap', 10)");
        /* Two faults open the breaker; the third claim is deferred, uncharged. */
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                             "AND detail->>'charged' = 'false'",
                             1, 30000));
        h_text("SELECT detail->>'error' FROM chimera.task_events WHERE kind = 'retried' "
               "AND detail->>'charged' = 'false'",
               err, sizeof(err));
        ck_assert_str_eq(err, "agent flappy is paused by its circuit breaker");
        j = status_json();
        b = json_array_get(json_object_get(j, "breakers"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(b, "agent")), "flappy");
        ck_assert_int_ge(json_integer_value(json_object_get(b, "failures")), 2);
        json_decref(j);
        {
                char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "status", NULL};
                static char out[16384];
                ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
                ck_assert_msg(strstr(out, "breaker: agent flappy, ") != NULL, "%s", out);
        }
        /* The agent recovers: after the cool-down the task runs and succeeds. */
        char fixed[450];
        snprintf(fixed, sizeof(fixed), "%s.fixed", agent);
        FILE *f = fopen(fixed, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 30000));
        ck_assert_int_eq(h_int("SELECT attempts FROM chimera.tasks"), 3);
        ck_assert(log_has("circuit breaker closed", 5000));
}
END_TEST

START_TEST(lost_database_connection_loses_nothing)
{
        char sup_id[64];

        config(2, NULL,
               "\"sleep\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
               "\"builtin:sleep\"}}}");
        h_start_chimerad(H.config, "chimerad");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, 30000));
        h_text("SELECT id FROM chimera.supervisors", sup_id, sizeof(sup_id));
        h_exec("INSERT INTO chimera.tasks (workflow, payload) VALUES ('sleep', '{\"ms\": 1000}')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'", 1, 30000));
        /* A row claimed under chimerad's lease that it never heard of: what a claim
         * whose answer died with the connection leaves behind. */
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, status, attempts, lease_owner, "
                 "lease_expires_at, started_at) VALUES ('noop', 'running', 1, '%s', "
                 "now() + interval '1 hour', now())",
                 sup_id);
        h_exec(sql);
        /* Cut chimerad's connection while its task runs. */
        ck_assert_int_ge(h_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"),
                         1);
        ck_assert(log_has("database connection lost", 30000));
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 2, 30000));
        /* The running task's result was kept and written after reconnecting; the
         * orphaned claim was requeued without using an attempt. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE attempts = 1"), 2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'charged' = 'false'"),
                         1);
}
END_TEST

START_TEST(logs_never_show_the_database_password)
{
        char text[4096];
        pid_t sup;

        snprintf(text, sizeof(text),
                 "{\"database\": \"postgresql://chimera:s3cr3t-pw@127.0.0.1:1/nowhere\",\n"
                 " \"control_socket\": \"%s\", \"pool\": {\"size\": 1}}\n",
                 H.socket);
        h_write_config_text(text);
        sup = h_start_chimerad(H.config, "chimerad");
        ck_assert(log_has("cannot connect to the database", 30000));
        ck_assert(log_has("password=***", 5000));
        ck_assert(!log_has("s3cr3t-pw", 0));
        ck_assert_int_eq(kill(sup, 0), 0); /* still running, retrying */
}
END_TEST

START_TEST(submit_takes_max_attempts_from_the_config)
{
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "submit", "noop", NULL};
        char *explicit_argv[] = {(char *)h_bin("chimera-ctl"),
                                 "-c",
                                 H.config,
                                 "submit",
                                 "noop",
                                 "--max-attempts",
                                 "2",
                                 NULL};
        static char out[4096];

        char text[1024];

        snprintf(text, sizeof(text),
                 "{\"database\": \"%s\", \"control_socket\": \"%s\",\n"
                 " \"retry\": {\"max_attempts\": 7}}\n",
                 H.url, H.socket);
        h_write_config_text(text);
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        ck_assert_int_eq(h_run(explicit_argv, out, sizeof(out)), 0);
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE max_attempts = 7"), 1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE max_attempts = 2"), 1);
        /* A plain INSERT keeps the table's default. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE max_attempts = 3"), 1);
}
END_TEST

Suite *lifecycle_suite(void)
{
        Suite *s = suite_create("lifecycle");
        TCase *tc = h_tcase("lifecycle");

        tcase_add_test(tc, workflow_timeout_stops_a_task_that_runs_too_long);
        tcase_add_test(tc, workers_are_replaced_after_max_tasks_per_worker);
        tcase_add_test(tc, workers_above_max_worker_rss_are_replaced);
        tcase_add_test(tc, sighup_with_a_broken_config_keeps_the_running_one);
        tcase_add_test(tc, sighup_applies_a_new_workflow_and_replaces_the_workers);
        tcase_add_test(tc, sighup_changes_the_served_queues);
        tcase_add_test(tc, sighup_keeps_what_needs_a_restart_and_says_so);
        tcase_add_test(tc, workers_that_keep_crashing_are_respawned_with_a_growing_delay);
        tcase_add_test(tc, circuit_breaker_defers_tasks_while_an_agent_keeps_failing);
        tcase_add_test(tc, lost_database_connection_loses_nothing);
        tcase_add_test(tc, logs_never_show_the_database_password);
        tcase_add_test(tc, submit_takes_max_attempts_from_the_config);
        suite_add_tcase(s, tc);
        return s;
}
