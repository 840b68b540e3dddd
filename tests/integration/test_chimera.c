/*
 * test_chimera.c - the Chimera workflow of examples/chimerad.json (that very
 * file, with faster timers), acted out by the example agents of
 * examples/agents/ (real programs, run by the real chimera-worker under the
 * real chimerad): the happy path at volume, the loops back to
 * code_implementation, invalid input, agents that fail, fail transiently or
 * hang, and a worker killed in the middle of a task.
 *
 * The agents do what the payload tells them (examples/agents/README.md
 * lists the flags), so each scenario is one INSERT and a look at the task
 * and its timeline in chimera.task_events.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define FINISHED "SELECT count(*) FROM chimera.tasks WHERE status NOT IN ('queued', 'running')"

/* The phases that a task started, in order, comma-separated. */
#define STARTED_PHASES                                                                             \
        "SELECT coalesce(string_agg(phase, ',' ORDER BY id), '') FROM chimera.task_events "        \
        "WHERE kind = 'phase_started'"

#define INSTALLED_AGENTS "/usr/lib/chimera/agents/"

/* Sets obj.key to the string value, failing the test if obj is not an object. */
static void set_string(json_t *obj, const char *key, const char *value)
{
        ck_assert_msg(json_is_object(obj), "examples/chimerad.json: no object for \"%s\"", key);
        ck_assert_int_eq(json_object_set_new(obj, key, json_string(value)), 0);
}

/*
 * Writes H.config: examples/chimerad.json as shipped, with this test's
 * database, socket and pool size, fast timers, the agents of this source
 * tree instead of the installed ones, and guardian_review's timeout set to
 * guardian_timeout (the hang tests shorten it).
 */
static void write_chimera_config(int pool_size, const char *guardian_timeout)
{
        json_error_t jerr;
        json_t *cfg = json_load_file(h_repo_path("examples/chimerad.json"), 0, &jerr);
        json_t *agent, *argv, *guardian;
        const char *name, *prog;
        char rel[256], *text;

        ck_assert_msg(cfg != NULL, "examples/chimerad.json:%d: %s", jerr.line, jerr.text);
        set_string(cfg, "database", H.url);
        set_string(cfg, "control_socket", H.socket);
        ck_assert_int_eq(
            json_object_set_new(json_object_get(cfg, "pool"), "size", json_integer(pool_size)), 0);
        set_string(cfg, "poll_interval", "200ms");
        set_string(cfg, "lease", "5s");
        set_string(json_object_get(cfg, "retry"), "base", "100ms");
        set_string(json_object_get(cfg, "retry"), "max", "500ms");
        json_object_foreach (json_object_get(cfg, "agents"), name, agent) {
                argv = json_object_get(agent, "argv");
                prog = json_string_value(json_array_get(argv, 0));
                ck_assert_msg(prog != NULL &&
                                  strncmp(prog, INSTALLED_AGENTS, strlen(INSTALLED_AGENTS)) == 0,
                              "agent %s does not run from " INSTALLED_AGENTS, name);
                snprintf(rel, sizeof(rel), "examples/agents/%s", prog + strlen(INSTALLED_AGENTS));
                json_array_set_new(argv, 0, json_string(h_repo_path(rel)));
        }
        ck_assert_int_eq(json_unpack(cfg, "{s:{s:{s:{s:o}}}}", "workflows", "chimera", "phases",
                                     "guardian_review", &guardian),
                         0);
        set_string(guardian, "timeout", guardian_timeout);
        text = json_dumps(cfg, JSON_INDENT(2));
        h_write_config_text(text);
        free(text);
        json_decref(cfg);
}

/* Starts chimerad with the Chimera config and waits for its n workers. */
static pid_t start_chimera(int pool_size, const char *guardian_timeout)
{
        pid_t sup, pids[64];

        ck_assert_msg(access(h_repo_path("examples/agents/guardian"), X_OK) == 0,
                      "%s is not executable", h_repo_path("examples/agents/guardian"));
        write_chimera_config(pool_size, guardian_timeout);
        sup = h_start_chimerad(H.config, "chimerad");
        for (int i = 0; i < 1500; i++) {
                if (h_children(sup, "chimera-worker", pids, 64) == pool_size)
                        return sup;
                usleep(20000);
        }
        ck_abort_msg("chimerad %d never had %d workers", (int)sup, pool_size);
        return -1;
}

