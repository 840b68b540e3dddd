/*
 * check_agent_proto.c - the agent protocol: how an exit status, a timeout
 * and what an agent printed become a phase outcome; why a run ended (the
 * limits) and what it used.
 */
#include <check.h>
#include <signal.h>
#include <string.h>

#include "agent_proto.h"
#include "suites.h"
#include "util.h"

#define EXITED(code) ((code) << 8)
#define KILLED(sig)  (sig)

static struct agent_result run(int status, const char *out, const char *err)
{
        struct agent_exit x = {.agent = "guardian",
                               .wait_status = status,
                               .timeout_ms = 300000,
                               .max_output = 1024,
                               .out = out,
                               .outlen = strlen(out),
                               .err_tail = err};
        struct agent_result r;

        agent_interpret(&x, &r);
        return r;
}

START_TEST(exit_0_with_an_object_is_success_and_keeps_the_answer)
{
        struct agent_result r = run(EXITED(0), "{\"tests\": 3}\n", "");

        ck_assert_int_eq(r.outcome, AGENT_SUCCESS);
        ck_assert_int_eq(json_integer_value(json_object_get(r.result, "tests")), 3);
        json_decref(r.result);
        r = run(EXITED(0), "{\"status\":\"passed\"}", "");
        ck_assert_int_eq(r.outcome, AGENT_SUCCESS);
        json_decref(r.result);
}
END_TEST

START_TEST(a_status_other_than_success_is_a_phase_failure_with_its_reason)
{
        struct agent_result r =
            run(EXITED(0), "{\"status\":\"rejected\",\"reason\":\"no tests\"}", "");

        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_str_eq(r.error, "rejected: no tests");
        ck_assert_ptr_nonnull(r.result);
        json_decref(r.result);
        r = run(EXITED(0), "{\"status\":\"failed\",\"error\":\"boom\",\"reason\":\"x\"}", "");
        ck_assert_str_eq(r.error, "failed: boom");
        json_decref(r.result);
        r = run(EXITED(0), "{\"status\":\"meh\"}", "");
        ck_assert_str_eq(r.error, "agent guardian answered status meh");
        json_decref(r.result);
}
END_TEST

START_TEST(exit_75_is_transient)
{
        struct agent_result r = run(EXITED(75), "", "database busy\n");

        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        ck_assert_str_eq(r.error, "agent guardian asked to be retried (exit 75): database busy");
        ck_assert_ptr_null(r.result);
}
END_TEST

START_TEST(other_exits_fail_with_the_last_stderr_line)
{
        struct agent_result r = run(EXITED(3), "", "starting\nreview failed: 2 issues\n\n");

        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_str_eq(r.error, "agent guardian exited with status 3: review failed: 2 issues");
}
END_TEST

START_TEST(output_that_is_not_one_json_object_fails_clearly)
{
        struct agent_result r = run(EXITED(0), "", "");

        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_ptr_nonnull(strstr(r.error, "printed nothing"));
        r = run(EXITED(0), "hello world", "");
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_ptr_nonnull(strstr(r.error, "did not answer one JSON object"));
        r = run(EXITED(0), "[1, 2]", "");
        ck_assert_ptr_nonnull(strstr(r.error, "not an object"));
        r = run(EXITED(0), "{\"a\":1} {\"b\":2}", "");
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_ptr_null(r.result);
}
END_TEST

START_TEST(timeout_and_crashes_are_transient)
{
        struct agent_exit x = {.agent = "coder",
                               .timed_out = true,
                               .timeout_ms = 1500,
                               .wait_status = KILLED(SIGTERM),
                               .err_tail = ""};
        struct agent_result r;

        agent_interpret(&x, &r);
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        ck_assert_str_eq(r.error, "agent coder timed out after 1.5s and was killed");
        r = run(KILLED(SIGSEGV), "", "");
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        ck_assert_ptr_nonnull(strstr(r.error, "killed by signal 11"));
}
END_TEST

START_TEST(too_much_output_and_exec_failures_are_phase_failures)
{
        struct agent_exit x = {.agent = "coder",
                               .overflow = true,
                               .max_output = 1048576,
                               .wait_status = KILLED(SIGKILL),
                               .err_tail = ""};
        struct agent_result r;

        agent_interpret(&x, &r);
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_str_eq(r.error, "agent coder printed more than 1048576 bytes on stdout");
        x = (struct agent_exit){.agent = "coder", .exec_errno = 2, .err_tail = ""};
        agent_interpret(&x, &r);
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_str_eq(r.error, "agent coder cannot be started: No such file or directory");
}
END_TEST

