/*
 * check_agent_proto.c - the agent protocol: how an exit status, a timeout
 * and what an agent printed become a phase outcome.
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
        suite_add_tcase(s, tc);
        return s;
}