/* Inserts one Chimera task with the payload members extra added; returns its id. */
static long long submit(const char *extra)
{
        char sql[1024];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload) VALUES ('chimera', "
                 "'{\"feature\": \"login\", \"target_url\": \"https://example.com/login\"%s%s}') "
                 "RETURNING id",
                 extra ? ", " : "", extra ? extra : "");
        return h_int(sql);
}

static long long started_count(const char *phase)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.task_events WHERE kind = 'phase_started' "
                 "AND phase = '%s'",
                 phase);
        return h_int(sql);
}

/*
 * Polls until the number of processes with entry in their environment (and
 * cmdline_part in their command line, if not NULL) is want; false if it is
 * still not after timeout_ms.
 */
static bool wait_procs(const char *entry, const char *cmdline_part, int want, int timeout_ms)
{
        for (int waited = 0;; waited += 20) {
                if (h_count_procs_with_env(entry, cmdline_part) == want)
                        return true;
                if (waited > timeout_ms)
                        return false;
                usleep(20000);
        }
}

START_TEST(fifty_chimera_tasks_all_succeed)
{
        char result[1024];

        start_chimera(4, "1m");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "SELECT 'chimera', jsonb_build_object('feature', 'feature ' || i, "
               "'target_url', 'https://example.com/' || i) FROM generate_series(1, 50) AS i");
        ck_assert(h_wait_int(FINISHED, 50, 120000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 1 AND (state->>'transitions')::int = 5"),
                         50);
        /* Every task ran the five phases once, each a success. */
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM (SELECT task_id FROM chimera.task_events "
                  "WHERE kind = 'phase_finished' AND detail->>'outcome' = 'success' "
                  "GROUP BY task_id HAVING count(DISTINCT phase) = 5 AND count(*) = 5) t"),
            50);
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'phase_finished'"), 250);
        /* The result is the validator's answer, which saw the coder's revision in "results". */
        h_text("SELECT coalesce(min(id || ': ' || coalesce(result::text, 'NULL')), 'none') "
               "FROM chimera.tasks WHERE result IS DISTINCT FROM "
               "'{\"status\": \"passed\", \"phase\": \"e2e_validation\", \"summary\": "
               "\"all end-to-end tests passed on staging\", \"revision\": 1, \"passed\": 3, "
               "\"failed\": 0}'::jsonb",
               result, sizeof(result));
        ck_assert_str_eq(result, "none");
}
END_TEST

START_TEST(guardian_rejection_loops_back_to_code_implementation_then_completes)
{
        char phases[1024], result[1024];

        start_chimera(2, "1m");
        submit("\"guardian_reject_once\": true");
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 1 AND (state->>'transitions')::int = 7"),
                         1);
        h_text(STARTED_PHASES, phases, sizeof(phases));
        ck_assert_str_eq(phases, "e2e_test_generation,code_implementation,guardian_review,"
                                 "code_implementation,guardian_review,staging_deployment,"
                                 "e2e_validation");
        /* The rejection is a phase failure whose error is the guardian's reason. */
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events "
                  "WHERE kind = 'phase_finished' AND phase = 'guardian_review' "
                  "AND detail->>'outcome' = 'failure' "
                  "AND detail->>'next' = 'code_implementation' "
                  "AND detail->>'error' LIKE '%no test for an unreachable target_url%'"),
            1);
        /* The coder saw its first answer in "results" and made revision 2, which passed. */
        h_text("SELECT result FROM chimera.tasks", result, sizeof(result));
        ck_assert_msg(strstr(result, "\"revision\": 2") != NULL, "result %s", result);
}
END_TEST

