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
#include "jscan.h"
#include "suites.h"

static int decode(const char *text, struct frame *f, char *err, size_t errsz)
{
        return frame_decode(text, strlen(text), f, err, errsz);
}

/* Whether the span is exactly s. */
static bool jtext_eq(struct jtext t, const char *s)
{
        return t.p != NULL && t.n == strlen(s) && memcmp(t.p, s, t.n) == 0;
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

/* text is refused with reason in the message, and the frame holds nothing. */
static void assert_refused(const char *text, const char *reason)
{
        struct frame f;
        char err[256] = "";

        ck_assert_msg(decode(text, &f, err, sizeof(err)) < 0, "accepted %s", text);
        ck_assert_ptr_null(f.msg);
        ck_assert_ptr_null(f.texts);
        ck_assert_ptr_null(f.task.payload);
        ck_assert_ptr_null(f.task.workflow);
        ck_assert_msg(strstr(err, reason) != NULL, "%s: got \"%s\"", text, err);
}

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

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i].text, bad[i].reason);
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

#define TASK_FRAME(payload, state, def, open)                                                      \
        "{\"type\":\"task\",\"id\":7,\"attempt\":2,\"workflow\":\"w\\u00e9\",\"trace_id\":\"t1\"," \
        "\"payload\":" payload ",\"state\":" state ",\"definition\":" def                          \
        ",\"agents\":{\"a\":{\"argv\":[\"x\"]}}" open "}"