/* A run that ended with status, with limits and usage as given. */
static struct agent_result run_limited(int status, struct run_limits lim, struct agent_usage use,
                                       const char *err)
{
        struct agent_exit x = {.agent = "hog",
                               .wait_status = status,
                               .timeout_ms = 300000,
                               .max_output = 1024,
                               .out = "",
                               .err_tail = err,
                               .limits = lim,
                               .usage = use};
        struct agent_result r;

        agent_interpret(&x, &r);
        return r;
}

START_TEST(sigxcpu_under_a_cpu_limit_fails_the_phase_with_the_cpu_reason)
{
        struct run_limits lim = {.cpu_ms = 1000};
        struct agent_usage use = {.cpu_user_ms = 990, .cpu_sys_ms = 10, .max_rss_kb = 1500};
        struct agent_result r = run_limited(KILLED(SIGXCPU), lim, use, "");

        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert(r.fault);
        ck_assert_int_eq(r.cause, CAUSE_CPU_LIMIT);
        ck_assert_str_eq(r.error, "agent hog killed: CPU limit (1s; used 1s; signal SIGXCPU)");
        ck_assert_int_eq(r.signal, SIGXCPU);
        ck_assert_int_eq(r.exit_status, -1);
}
END_TEST

START_TEST(sigkill_past_the_cpu_limit_is_the_cpu_limit_but_not_before_it)
{
        struct run_limits lim = {.cpu_ms = 1000};
        struct agent_usage past = {.cpu_user_ms = 1800, .cpu_sys_ms = 200};
        struct agent_usage before = {.cpu_user_ms = 300};
        struct agent_result r = run_limited(KILLED(SIGKILL), lim, past, "");

        /* It ignored SIGXCPU and met the hard limit, a second later. */
        ck_assert_int_eq(r.cause, CAUSE_CPU_LIMIT);
        ck_assert_str_eq(r.error, "agent hog killed: CPU limit (1s; used 2s; signal SIGKILL)");
        r = run_limited(KILLED(SIGKILL), lim, before, "");
        ck_assert_int_eq(r.cause, CAUSE_SIGNAL);
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        /* Without a CPU limit SIGXCPU is a signal like any other. */
        r = run_limited(KILLED(SIGXCPU), (struct run_limits){0}, past, "");
        ck_assert_int_eq(r.cause, CAUSE_SIGNAL);
}
END_TEST

START_TEST(a_failure_near_the_memory_limit_is_the_memory_limit)
{
        struct run_limits lim = {.memory = 64 * 1024 * 1024};
        struct agent_usage high = {.max_rss_kb = 62000}, low = {.max_rss_kb = 9000};
        struct agent_result r = run_limited(EXITED(1), lim, high, "Out of memory!\n");

        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_int_eq(r.cause, CAUSE_MEMORY_LIMIT);
        ck_assert_str_eq(r.error, "agent hog killed: memory limit (64MB; peak RSS 60.5MB; "
                                  "exited with status 1): Out of memory!");
        ck_assert_int_eq(r.exit_status, 1);
        r = run_limited(KILLED(SIGSEGV), lim, high, "");
        ck_assert_int_eq(r.cause, CAUSE_MEMORY_LIMIT);
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_ptr_nonnull(strstr(r.error, "signal SIGSEGV"));
        /* Far from the limit a crash is a crash, and an exit an exit. */
        r = run_limited(KILLED(SIGSEGV), lim, low, "");
        ck_assert_int_eq(r.cause, CAUSE_SIGNAL);
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        r = run_limited(EXITED(1), lim, low, "");
        ck_assert_int_eq(r.cause, CAUSE_EXIT);
        /* Success and exit 75 mean what they say, however much memory it took. */
        r = run_limited(EXITED(75), lim, high, "");
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        ck_assert_int_eq(r.cause, CAUSE_EXIT);
}
END_TEST

