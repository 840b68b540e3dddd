/*
 * check_http_proto.c - the POST /api/tasks body decoder: the parameters it
 * makes of a good body, and the 400 sentence for a bad one.  (The answers
 * the database gives are the integration tests' business.)
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http_proto.h"
#include "suites.h"

static void free_params(char *params[HTTP_TASK_NFIELDS])
{
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                free(params[f]);
}

static int parse(const char *body, char *params[HTTP_TASK_NFIELDS], char *err, size_t errsz)
{
        return http_task_parse(body, strlen(body), params, err, errsz);
}

START_TEST(every_member_becomes_a_parameter)
{
        const char *body = "{\"workflow\": \"chimera\", \"payload\": {\"a\": [1, \"\\u00e9\"]},"
                           " \"priority\": 5, \"queue\": \"q\", \"run_at\": \"soon\","
                           " \"max_attempts\": -7}";
        char *params[HTTP_TASK_NFIELDS], err[1024];

        ck_assert_msg(parse(body, params, err, sizeof(err)) == 0, "%s", err);
        ck_assert_str_eq(params[HTTP_TASK_WORKFLOW], "chimera");
        ck_assert_str_eq(params[HTTP_TASK_PAYLOAD], "{\"a\":[1,\"\xc3\xa9\"]}");
        ck_assert_str_eq(params[HTTP_TASK_PRIORITY], "5");
        ck_assert_str_eq(params[HTTP_TASK_QUEUE], "q");
        ck_assert_str_eq(params[HTTP_TASK_RUN_AT], "soon"); /* the database judges it */
        ck_assert_str_eq(params[HTTP_TASK_MAX_ATTEMPTS], "-7");
        free_params(params);
}
END_TEST

START_TEST(null_and_absent_members_get_the_table_default)
{
        char *params[HTTP_TASK_NFIELDS], err[1024];

        ck_assert_int_eq(
            parse("{\"workflow\": \"noop\", \"priority\": null}", params, err, sizeof(err)), 0);
        ck_assert_str_eq(params[HTTP_TASK_WORKFLOW], "noop");
        for (int f = HTTP_TASK_PAYLOAD; f < HTTP_TASK_NFIELDS; f++)
                ck_assert_ptr_null(params[f]);
        free_params(params);
}
END_TEST

START_TEST(a_bad_body_gets_a_sentence_and_no_parameters)
{
        static const struct {
                const char *body, *why;
        } bad[] = {
            {"", "the body is not JSON: it is empty"},
            {"{\"workflow\":", "the body is not JSON: "},
            {"[]", "the body must be a JSON object, not an array"},
            {"{}", "\"workflow\" is required: the name of a workflow"},
            {"{\"workflow\": null}", "\"workflow\" is required"},
            {"{\"workflow\": \"\"}",
             "\"workflow\" must be a non-empty string, not an empty string"},
            {"{\"workflow\": 7}", "\"workflow\" must be a non-empty string, not 7"},
            {"{\"workflow\": \"w\", \"colour\": \"red\"}", "unknown member \"colour\" (known: "},
            {"{\"workflow\": \"w\", \"payload\": [1]}",
             "\"payload\" must be a JSON object, not an array"},
            {"{\"workflow\": \"w\", \"priority\": 9}",
             "\"priority\" must be an integer from 1 to 5, not 9"},
            {"{\"workflow\": \"w\", \"run_at\": 1}", "\"run_at\" must be a string: a timestamp"},
            {"{\"workflow\": \"w\", \"max_attempts\": 2.5}",
             "\"max_attempts\" must be an integer, not a real number"},
            {"{\"workflow\": \"w\", \"workflow\": \"v\"}", "the body is not JSON: duplicate"},
        };
        char *params[HTTP_TASK_NFIELDS], err[1024];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                ck_assert_msg(parse(bad[i].body, params, err, sizeof(err)) < 0, "accepted %s",
                              bad[i].body);
                ck_assert_msg(strncmp(err, bad[i].why, strlen(bad[i].why)) == 0, "%s: got \"%s\"",
                              bad[i].body, err);
                for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                        ck_assert_ptr_null(params[f]);
        }
}
END_TEST

START_TEST(a_long_unknown_member_is_quoted_on_a_character_boundary)
{
        char body[512] = "{\"workflow\": \"w\", \"x", *params[HTTP_TASK_NFIELDS], err[1024];

        for (int i = 0; i < 40; i++)
                strcat(body, "\xc3\xa9");
        strcat(body, "\": 1}");
        ck_assert_int_lt(parse(body, params, err, sizeof(err)), 0);
        /* 64 bytes would end inside the 32nd "é": the quote stops before it. */
        ck_assert_ptr_nonnull(strstr(err, "\"x"));
        ck_assert_ptr_null(strstr(err, "\xc3\"")); /* no lone lead byte before the quote */
}
END_TEST

/* Found by fuzz/fuzz_http_task.c: jansson quoted half of the "\xc3\xa9" after a bad escape. */
START_TEST(a_syntax_error_is_quoted_in_utf8)
{
        char *params[HTTP_TASK_NFIELDS], err[1024];

        ck_assert_int_lt(parse("{\"workflow\":\"w\",\"queue\":\"\\u0041\\ud83d\\\xc3\xa9ude\"}",
                               params, err, sizeof(err)),
                         0);
        ck_assert_msg(strncmp(err, "the body is not JSON: ", 22) == 0, "%s", err);
        ck_assert_msg(is_json_text(err), "not UTF-8: %s", err);
}
END_TEST

Suite *http_proto_suite(void)
{
        Suite *s = suite_create("http_proto");
        TCase *tc = tcase_create("task body");

        tcase_add_test(tc, every_member_becomes_a_parameter);
        tcase_add_test(tc, null_and_absent_members_get_the_table_default);
        tcase_add_test(tc, a_bad_body_gets_a_sentence_and_no_parameters);
        tcase_add_test(tc, a_long_unknown_member_is_quoted_on_a_character_boundary);
        tcase_add_test(tc, a_syntax_error_is_quoted_in_utf8);
        suite_add_tcase(s, tc);
        return s;
}
