/*
 * check_frame.c - the socketpair frame codec: what frame_decode() accepts
 * and refuses, and a round trip through a real socketpair.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "suites.h"

static int decode(const char *text, struct frame *f, char *err, size_t errsz)
{
        return frame_decode(text, strlen(text), f, err, errsz);
}

START_TEST(valid_frames_of_every_type_decode)
{
        const char *ok[] = {
            "{\"type\":\"task\",\"id\":1,\"attempt\":1,\"workflow\":\"w\",\"trace_id\":\"t\","
            "\"payload\":{},\"state\":null,\"definition\":{},\"agents\":{}}",
            "{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"started\"}",
            "{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"finished\","
            "\"outcome\":\"success\",\"state\":{}}",
            "{\"type\":\"result\",\"id\":1,\"attempt\":2,\"status\":\"succeeded\"}",
            "{\"type\":\"heartbeat\",\"pid\":42}",
            "{\"type\":\"shutdown\"}",
        };
        enum frame_type types[] = {FRAME_TASK,   FRAME_PROGRESS,  FRAME_PROGRESS,
                                   FRAME_RESULT, FRAME_HEARTBEAT, FRAME_SHUTDOWN};
        struct frame f;
        char err[256];

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                ck_assert_msg(decode(ok[i], &f, err, sizeof(err)) == 0, "%s: %s", ok[i], err);
                ck_assert_int_eq(f.type, types[i]);
                frame_clear(&f);
        }
}
END_TEST

START_TEST(garbage_is_refused_with_a_reason)
{
        struct {
                const char *text, *reason;
        } bad[] = {
            {"not json", "not JSON"},
            {"[1,2]", "not a JSON object"},
            {"{\"id\":1}", "without a \"type\""},
            {"{\"type\":\"launch\"}", "unknown frame type \"launch\""},
            {"{\"type\":\"result\",\"id\":1,\"attempt\":1}", "without \"status\""},
            {"{\"type\":\"task\",\"id\":1,\"attempt\":1,\"workflow\":\"w\",\"trace_id\":\"t\","
             "\"payload\":{},\"state\":null,\"definition\":{}}",
             "without \"agents\""},
            {"{\"type\":\"result\",\"id\":\"1\",\"attempt\":1,\"status\":\"x\"}",
             "\"id\" has the wrong type"},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":"
             "\"finished\"}",
             "without \"outcome\""},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"x\"}",
             "unknown event"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"pid\":2}", "not JSON"},
        };
        struct frame f;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                ck_assert_msg(decode(bad[i].text, &f, err, sizeof(err)) < 0, "accepted %s",
                              bad[i].text);
                ck_assert_ptr_null(f.msg);
                ck_assert_msg(strstr(err, bad[i].reason) != NULL, "%s: got \"%s\"", bad[i].text,
                              err);
        }
}
END_TEST

START_TEST(header_length_is_bounded)
{
        unsigned char zero[4] = {0, 0, 0, 0}, big[4] = {0, 0x10, 0, 1}, ok[4] = {0, 0, 1, 0};
        size_t len;

        ck_assert_int_lt(frame_header_length(zero, 1 << 20, &len), 0);
        ck_assert_int_lt(frame_header_length(big, 1 << 20, &len), 0);
        ck_assert_int_eq(frame_header_length(ok, 1 << 20, &len), 0);
        ck_assert_uint_eq(len, 256);
}
END_TEST

START_TEST(encode_refuses_frames_over_the_maximum)
{
        json_t *msg = json_pack("{s:s, s:s}", "type", "heartbeat", "pad", "0123456789");
        char err[256];
        size_t len;

        ck_assert_ptr_null(frame_encode(msg, 10, &len, err, sizeof(err)));
        ck_assert_ptr_nonnull(strstr(err, "exceeds the maximum"));
        json_decref(msg);
}
END_TEST

START_TEST(frames_round_trip_over_a_socketpair)
{
        int sp[2];
        json_t *msg = json_pack("{s:s, s:i}", "type", "heartbeat", "pid", 7);
        struct frame f;
        char err[256];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        ck_assert_int_eq(frame_write_fd(sp[0], msg, 1024, err, sizeof(err)), 0);
        ck_assert_int_eq(frame_read_fd(sp[1], 1024, &f, err, sizeof(err)), 1);
        ck_assert_int_eq(f.type, FRAME_HEARTBEAT);
        ck_assert_int_eq(json_integer_value(json_object_get(f.msg, "pid")), 7);
        frame_clear(&f);
        close(sp[0]);
        ck_assert_int_eq(frame_read_fd(sp[1], 1024, &f, err, sizeof(err)), 0); /* clean EOF */
        close(sp[1]);
        json_decref(msg);
}
END_TEST

START_TEST(a_truncated_or_oversized_frame_on_a_socket_is_an_error)
{
        int sp[2];
        struct frame f;
        char err[256];
        const char trunc[] = "\0\0\0\x20{\"type\"";
        const char huge[] = "\x7f\0\0\0";

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        ck_assert_int_eq(write(sp[0], trunc, sizeof(trunc) - 1), (ssize_t)sizeof(trunc) - 1);
        close(sp[0]);
        ck_assert_int_eq(frame_read_fd(sp[1], 1024, &f, err, sizeof(err)), -1);
        ck_assert_ptr_nonnull(strstr(err, "truncated"));
        close(sp[1]);

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        ck_assert_int_eq(write(sp[0], huge, 4), 4);
        ck_assert_int_eq(frame_read_fd(sp[1], 1024, &f, err, sizeof(err)), -1);
        ck_assert_ptr_nonnull(strstr(err, "out of range"));
        close(sp[0]);
        close(sp[1]);
}
END_TEST

