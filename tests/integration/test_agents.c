/*
 * test_agents.c - agents that are programs: the request they get, what
 * their answers and exits mean, and the limits the worker enforces
 * (timeout with no process left behind, output bound), with small shell
 * agents written into each test's directory.
 */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

/* A config whose one workflow "w" runs agent "a" (argv path) with the given phase timeout. */
static void one_agent_config(const char *path, const char *timeout, const char *agent_extra)
{
        FILE *f = fopen(H.config, "w");

        ck_assert_ptr_nonnull(f);
        fprintf(
            f,
            "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": 2},\n"
            " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
            " \"retry\": {\"base\": \"100ms\", \"max\": \"200ms\"},\n"
            " \"agents\": {\"a\": {\"argv\": [\"%s\", \"--flag\"], \"env\": {\"GREETING\": "
            "\"hi\"}%s}},\n"
            " \"workflows\": {\"w\": {\"initial\": \"p\", \"phases\": {\"p\": {\"agent\": \"a\",\n"
            "   \"action\": \"act\", \"timeout\": \"%s\", \"params\": {\"k\": 1}}}}}}\n",
            H.url, H.socket, path, agent_extra ? agent_extra : "", timeout);
        fclose(f);
}

static void run_one(const char *payload, int max_attempts)
{
        char sql[512];

        h_start_chimerad(H.config, "chimerad");
        snprintf(
            sql, sizeof(sql),
            "INSERT INTO chimera.tasks (workflow, payload, max_attempts) VALUES ('w', '%s', %d)",
            payload, max_attempts);
        h_exec(sql);
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status NOT IN "
                             "('queued', 'running')",
                             1, 60000));
}

START_TEST(agent_gets_the_request_on_stdin_and_a_clean_environment)
{
        char out[400], text[8192], status[32];
        json_t *req, *env;
        json_error_t jerr;

        snprintf(out, sizeof(out), "%s/seen", H.dir);
        char body[1200];
        snprintf(
            body, sizeof(body),
            "cat > '%s.json'\n"
            "printf '{\"argv1\":\"%%s\",\"greeting\":\"%%s\",\"task\":\"%%s\",\"phase\":\"%%s\","
            "\"action\":\"%%s\",\"has_db\":\"%%s\"}' \"$1\" \"$GREETING\" \"$CHIMERA_TASK_ID\" "
            "\"$CHIMERA_PHASE\" \"$CHIMERA_ACTION\" \"${CHIMERA_TEST_DATABASE_URL:+yes}\" > "
            "'%s.env'\n"
            "echo '{\"answer\": 42}'",
            out, out);
        one_agent_config(h_script("agent", body), "30s", NULL);
        run_one("{\"feature\": \"x\"}", 3);
        h_text("SELECT status FROM chimera.tasks", status, sizeof(status));
        ck_assert_str_eq(status, "succeeded");
        ck_assert_int_eq(h_int("SELECT (result->>'answer')::int FROM chimera.tasks"), 42);

        snprintf(body, sizeof(body), "%s.json", out);
        h_read_file(body, text, sizeof(text));
        req = json_loads(text, 0, &jerr);
        ck_assert_msg(req != NULL, "request is not JSON: %s", text);
        ck_assert_int_eq(json_integer_value(json_object_get(req, "attempt")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(req, "workflow")), "w");
        ck_assert_str_eq(json_string_value(json_object_get(req, "phase")), "p");
        ck_assert_str_eq(json_string_value(json_object_get(req, "action")), "act");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(req, "params"), "k")),
                         1);
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(req, "payload"), "feature")), "x");
        ck_assert(json_is_object(json_object_get(req, "results")));
        ck_assert(json_is_string(json_object_get(req, "trace_id")));
        json_decref(req);

        snprintf(body, sizeof(body), "%s.env", out);
        h_read_file(body, text, sizeof(text));
        env = json_loads(text, 0, &jerr);
        ck_assert_msg(env != NULL, "env is not JSON: %s", text);
        ck_assert_str_eq(json_string_value(json_object_get(env, "argv1")), "--flag");
        ck_assert_str_eq(json_string_value(json_object_get(env, "greeting")), "hi");
        ck_assert_str_eq(json_string_value(json_object_get(env, "phase")), "p");
        ck_assert_str_eq(json_string_value(json_object_get(env, "action")), "act");
        ck_assert_int_eq(atoi(json_string_value(json_object_get(env, "task"))),
                         h_int("SELECT id FROM chimera.tasks"));
        /* The worker's environment (here: the test's database URL) does not leak in. */
        ck_assert_str_eq(json_string_value(json_object_get(env, "has_db")), "");
        json_decref(env);
}
END_TEST