/* The worker's task: scalars decoded, payload and checkpoint trees, texts as spans of its copy. */
START_TEST(a_task_frame_decodes_into_fields)
{
        const char *text = TASK_FRAME("{\"n\":[1,2]}", "{\"phase\":\"p\"}", "{\"initial\":\"p\"}",
                                      ",\"open_agents\":[\"a\"]");
        struct frame f;
        char err[256];

        ck_assert_msg(decode(text, &f, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(f.type, FRAME_TASK);
        ck_assert_ptr_null(f.msg);
        ck_assert_int_eq(f.task.id, 7);
        ck_assert_int_eq(f.task.attempt, 2);
        ck_assert_str_eq(f.task.workflow, "w\xc3\xa9");
        ck_assert_str_eq(f.task.trace_id, "t1");
        ck_assert_int_eq(
            json_integer_value(json_array_get(json_object_get(f.task.payload, "n"), 1)), 2);
        ck_assert_str_eq(json_string_value(json_object_get(f.task.state, "phase")), "p");
        ck_assert(jtext_eq(f.task.definition, "{\"initial\":\"p\"}"));
        ck_assert(jtext_eq(f.task.agents, "{\"a\":{\"argv\":[\"x\"]}}"));
        ck_assert(jtext_eq(f.task.open_agents, "[\"a\"]"));
        /* The spans point into the frame's own copies, not the caller's buffer. */
        ck_assert_ptr_eq(f.task.definition.p, f.texts);
        ck_assert(f.task.agents.p < text || f.task.agents.p >= text + strlen(text));
        frame_clear(&f);

        /* A null checkpoint is none; open_agents may be absent. */
        ck_assert_msg(decode(TASK_FRAME("7", "null", "{}", ""), &f, err, sizeof(err)) == 0, "%s",
                      err);
        ck_assert_ptr_null(f.task.state);
        ck_assert_int_eq(json_integer_value(f.task.payload), 7);
        ck_assert_ptr_null(f.task.open_agents.p);
        frame_clear(&f);
        frame_clear(&f); /* safe twice */
}
END_TEST

START_TEST(a_bad_task_frame_is_refused_with_a_reason)
{
        struct {
                const char *text, *reason;
        } bad[] = {
            {TASK_FRAME("{\"k\":1,\"k\":2}", "null", "{}", ""), "duplicate object key"},
            {TASK_FRAME("{}", "{\"p\":1,\"p\":1}", "{}", ""), "duplicate object key"},
            {TASK_FRAME("{}", "null", "{}", ",\"payload\":{}"), "duplicate object key"},
            {TASK_FRAME("{}", "[]", "{}", ""), "\"state\" has the wrong type"},
            {TASK_FRAME("{}", "null", "[]", ""), "\"definition\" has the wrong type"},
            {TASK_FRAME("{}", "null", "{}", ",\"open_agents\":{}"),
             "\"open_agents\" has the wrong type"},
            {TASK_FRAME("{}", "null", "{\"a\":\"\\ud800\"}", ""), "not JSON"},
            {TASK_FRAME("{}", "null", "{}", ",\"x\":1e999"), "not JSON"},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i].text, bad[i].reason);
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

static int report(const char *text, struct report *r, char *err, size_t errsz)
{
        return frame_decode_report(text, strlen(text), r, err, errsz);
}

/* A span as a NUL-terminated string, for comparisons. */
static const char *span(struct jtext t)
{
        static char buf[4][256];
        static int next;
        char *b = buf[next++ % 4];

        snprintf(b, sizeof(buf[0]), "%.*s", t.p != NULL ? (int)t.n : 6,
                 t.p != NULL ? t.p : "(none)");
        return b;
}

/* chimerad's decoder: the fields as spans of the body, checked as frame_decode() checks them. */
START_TEST(worker_frames_decode_in_place)
{
        const char *fin = " {\"type\":\"progress\",\"id\":12,\"attempt\":3,\"phase\":\"p\\u00e9\","
                          "\"event\":\"finished\",\"outcome\":\"success\",\"next\":null,"
                          "\"duration_ms\":7,\"error\":{\"x\":[1,2]},\"stderr\":\"e\","
                          "\"agent\":\"a\",\"fault\":true,\"started\":true,\"unknown\":[{}],"
                          "\"state\":{\"phase\":\"q\",\"results\":{}},\"usage\":{\"wall_ms\":5},"
                          "\"end\":\"not an object\"} ";
        struct report r;
        char err[256], buf[64];

        ck_assert_msg(report(fin, &r, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(r.type, FRAME_PROGRESS);
        ck_assert_int_eq(r.event, REPORT_FINISHED);
        ck_assert_int_eq(r.id, 12);
        ck_assert_int_eq(r.attempt, 3);
        ck_assert_str_eq(jtext_string(r.phase, buf, sizeof(buf)), "p\xc3\xa9");
        ck_assert_str_eq(span(r.outcome), "\"success\"");
        ck_assert_str_eq(span(r.next), "null");
        ck_assert_str_eq(span(r.duration_ms), "7");
        ck_assert_str_eq(span(r.detail_error), "{\"x\":[1,2]}");
        ck_assert_str_eq(span(r.stderr_tail), "\"e\"");
        ck_assert(jtext_streq(r.agent, "a"));
        ck_assert(r.fault && r.started);
        ck_assert_str_eq(span(r.state), "{\"phase\":\"q\",\"results\":{}}");
        ck_assert_str_eq(span(r.usage), "{\"wall_ms\":5}");
        ck_assert_ptr_null(r.end.p); /* not an object: left out */
        ck_assert_int_eq(jtext_int(jscan_get(r.usage, "wall_ms", NULL)), 5);

        ck_assert_int_eq(report("{\"type\":\"result\",\"id\":1,\"attempt\":2,\"status\":\"retry\","
                                "\"error\":\"it \\\"broke\\\"\",\"state\":[],\"result\":null}",
                                &r, err, sizeof(err)),
                         0);
        ck_assert_int_eq(r.type, FRAME_RESULT);
        ck_assert(jtext_streq(r.status, "retry"));
        ck_assert_str_eq(jtext_string(r.error, buf, sizeof(buf)), "it \"broke\"");
        ck_assert_ptr_null(r.state.p); /* not an object */
        ck_assert_str_eq(span(r.result), "null");

        ck_assert_int_eq(report("{\"pid\":42,\"type\":\"heartbeat\"}", &r, err, sizeof(err)), 0);
        ck_assert_int_eq(r.type, FRAME_HEARTBEAT);
        ck_assert_int_eq(r.pid, 42);
        ck_assert_int_eq(report("{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\","
                                "\"event\":\"spawned\",\"pgid\":99}",
                                &r, err, sizeof(err)),
                         0);
        ck_assert_int_eq(r.event, REPORT_SPAWNED);
        ck_assert_int_eq(r.pgid, 99);
        /* A supervisor's frame decodes to its type; the receiver refuses it. */
        ck_assert_int_eq(report("{\"type\":\"shutdown\"}", &r, err, sizeof(err)), 0);
        ck_assert_int_eq(r.type, FRAME_SHUTDOWN);
}
END_TEST

/* The bodies garbage_is_refused_with_a_reason and its kin refuse, refused here too. */
START_TEST(worker_frames_refused_with_the_same_reasons)
{
        struct {
                const char *text, *reason;
        } bad[] = {
            {"not json", "frame is not JSON"},
            {"", "frame is not JSON"},
            {"[1,2]", "frame is not a JSON object"},
            {"{\"id\":1}", "without a \"type\""},
            {"{\"type\":7}", "without a \"type\""},
            {"{\"type\":\"launch\"}", "unknown frame type \"launch\""},
            {"{\"type\":\"result\",\"id\":1,\"attempt\":1}", "without \"status\""},
            {"{\"type\":\"result\",\"id\":\"1\",\"attempt\":1,\"status\":\"x\"}",
             "\"id\" has the wrong type"},
            {"{\"type\":\"result\",\"id\":1.5,\"attempt\":1,\"status\":\"x\"}",
             "\"id\" has the wrong type"},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":"
             "\"finished\"}",
             "without \"outcome\""},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":"
             "\"finished\",\"outcome\":\"x\",\"state\":[]}",
             "\"state\" has the wrong type"},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"x\"}",
             "unknown event \"x\""},
            {"{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":"
             "\"spawned\",\"pgid\":1}",
             "is not a process group"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"pid\":2}", "duplicate object key \"pid\""},
            {"{\"type\":\"heartbeat\",\"pid\":1} x", "not JSON"},
            {"{\"type\":\"heartbeat\",\"pid\":99999999999999999999}", "too big integer"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":1e999}", "real number overflow"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\\u0000\"}", "\\u0000"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\\ud800\"}", "surrogate"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\\udc00\\ud800\"}", "surrogate"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\xc3\"}", "UTF-8"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\xed\xa0\x80\"}", "UTF-8"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"a\tb\"}", "control character"},
            {"{\"type\":\"heartbeat\",\"pid\":01}", "not JSON"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":[1,]}", "not JSON"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":tru}", "not JSON"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"\\q\"}", "invalid escape"},
            {"{\"type\":\"heartbeat\",\"pid\":1,\"x\":\"abc", "unterminated"},
        };
        struct report r;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                ck_assert_msg(report(bad[i].text, &r, err, sizeof(err)) < 0, "accepted %s",
                              bad[i].text);
                ck_assert_msg(strstr(err, bad[i].reason) != NULL, "%s: got \"%s\"", bad[i].text,
                              err);
                ck_assert_msg(is_json_text(err), "%s: not UTF-8: %s", bad[i].text, err);
        }
}
END_TEST

