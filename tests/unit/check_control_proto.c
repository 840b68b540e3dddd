/*
 * check_control_proto.c - the control socket's request decoder: what
 * control_parse_request() accepts, and the sentence it answers otherwise.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "control_proto.h"
#include "suites.h"

static int parse(const char *line, struct control_request *req, char *err, size_t errsz)
{
        return control_parse_request(line, strlen(line), req, err, errsz);
}

START_TEST(every_command_is_recognised)
{
        static const struct {
                const char *line;
                enum control_cmd cmd;
        } ok[] = {
            {"{\"cmd\":\"status\"}", CONTROL_STATUS},
            {"{\"cmd\":\"workers\"}", CONTROL_WORKERS},
            {"{\"cmd\":\"reload\"}", CONTROL_RELOAD},
            {"{\"cmd\":\"ping\", \"extra\": [1, 2]}", CONTROL_PING},
            {"{\"cmd\":\"cancel\",\"id\":42}", CONTROL_CANCEL},
        };
        struct control_request req;
        char err[256];

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                ck_assert_msg(parse(ok[i].line, &req, err, sizeof(err)) == 0, "%s: %s", ok[i].line,
                              err);
                ck_assert_int_eq(req.cmd, ok[i].cmd);
        }
        ck_assert_int_eq(req.id, 42);
}
END_TEST

START_TEST(a_bad_request_gets_a_sentence)
{
        static const struct {
                const char *line, *why;
        } bad[] = {
            {"status", "request is not a JSON object: "},
            {"[\"status\"]", "request is not a JSON object"},
            {"{}", "request has no \"cmd\" string"},
            {"{\"cmd\": 1}", "request has no \"cmd\" string"},
            {"{\"cmd\":\"launch\"}", "unknown command \"launch\""},
            {"{\"cmd\":\"cancel\"}", "cancel needs an \"id\", a positive integer"},
            {"{\"cmd\":\"cancel\",\"id\":0}", "cancel needs an \"id\", a positive integer"},
            {"{\"cmd\":\"cancel\",\"id\":\"7\"}", "cancel needs an \"id\", a positive integer"},
        };
        struct control_request req;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                ck_assert_msg(parse(bad[i].line, &req, err, sizeof(err)) < 0, "accepted %s",
                              bad[i].line);
                ck_assert_msg(strncmp(err, bad[i].why, strlen(bad[i].why)) == 0, "%s: got \"%s\"",
                              bad[i].line, err);
        }
}
END_TEST

START_TEST(the_line_need_not_be_nul_terminated)
{
        const char line[] = "{\"cmd\":\"ping\"}garbage";
        struct control_request req;
        char err[256];

        ck_assert_int_eq(control_parse_request(line, 14, &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.cmd, CONTROL_PING);
}
END_TEST

/* Found by fuzz/fuzz_control.c: the refusal must fit in the JSON reply. */
START_TEST(a_refusal_is_utf8_whatever_the_line_holds)
{
        char longcmd[200] = "{\"cmd\":\"x";
        const char *lines[] = {"{\"c\\u\xc3\xa9ng\"}", longcmd};
        struct control_request req;
        char err[256];

        for (int i = 0; i < 40; i++)
                strcat(longcmd, "\xc3\xa9");
        strcat(longcmd, "\"}");
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                ck_assert_int_lt(parse(lines[i], &req, err, sizeof(err)), 0);
                ck_assert_msg(is_json_text(err), "line %zu: not UTF-8: %s", i, err);
        }
        ck_assert_ptr_nonnull(strstr(err, "unknown command \"x\xc3\xa9"));
}
END_TEST

/* Lines are read in chunks, so a whole line past the bound may arrive at once. */
START_TEST(a_request_past_the_bound_is_refused_unread)
{
        size_t len = CONTROL_MAX_LINE + 1;
        char *line = malloc(len);
        struct control_request req;
        char err[256];

        ck_assert_ptr_nonnull(line);
        memset(line, ' ', len);
        memcpy(line, "{\"cmd\":\"ping\"}", 14);
        ck_assert_int_lt(control_parse_request(line, len, &req, err, sizeof(err)), 0);
        ck_assert_str_eq(err, "request too long");
        ck_assert_int_eq(control_parse_request(line, len - 1, &req, err, sizeof(err)), 0);
        free(line);
}
END_TEST

Suite *control_proto_suite(void)
{
        Suite *s = suite_create("control_proto");
        TCase *tc = tcase_create("requests");

        tcase_add_test(tc, every_command_is_recognised);
        tcase_add_test(tc, a_bad_request_gets_a_sentence);
        tcase_add_test(tc, the_line_need_not_be_nul_terminated);
        tcase_add_test(tc, a_refusal_is_utf8_whatever_the_line_holds);
        tcase_add_test(tc, a_request_past_the_bound_is_refused_unread);
        suite_add_tcase(s, tc);
        return s;
}