/*
 * Workers run under SCHED_BATCH, so that one woken by its next task does
 * not preempt chimerad; the agents they start run under SCHED_OTHER, as
 * any program would.
 */
START_TEST(workers_run_as_batch_and_their_agents_as_other)
{
        pid_t sup, pids[8];
        int n;

        /* Field 41 of /proc/PID/stat is the scheduling policy. */
        one_agent_config(h_script("agent", "cat >/dev/null\n"
                                           "printf '{\"policy\": %s}\\n' "
                                           "\"$(cut -d' ' -f41 /proc/$$/stat)\""),
                         "30s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('w')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 60000));
        ck_assert_int_eq(h_int("SELECT (result->>'policy')::int FROM chimera.tasks"), SCHED_OTHER);
        n = h_children(sup, "chimera-worker", pids, 8);
        ck_assert_int_eq(n, 2);
        for (int i = 0; i < n; i++)
                ck_assert_int_eq(sched_getscheduler(pids[i]), SCHED_BATCH);
}
END_TEST

START_TEST(output_that_is_not_json_fails_the_phase_with_the_reason)
{
        char err[1024];

        one_agent_config(h_script("agent", "echo 'all good!'"), "30s", NULL);
        run_one("{}", 3);
        h_text("SELECT status || ': ' || last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_msg(
            strstr(err, "failed: phase p failed: agent a did not answer one JSON object") == err,
            "%s", err);
}
END_TEST

START_TEST(rejection_status_follows_on_failure_and_keeps_stderr)
{
        char err[1024];

        one_agent_config(h_script("agent",
                                  "echo 'looking closely' >&2\n"
                                  "echo '{\"status\": \"rejected\", \"reason\": \"no tests\"}'"),
                         "30s", NULL);
        run_one("{}", 3);
        h_text("SELECT last_error FROM chimera.tasks WHERE status = 'failed'", err, sizeof(err));
        ck_assert_str_eq(err, "phase p failed: rejected: no tests");
        h_text("SELECT detail->>'stderr' FROM chimera.task_events WHERE kind = 'phase_finished'",
               err, sizeof(err));
        ck_assert_str_eq(err, "looking closely\n");
}
END_TEST

START_TEST(agent_that_cannot_be_executed_fails_clearly)
{
        char err[1024];

        one_agent_config("/nonexistent/agent", "30s", NULL);
        run_one("{}", 3);
        h_text("SELECT status || ': ' || last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_str_eq(
            err, "failed: phase p failed: agent a cannot be started: No such file or directory");
}
END_TEST

START_TEST(exit_75_is_retried_and_other_exits_fail)
{
        char err[1024];

        /* Transient on attempt 1, success on attempt 2. */
        one_agent_config(
            h_script("agent", "if [ \"$CHIMERA_ATTEMPT\" = 1 ]; then echo busy >&2; exit 75; fi\n"
                              "echo '{}'"),
            "30s", NULL);
        run_one("{}", 3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 2"),
                         1);
        h_text("SELECT detail->>'error' FROM chimera.task_events WHERE kind = 'retried'", err,
               sizeof(err));
        ck_assert_str_eq(err, "phase p: agent a asked to be retried (exit 75): busy");
}
END_TEST

/* Pids of live processes whose command line contains needle. */
static int processes_with(const char *needle)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int n = 0;

        while ((e = readdir(d)) != NULL) {
                char path[300], cmd[1024];
                FILE *f;
                size_t len;
                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
                f = fopen(path, "r");
                if (f == NULL)
                        continue;
                len = fread(cmd, 1, sizeof(cmd) - 1, f);
                fclose(f);
                for (size_t i = 0; i < len; i++)
                        if (cmd[i] == '\0')
                                cmd[i] = ' ';
                cmd[len] = '\0';
                if (strstr(cmd, needle) != NULL)
                        n++;
        }
        closedir(d);
        return n;
}