/* Where jansson draws the line, jscan draws it too. */
START_TEST(jscan_accepts_what_jansson_accepts)
{
        const char *texts[] = {
            "{}",
            " { \"a\" : [ 1 , -0 , 0.5e-3 , 1E+2 , true , false , null , \"\" ] } ",
            "{\"n\":9223372036854775807,\"m\":-9223372036854775808}",
            "{\"n\":9223372036854775808}",
            "{\"n\":-9223372036854775809}",
            "{\"r\":1.7976931348623157e308}",
            "{\"r\":1.8e308}",
            "{\"r\":1e-400}",
            "{\"s\":\"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t\"}",
            "{\"s\":\"\\uD83D\"}",
            "{\"s\":\"\\ude00\"}",
            "{\"s\":\"\xf0\x9f\x98\x80\"}",
            "{\"s\":\"\xf4\x90\x80\x80\"}",
            "{\"s\":\"\xc0\xaf\"}",
            "{\"s\":\"\x7f\"}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{,}",
            "{\"a\":.5}",
            "{\"a\":5.}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":+1}",
            "{\"a\":nul}",
            "{\"a\":[}",
            "{\"a\":1}}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":1}\n\t\r ",
        };

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                json_error_t e;
                json_t *v = json_loadb(texts[i], strlen(texts[i]), 0, &e);
                struct report r;
                char err[256];
                /* As an unknown member of a heartbeat, so that only the JSON decides. */
                char body[512];
                const char *t = texts[i];
                int rc;

                while (*t == ' ')
                        t++;
                snprintf(body, sizeof(body), "{\"type\":\"heartbeat\",\"pid\":1,\"x\":%s}", t);
                rc = report(body, &r, err, sizeof(err));
                if (v == NULL) {
                        ck_assert_msg(rc < 0, "jansson refuses %s (%s), jscan took it", texts[i],
                                      e.text);
                } else {
                        ck_assert_msg(rc == 0, "jansson takes %s, jscan: %s", texts[i], err);
                }
                json_decref(v);
        }
}
END_TEST