START_TEST(failed_validation_loops_back_to_code_implementation_then_completes)
{
        char phases[1024], task[2048];

        start_chimera(2, "1m");
        submit("\"validation_fail_once\": true");
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        h_text("SELECT status || ' ' || attempts || ' ' || coalesce(last_error, '') || ' ' || "
               "coalesce(state::text, '') FROM chimera.tasks",
               task, sizeof(task));
        ck_assert_msg(strncmp(task, "succeeded 1 ", 12) == 0, "%s", task);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 1 AND (state->>'transitions')::int = 9"),
                         1);
        h_text(STARTED_PHASES, phases, sizeof(phases));
        ck_assert_str_eq(phases, "e2e_test_generation,code_implementation,guardian_review,"
                                 "staging_deployment,e2e_validation,code_implementation,"
                                 "guardian_review,staging_deployment,e2e_validation");
        /* Exit 1 is a phase failure; the validator's stderr is kept in the timeline. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events "
                               "WHERE kind = 'phase_finished' AND phase = 'e2e_validation' "
                               "AND detail->>'outcome' = 'failure' "
                               "AND detail::text LIKE '%1 of 3 end-to-end tests failed%'"),
                         1);
}
END_TEST

START_TEST(missing_target_url_fails_naming_the_field)
{
        char err[512];

        start_chimera(2, "1m");
        h_exec("INSERT INTO chimera.tasks (workflow, payload) "
               "VALUES ('chimera', '{\"feature\": \"x\"}')");
        ck_assert(h_wait_int(FINISHED, 1, 30000));
        h_text("SELECT status || ' ' || attempts || ': ' || last_error FROM chimera.tasks", err,
               sizeof(err));
        ck_assert_str_eq(err, "failed 1: payload is missing required field \"target_url\"");
        /* Invalid input is refused before any agent runs. */
        ck_assert_int_eq(started_count("e2e_test_generation"), 0);
}
END_TEST

START_TEST(failing_deployment_ends_failed)
{
        char err[1024];

        start_chimera(2, "1m");
        submit("\"fail_phase\": \"staging_deployment\"");
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        h_text("SELECT status || ' ' || attempts || ': ' || coalesce(last_error, '') "
               "FROM chimera.tasks",
               err, sizeof(err));
        ck_assert_msg(strncmp(err, "failed 1: ", 10) == 0, "%s", err);
        ck_assert_msg(strstr(err, "staging_deployment") != NULL, "%s", err);
        /* on_failure of staging_deployment is failed: no validation, no retry. */
        ck_assert_int_eq(started_count("staging_deployment"), 1);
        ck_assert_int_eq(started_count("e2e_validation"), 0);
        ck_assert_int_eq(
            h_int("SELECT count(*) FROM chimera.task_events WHERE kind IN ('retried', 'failed')"),
            1);
}
END_TEST

START_TEST(transient_agent_error_is_retried_and_resumes_at_its_phase)
{
        start_chimera(2, "1m");
        submit("\"transient_phase\": \"code_implementation\"");
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 2"),
                         1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND attempt = 1 AND detail->>'error' LIKE '%code_implementation%'"),
                         1);
        /* Attempt 2 resumed at code_implementation: the tests were not generated again. */
        ck_assert_int_eq(started_count("e2e_test_generation"), 1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events "
                               "WHERE kind = 'phase_started' AND phase = 'code_implementation' "
                               "AND attempt = 2"),
                         1);
        ck_assert_int_eq(started_count("code_implementation"), 2);
        ck_assert_int_eq(started_count("e2e_validation"), 1);
}
END_TEST

/*
 * Runs a task whose guardian hangs (payload members extra), with a 2 s
 * phase timeout and one attempt: checks that the agent's processes were
 * there while it hung, that the task ends dead on the timeout, and that
 * no process of the agent's group survives.
 */