START_TEST(hanging_agent_is_killed_at_its_timeout_with_its_children)
{
        char err[1024];

        /* A child in the background, and a main process that ignores SIGTERM. */
        one_agent_config(h_script("hang-agent", "trap '' TERM\nsleep 987654 &\nsleep 987655\n"),
                         "500ms", NULL);
        run_one("{}", 1);
        h_text("SELECT status || ': ' || last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_str_eq(err, "dead: phase p: agent a timed out after 500ms and was killed "
                              "(with SIGKILL: it outlived SIGTERM)");
        for (int i = 0;
             i < 250 && (processes_with("sleep 98765") > 0 || processes_with("hang-agent") > 0);
             i++)
                usleep(20000);
        ck_assert_int_eq(processes_with("sleep 98765"), 0);
        ck_assert_int_eq(processes_with("hang-agent"), 0);
}
END_TEST

START_TEST(agent_does_not_outlive_a_killed_worker)
{
        pid_t sup, pids[4];
        int n;

        one_agent_config(h_script("agent", "sleep 876543 &\nsleep 876544\n"), "5m", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow, max_attempts) VALUES ('w', 1)");
        for (int i = 0; i < 1500 && processes_with("sleep 87654") < 2; i++)
                usleep(20000);
        ck_assert_int_eq(processes_with("sleep 87654"), 2);
        n = h_children(sup, "chimera-worker", pids, 4);
        for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'dead'", 1, 30000));
        for (int i = 0; i < 500 && processes_with("sleep 87654") > 0; i++)
                usleep(20000);
        ck_assert_int_eq(processes_with("sleep 87654"), 0);
}
END_TEST

START_TEST(output_past_the_limit_fails_without_harming_the_worker)
{
        char err[1024];
        pid_t sup, pids[4];

        one_agent_config(h_script("agent", "head -c 3000000 /dev/zero | tr '\\0' x"), "30s",
                         ", \"limits\": {\"output\": \"1MB\"}");
        sup = h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('w')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 60000));
        h_text("SELECT last_error FROM chimera.tasks", err, sizeof(err));
        ck_assert_str_eq(err, "phase p failed: agent a printed more than 1048576 bytes on stdout");
        ck_assert_int_eq(h_children(sup, "chimera-worker", pids, 4), 2);
}
END_TEST

/*
 * An agent's stderr goes into JSON frames: a byte that is not UTF-8 (here
 * Latin-1) once made the worker's frame unencodable, so the worker exited
 * and the task was retried as if it had crashed.
 */
START_TEST(stderr_that_is_not_utf8_fails_the_phase_not_the_worker)
{
        char err[1024];

        one_agent_config(h_script("agent", "printf 'caf\\351 ferm\\351\\n' >&2\nexit 1"), "30s",
                         NULL);
        run_one("{}", 3);
        h_text("SELECT status || ' ' || attempts || ': ' || last_error FROM chimera.tasks", err,
               sizeof(err));
        ck_assert_str_eq(err, "failed 1: phase p failed: agent a exited with status 1: caf? ferm?");
        h_text("SELECT detail->>'stderr' FROM chimera.task_events WHERE kind = 'phase_finished'",
               err, sizeof(err));
        ck_assert_str_eq(err, "caf? ferm?\n");
}
END_TEST

Suite *agents_suite(void)
{
        Suite *s = suite_create("agents");
        TCase *tc = h_tcase("agents");

        tcase_add_test(tc, agent_gets_the_request_on_stdin_and_a_clean_environment);
        tcase_add_test(tc, workers_run_as_batch_and_their_agents_as_other);
        tcase_add_test(tc, output_that_is_not_json_fails_the_phase_with_the_reason);
        tcase_add_test(tc, rejection_status_follows_on_failure_and_keeps_stderr);
        tcase_add_test(tc, agent_that_cannot_be_executed_fails_clearly);
        tcase_add_test(tc, exit_75_is_retried_and_other_exits_fail);
        tcase_add_test(tc, hanging_agent_is_killed_at_its_timeout_with_its_children);
        tcase_add_test(tc, agent_does_not_outlive_a_killed_worker);
        tcase_add_test(tc, output_past_the_limit_fails_without_harming_the_worker);
        tcase_add_test(tc, stderr_that_is_not_utf8_fails_the_phase_not_the_worker);
        suite_add_tcase(s, tc);
        return s;
}