START_TEST(nesting_stops_where_janssons_does)
{
        /* jansson counts every value, the frame's own object and the innermost 1
         * included: 2046 arrays reach its limit of 2048 exactly. */
        char *ok = nested("[", "]", JSCAN_MAX_DEPTH - 2);
        char *deep = nested("[", "]", JSCAN_MAX_DEPTH - 1);
        size_t n = strlen(deep) + 64;
        char *body = malloc(n);
        struct report r;
        char err[256];
        json_error_t e;
        json_t *v;

        ck_assert_ptr_nonnull(body);
        snprintf(body, n, "{\"type\":\"heartbeat\",\"pid\":1,\"x\":%s}", ok);
        v = json_loads(body, 0, &e);
        ck_assert_msg(v != NULL, "%s", e.text);
        json_decref(v);
        ck_assert_msg(report(body, &r, err, sizeof(err)) == 0, "%s", err);
        snprintf(body, n, "{\"type\":\"heartbeat\",\"pid\":1,\"x\":%s}", deep);
        ck_assert_ptr_null(json_loads(body, 0, &e));
        ck_assert_int_lt(report(body, &r, err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(strstr(err, "nesting"));
        free(ok);
        free(deep);
        free(body);
}
END_TEST

START_TEST(json_strings_decode_whole_characters)
{
        const char *text = "\"a\\u00e9\\ud83d\\ude00\\n\\\"z\"";
        struct jtext t = {text, strlen(text)};
        char buf[64], small[4];
        char *dup;

        ck_assert_str_eq(jtext_string(t, buf, sizeof(buf)), "a\xc3\xa9\xf0\x9f\x98\x80\n\"z");
        /* "a" and "é" fit in 3 bytes and a NUL; the emoji would not. */
        ck_assert_str_eq(jtext_string(t, small, sizeof(small)), "a\xc3\xa9");
        dup = jtext_strdup(t);
        ck_assert_str_eq(dup, buf);
        free(dup);
        ck_assert(jtext_streq((struct jtext){"\"run\"", 5}, "run"));
        ck_assert(jtext_streq((struct jtext){"\"r\\u0075n\"", 10}, "run"));
        ck_assert(!jtext_streq((struct jtext){"\"runs\"", 6}, "run"));
        ck_assert(!jtext_streq((struct jtext){"7", 1}, "7"));
        ck_assert(!jtext_streq(JTEXT_NONE, "run"));
        ck_assert_int_eq(jtext_int((struct jtext){"-42", 3}), -42);
        ck_assert_ptr_null(jscan_get((struct jtext){"{\"a\":1}", 7}, "b", NULL).p);
}
END_TEST

Suite *frame_suite(void)
{
        Suite *s = suite_create("frame");
        TCase *tc = tcase_create("codec");

        tcase_add_test(tc, valid_frames_of_every_type_decode);
        tcase_add_test(tc, garbage_is_refused_with_a_reason);
        tcase_add_test(tc, a_task_frame_decodes_into_fields);
        tcase_add_test(tc, a_bad_task_frame_is_refused_with_a_reason);
        tcase_add_test(tc, header_length_is_bounded);
        tcase_add_test(tc, encode_refuses_frames_over_the_maximum);
        tcase_add_test(tc, frames_round_trip_over_a_socketpair);
        tcase_add_test(tc, a_truncated_or_oversized_frame_on_a_socket_is_an_error);
        tcase_add_test(tc, a_refusal_is_utf8_whatever_the_body_holds);
        tcase_add_test(tc, a_spawned_frame_must_name_a_real_process_group);
        tcase_add_test(tc, rows_a_worker_could_not_decode_are_found);
        tcase_add_test(tc, worker_frames_decode_in_place);
        tcase_add_test(tc, worker_frames_refused_with_the_same_reasons);
        tcase_add_test(tc, jscan_accepts_what_jansson_accepts);
        tcase_add_test(tc, nesting_stops_where_janssons_does);
        tcase_add_test(tc, json_strings_decode_whole_characters);
        suite_add_tcase(s, tc);
        return s;
}