START_TEST(an_oom_kill_the_cgroup_counted_is_the_memory_limit)
{
        struct agent_exit x = {.agent = "hog",
                               .wait_status = KILLED(SIGKILL),
                               .err_tail = "",
                               .limits = {.memory = 128 * 1024 * 1024},
                               .usage = {.max_rss_kb = 131072},
                               .oom_killed = true};
        struct agent_result r;

        ck_assert_int_eq(agent_cause_of(&x), CAUSE_MEMORY_LIMIT);
        agent_interpret(&x, &r);
        ck_assert_str_eq(r.error,
                         "agent hog killed: memory limit (128MB; peak RSS 128MB; OOM kill)");
        ck_assert(r.oom_killed);
        json_t *end = agent_end_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(end, "cause")), "memory_limit");
        ck_assert_str_eq(json_string_value(json_object_get(end, "signal")), "SIGKILL");
        ck_assert(json_is_true(json_object_get(end, "oom_kill")));
        ck_assert_ptr_null(json_object_get(end, "exit"));
        json_decref(end);
}
END_TEST

START_TEST(a_failure_after_a_refused_fork_is_the_process_limit)
{
        struct agent_exit x = {.agent = "bomb",
                               .wait_status = EXITED(2),
                               .err_tail = "sh: 1: Cannot fork\n",
                               .limits = {.processes = 20},
                               .fork_refused = true};
        struct agent_result r;

        agent_interpret(&x, &r);
        ck_assert_int_eq(r.cause, CAUSE_PROCESS_LIMIT);
        ck_assert_int_eq(r.outcome, AGENT_FAILURE);
        ck_assert_str_eq(r.error, "agent bomb failed at its process limit (20): exited with "
                                  "status 2: sh: 1: Cannot fork");
        /* An agent that coped with the refusal succeeds. */
        x.wait_status = EXITED(0);
        x.out = "{}";
        x.outlen = 2;
        agent_interpret(&x, &r);
        ck_assert_int_eq(r.outcome, AGENT_SUCCESS);
        ck_assert_int_eq(r.cause, CAUSE_EXIT);
        json_decref(r.result);
}
END_TEST

START_TEST(a_timeout_that_needed_sigkill_says_so)
{
        struct agent_exit x = {.agent = "stubborn",
                               .timed_out = true,
                               .timeout_ms = 500,
                               .wait_status = KILLED(SIGKILL),
                               .limits = {.cpu_ms = 1000},
                               .usage = {.cpu_user_ms = 5000},
                               .err_tail = ""};
        struct agent_result r;

        agent_interpret(&x, &r);
        /* The timeout comes first, whatever else is true. */
        ck_assert_int_eq(r.cause, CAUSE_TIMEOUT);
        ck_assert_int_eq(r.outcome, AGENT_TRANSIENT);
        ck_assert_str_eq(r.error, "agent stubborn timed out after 500ms and was killed "
                                  "(with SIGKILL: it outlived SIGTERM)");
}
END_TEST

START_TEST(limits_are_read_from_the_agent_definition)
{
        json_t *def = json_loads("{\"memory\": \"64MB\", \"cpu\": \"1.5s\", \"files\": 64, "
                                 "\"processes\": 20, \"output\": \"2KB\"}",
                                 0, NULL);
        struct run_limits l;

        /* "1.5s" is no duration the config accepts: ignored rather than misread. */
        agent_limits_parse(def, &l);
        ck_assert_int_eq(l.memory, 64 * 1024 * 1024);
        ck_assert_int_eq(l.cpu_ms, 0);
        ck_assert_int_eq(l.files, 64);
        ck_assert_int_eq(l.processes, 20);
        ck_assert_int_eq(l.output, 2048);
        json_object_set_new(def, "cpu", json_string("2s"));
        agent_limits_parse(def, &l);
        ck_assert_int_eq(l.cpu_ms, 2000);
        json_decref(def);
        agent_limits_parse(NULL, &l);
        ck_assert_int_eq(l.memory + l.cpu_ms + l.files + l.processes + l.output, 0);
}
END_TEST