static void check_hanging_guardian(const char *extra)
{
        char sql[512], trace[128], entry[160], err[1024];

        start_chimera(2, "2s");
        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, payload, max_attempts) VALUES ('chimera', "
                 "'{\"feature\": \"x\", \"target_url\": \"https://example.com\", "
                 "\"hang_phase\": \"guardian_review\"%s}', 1) RETURNING trace_id",
                 extra);
        h_text(sql, trace, sizeof(trace));
        snprintf(entry, sizeof(entry), "CHIMERA_TRACE_ID=%s", trace);
        /* The agent's two sleeps (one in the background), found by the trace id
         * in their environment. */
        ck_assert_msg(wait_procs(entry, "sleep 100000", 2, 30000),
                      "the hanging guardian's sleeps never showed up (%d found)",
                      h_count_procs_with_env(entry, "sleep 100000"));
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        h_text("SELECT status || ' ' || attempts || ': ' || coalesce(last_error, '') "
               "FROM chimera.tasks",
               err, sizeof(err));
        ck_assert_msg(strncmp(err, "dead 1: ", 8) == 0, "%s", err);
        ck_assert_msg(strstr(err, "guardian_review") != NULL &&
                          (strstr(err, "timeout") != NULL || strstr(err, "timed out") != NULL),
                      "%s", err);
        ck_assert_int_eq(started_count("staging_deployment"), 0);
        ck_assert_msg(wait_procs(entry, NULL, 0, 10000),
                      "%d processes of the hanging guardian survived its timeout",
                      h_count_procs_with_env(entry, NULL));
}

START_TEST(hanging_agent_is_killed_at_its_timeout_and_leaves_no_process)
{
        check_hanging_guardian("");
}
END_TEST

START_TEST(hanging_agent_that_ignores_sigterm_is_killed_with_sigkill)
{
        check_hanging_guardian(", \"hang_ignore_term\": true");
}
END_TEST

START_TEST(worker_killed_in_phase_three_resumes_without_rerunning_phases_one_and_two)
{
        pid_t sup, pids[8];
        int n;

        sup = start_chimera(2, "1m");
        /* guardian_review, phase three, takes 10 s on attempt 1: time to kill its worker. */
        submit("\"slow_phase\": \"guardian_review\", \"slow_ms\": 10000");
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.task_events "
                             "WHERE kind = 'phase_started' AND phase = 'guardian_review'",
                             1, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'running'"), 1);
        /* One of the two workers runs it; killing both is the simple way to hit it. */
        n = h_children(sup, "chimera-worker", pids, 8);
        ck_assert_int_eq(n, 2);
        for (int i = 0; i < n; i++)
                ck_assert_int_eq(kill(pids[i], SIGKILL), 0);
        ck_assert(h_wait_int(FINISHED, 1, 60000));
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded' "
                               "AND attempts = 2"),
                         1);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = 'retried' "
                               "AND detail->>'error' LIKE '%killed by signal 9%'"),
                         1);
        ck_assert_int_eq(started_count("e2e_test_generation"), 1);
        ck_assert_int_eq(started_count("code_implementation"), 1);
        ck_assert_int_eq(started_count("guardian_review"), 2);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events "
                               "WHERE kind = 'phase_started' AND attempt = 2"),
                         3);
}
END_TEST

Suite *chimera_suite(void)
{
        Suite *s = suite_create("chimera");
        TCase *tc = h_tcase("chimera");

        tcase_add_test(tc, fifty_chimera_tasks_all_succeed);
        tcase_add_test(tc, guardian_rejection_loops_back_to_code_implementation_then_completes);
        tcase_add_test(tc, failed_validation_loops_back_to_code_implementation_then_completes);
        tcase_add_test(tc, missing_target_url_fails_naming_the_field);
        tcase_add_test(tc, failing_deployment_ends_failed);
        tcase_add_test(tc, transient_agent_error_is_retried_and_resumes_at_its_phase);
        tcase_add_test(tc, hanging_agent_is_killed_at_its_timeout_and_leaves_no_process);
        tcase_add_test(tc, hanging_agent_that_ignores_sigterm_is_killed_with_sigkill);
        tcase_add_test(tc,
                       worker_killed_in_phase_three_resumes_without_rerunning_phases_one_and_two);
        suite_add_tcase(s, tc);
        return s;
}