/* Found by fuzz/fuzz_frame.c: jansson quotes the bytes near a bad escape, "\\\xc3" here. */
START_TEST(a_refusal_is_utf8_whatever_the_body_holds)
{
        char longtype[200] = "{\"type\":\"x", longevent[200];
        const char *bodies[] = {
            "{\"type\":\"progress\",\"outcome\":\"succesu00e\\\xc3\xa9n\"}",
            "{\"c\\u\xc3\xa9ng\"}",
            longtype,
            longevent,
        };
        struct frame f;
        char err[256];

        for (int i = 0; i < 40; i++)
                strcat(longtype, "\xc3\xa9");
        strcat(longtype, "\"}");
        strcpy(longevent, "{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\","
                          "\"event\":\"x");
        for (int i = 0; i < 20; i++)
                strcat(longevent, "\xc3\xa9");
        strcat(longevent, "\"}");
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                ck_assert_int_lt(decode(bodies[i], &f, err, sizeof(err)), 0);
                ck_assert_msg(is_json_text(err), "body %zu: not UTF-8: %s", i, err);
        }
        /* A quote is cut before a character rather than replaced. */
        ck_assert_int_lt(decode(longtype, &f, err, sizeof(err)), 0);
        ck_assert_ptr_null(strchr(err, '?'));
}
END_TEST

#define SPAWNED                                                                                    \
        "{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"spawned\","     \
        "\"pgid\":%s}"

/* chimerad kills the group a spawned frame names: a cast must not pick another one. */
START_TEST(a_spawned_frame_must_name_a_real_process_group)
{
        const char *bad[] = {"0", "1", "-42", "2147483648", "4294968530"}, *good[] = {"2", "4242"};
        char text[256], err[256];
        struct frame f;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), SPAWNED, bad[i]);
                ck_assert_msg(decode(text, &f, err, sizeof(err)) < 0, "accepted pgid %s", bad[i]);
                ck_assert_ptr_nonnull(strstr(err, "is not a process group"));
        }
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                snprintf(text, sizeof(text), SPAWNED, good[i]);
                ck_assert_msg(decode(text, &f, err, sizeof(err)) == 0, "%s: %s", good[i], err);
                frame_clear(&f);
        }
}
END_TEST

static char *nested(const char *open, const char *close, int depth)
{
        size_t lo = strlen(open), lc = strlen(close);
        char *s = calloc((size_t)depth * (lo + lc) + 2, 1), *p = s;

        ck_assert_ptr_nonnull(s);
        for (int i = 0; i < depth; i++, p += lo)
                memcpy(p, open, lo);
        *p++ = '1';
        for (int i = 0; i < depth; i++, p += lc)
                memcpy(p, close, lc);
        return s;
}

static int check(const char *text, char *err, size_t errsz)
{
        return frame_check_json(text, strlen(text), "payload", err, errsz);
}

/* frame_check_json: what jsonb can hold but a worker's jansson cannot decode. */
START_TEST(rows_a_worker_could_not_decode_are_found)
{
        char err[256], *ok = nested("{\"a\":", "}", FRAME_MAX_NESTING);
        char *deep = nested("[", "]", FRAME_MAX_NESTING + 1);

        ck_assert_int_eq(check("{}", err, sizeof(err)), 0);
        ck_assert_int_eq(check("null", err, sizeof(err)), 0);
        ck_assert_msg(check(ok, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(check(deep, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "payload is nested deeper than 1000 levels");
        /* Brackets in strings are text, escaped quotes do not end a string. */
        ck_assert_int_eq(check("{\"a\": \"[[[[\\\"[[[[\", \"b\": [1]}", err, sizeof(err)), 0);
        /* Long numbers that fit, and digits in strings, pass. */
        ck_assert_int_eq(check("{\"n\": 9223372036854775807, \"r\": 0.12345678901234567890123}",
                               err, sizeof(err)),
                         0);
        ck_assert_int_eq(check("{\"s\": \"123456789012345678901234567890\"}", err, sizeof(err)), 0);
        ck_assert_int_eq(check("{\"n\": 123456789012345678901234567890}", err, sizeof(err)), -1);
        ck_assert_msg(strncmp(err, "payload cannot be handed to a worker: too big integer", 53) ==
                          0,
                      "%s", err);
        free(ok);
        free(deep);
}
END_TEST

Suite *frame_suite(void)
{
        Suite *s = suite_create("frame");
        TCase *tc = tcase_create("codec");

        tcase_add_test(tc, valid_frames_of_every_type_decode);
        tcase_add_test(tc, garbage_is_refused_with_a_reason);
        tcase_add_test(tc, header_length_is_bounded);
        tcase_add_test(tc, encode_refuses_frames_over_the_maximum);
        tcase_add_test(tc, frames_round_trip_over_a_socketpair);
        tcase_add_test(tc, a_truncated_or_oversized_frame_on_a_socket_is_an_error);
        tcase_add_test(tc, a_refusal_is_utf8_whatever_the_body_holds);
        tcase_add_test(tc, a_spawned_frame_must_name_a_real_process_group);
        tcase_add_test(tc, rows_a_worker_could_not_decode_are_found);
        suite_add_tcase(s, tc);
        return s;
}