START_TEST(usage_is_reported_per_run_and_summed_per_task)
{
        struct agent_result a = {
            .cause = CAUSE_EXIT,
            .exit_status = 0,
            .usage = {.cpu_user_ms = 120, .cpu_sys_ms = 30, .max_rss_kb = 5000, .wall_ms = 400}};
        struct agent_result b = {.cause = CAUSE_NONE, .exit_status = -1, .usage = {.wall_ms = 50}};
        json_t *total = json_object(), *u = agent_usage_json(&a), *end = agent_end_json(&a);

        ck_assert_int_eq(json_integer_value(json_object_get(u, "cpu_user_ms")), 120);
        ck_assert_int_eq(json_integer_value(json_object_get(u, "max_rss_kb")), 5000);
        ck_assert_str_eq(json_string_value(json_object_get(end, "cause")), "exit");
        ck_assert_int_eq(json_integer_value(json_object_get(end, "exit")), 0);
        json_decref(u);
        json_decref(end);
        /* A built-in has no process: its wall time only, and no end. */
        u = agent_usage_json(&b);
        ck_assert_int_eq(json_object_size(u), 1);
        ck_assert_ptr_null(agent_end_json(&b));
        json_decref(u);

        agent_usage_add(total, &a);
        agent_usage_add(total, &b);
        a.usage.max_rss_kb = 3000;
        agent_usage_add(total, &a);
        ck_assert_int_eq(json_integer_value(json_object_get(total, "phases")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(total, "cpu_user_ms")), 240);
        ck_assert_int_eq(json_integer_value(json_object_get(total, "cpu_sys_ms")), 60);
        ck_assert_int_eq(json_integer_value(json_object_get(total, "wall_ms")), 850);
        ck_assert_int_eq(json_integer_value(json_object_get(total, "max_rss_kb")), 5000);
        json_decref(total);
        ck_assert_str_eq(agent_cause_name(CAUSE_PROCESS_LIMIT), "process_limit");
        ck_assert_str_eq(agent_cause_name((enum agent_cause)99), "unknown");
}
END_TEST

START_TEST(durations_in_messages_read_naturally)
{
        char buf[32];

        util_format_ms(250, buf, sizeof(buf));
        ck_assert_str_eq(buf, "250ms");
        util_format_ms(3000, buf, sizeof(buf));
        ck_assert_str_eq(buf, "3s");
        util_format_ms(300000, buf, sizeof(buf));
        ck_assert_str_eq(buf, "5m");
        util_format_ms(7200000, buf, sizeof(buf));
        ck_assert_str_eq(buf, "2h");
        util_format_ms(90000, buf, sizeof(buf));
        ck_assert_str_eq(buf, "90s");
        util_format_ms(7 * 86400000LL, buf, sizeof(buf));
        ck_assert_str_eq(buf, "7d");
        util_format_ms(36 * 3600000LL, buf, sizeof(buf));
        ck_assert_str_eq(buf, "36h");
}
END_TEST

Suite *agent_proto_suite(void)
{
        Suite *s = suite_create("agent_proto");
        TCase *tc = tcase_create("interpret");

        tcase_add_test(tc, exit_0_with_an_object_is_success_and_keeps_the_answer);
        tcase_add_test(tc, a_status_other_than_success_is_a_phase_failure_with_its_reason);
        tcase_add_test(tc, exit_75_is_transient);
        tcase_add_test(tc, other_exits_fail_with_the_last_stderr_line);
        tcase_add_test(tc, output_that_is_not_one_json_object_fails_clearly);
        tcase_add_test(tc, timeout_and_crashes_are_transient);
        tcase_add_test(tc, too_much_output_and_exec_failures_are_phase_failures);
        tcase_add_test(tc, durations_in_messages_read_naturally);
        tcase_add_test(tc, sigxcpu_under_a_cpu_limit_fails_the_phase_with_the_cpu_reason);
        tcase_add_test(tc, sigkill_past_the_cpu_limit_is_the_cpu_limit_but_not_before_it);
        tcase_add_test(tc, a_failure_near_the_memory_limit_is_the_memory_limit);
        tcase_add_test(tc, an_oom_kill_the_cgroup_counted_is_the_memory_limit);
        tcase_add_test(tc, a_failure_after_a_refused_fork_is_the_process_limit);
        tcase_add_test(tc, a_timeout_that_needed_sigkill_says_so);
        tcase_add_test(tc, limits_are_read_from_the_agent_definition);
        tcase_add_test(tc, usage_is_reported_per_run_and_summed_per_task);
        suite_add_tcase(s, tc);
        return s;
}
