/* check_util.c - durations and sizes as the config spells them; UTF-8 repairs. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "jbuf.h"
#include "suites.h"
#include "util.h"

START_TEST(durations_with_units_parse_to_milliseconds)
{
        int64_t ms;

        ck_assert_int_eq(util_parse_duration("200ms", &ms), 0);
        ck_assert_int_eq(ms, 200);
        ck_assert_int_eq(util_parse_duration("20s", &ms), 0);
        ck_assert_int_eq(ms, 20000);
        ck_assert_int_eq(util_parse_duration("5m", &ms), 0);
        ck_assert_int_eq(ms, 300000);
        ck_assert_int_eq(util_parse_duration("1h", &ms), 0);
        ck_assert_int_eq(ms, 3600000);
        ck_assert_int_eq(util_parse_duration("7d", &ms), 0);
        ck_assert_int_eq(ms, 7LL * 24 * 3600000);
        ck_assert_int_eq(util_parse_duration("0", &ms), 0);
        ck_assert_int_eq(ms, 0);
}
END_TEST

START_TEST(durations_without_unit_or_with_junk_are_refused)
{
        int64_t ms;
        const char *bad[] = {
            "", "5", "-5s", "5 s", "5sec", "s", "1.5s", "5s ", "99999999999999999999d"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(util_parse_duration(bad[i], &ms) < 0, "accepted \"%s\"", bad[i]);
        ck_assert_int_lt(util_parse_duration(NULL, &ms), 0);
}
END_TEST

START_TEST(sizes_use_powers_of_1024)
{
        int64_t b;

        ck_assert_int_eq(util_parse_size("512B", &b), 0);
        ck_assert_int_eq(b, 512);
        ck_assert_int_eq(util_parse_size("64KB", &b), 0);
        ck_assert_int_eq(b, 65536);
        ck_assert_int_eq(util_parse_size("16MB", &b), 0);
        ck_assert_int_eq(b, 16 * 1024 * 1024);
        ck_assert_int_eq(util_parse_size("1GiB", &b), 0);
        ck_assert_int_eq(b, 1024LL * 1024 * 1024);
        ck_assert_int_lt(util_parse_size("16", &b), 0);
        ck_assert_int_lt(util_parse_size("16mb", &b), 0);
        ck_assert_int_lt(util_parse_size("9223372036854775807GB", &b), 0);
}
END_TEST

START_TEST(sizes_in_messages_read_naturally)
{
        char buf[32];

        util_format_size(900, buf, sizeof(buf));
        ck_assert_str_eq(buf, "900B");
        util_format_size(64 * 1024 * 1024, buf, sizeof(buf));
        ck_assert_str_eq(buf, "64MB");
        util_format_size(62316 * 1024, buf, sizeof(buf));
        ck_assert_str_eq(buf, "60.9MB");
        util_format_size(1536, buf, sizeof(buf));
        ck_assert_str_eq(buf, "1.5KB");
        util_format_size(2LL * 1024 * 1024 * 1024, buf, sizeof(buf));
        ck_assert_str_eq(buf, "2GB");
}
END_TEST

START_TEST(sanitize_keeps_valid_utf8_and_replaces_every_bad_byte)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"plain ascii", "plain ascii"},
            {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
            {"caf\xe9", "caf?"},          /* Latin-1 */
            {"cut \xc3", "cut ?"},        /* a character cut short at the end */
            {"cut \xe2\x82", "cut ??"},   /* ... of three bytes */
            {"\xa9 tail", "? tail"},      /* a tail starting mid-character */
            {"\xc0\xaf", "??"},           /* overlong "/" */
            {"\xe0\x80\xaf", "???"},      /* overlong, three bytes */
            {"\xed\xa0\x80", "???"},      /* a surrogate */
            {"\xf4\x90\x80\x80", "????"}, /* past U+10FFFF */
            {"\xff\xfe", "??"},
            {"\xc3\xa9\xc3", "\xc3\xa9?"},
        };
        char buf[64];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                strcpy(buf, cases[i].in);
                util_utf8_sanitize(buf);
                ck_assert_msg(strcmp(buf, cases[i].out) == 0, "case %zu: got \"%s\"", i, buf);
        }
}
END_TEST

START_TEST(utf8_cut_never_ends_inside_a_character)
{
        const char *e_acute = "a\xc3\xa9" /* then */ "b";

        ck_assert_int_eq(util_utf8_cut("abc", 2), 2);
        ck_assert_int_eq(util_utf8_cut("abc", 10), 3);
        ck_assert_int_eq(util_utf8_cut(e_acute, 2), 1);
        ck_assert_int_eq(util_utf8_cut(e_acute, 3), 3);
        ck_assert_int_eq(util_utf8_cut("\xf0\x9f\x98\x80", 3), 0);
}
END_TEST

/* util_json_text: valid UTF-8 as it is; each stray byte as U+FFFD, never no string. */
START_TEST(any_bytes_become_a_json_string)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"noop\"; DROP TABLE x; --", "noop\"; DROP TABLE x; --"},
            {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
            {"a\xff"
             "b",
             "a\xef\xbf\xbd"
             "b"},
            {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"}, /* "%.Ns" inside a character */
            {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},         /* overlong "/" */
            {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a UTF-16 surrogate */
            {"\xf4\x90\x80\x80",
             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* past U+10FFFF */
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *j = util_json_text(cases[i].in);
                ck_assert_msg(j != NULL, "case %zu", i);
                ck_assert_str_eq(json_string_value(j), cases[i].out);
                json_decref(j);
        }
        ck_assert_ptr_null(util_json_text(NULL));
}
END_TEST

/* Parses the text a jbuf holds, which must be one JSON value. */
static json_t *jbuf_parse(const struct jbuf *b)
{
        json_error_t e;
        json_t *v = json_loadb(b->p, b->len, JSON_DECODE_ANY, &e);

        ck_assert_msg(v != NULL, "not JSON (%s): %.*s", e.text, (int)b->len, b->p);
        return v;
}

START_TEST(jbuf_strings_are_always_valid_json)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"", ""},
            {"plain", "plain"},
            {"q\"b\\s/", "q\"b\\s/"},
            {"\n\t\r\x01\x1f\x7f", "\n\t\r\x01\x1f\x7f"},
            {"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
            {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},
            {"\xff\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
            {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        };
        struct jbuf b = {0};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *v;
                jbuf_reset(&b);
                jbuf_str(&b, cases[i].in);
                v = jbuf_parse(&b);
                ck_assert_msg(json_is_string(v), "case %zu", i);
                ck_assert_str_eq(json_string_value(v), cases[i].out);
                json_decref(v);
        }
        jbuf_free(&b);
}
END_TEST

START_TEST(jbuf_builds_what_jansson_reads_back)
{
        struct jbuf b = {0};
        json_t *inner = json_pack("{s:[i, s, n], s:f}", "a", 1, "x", "r", 1.5), *v;
        char big[3000];

        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        jbuf_raw(&b, NULL, 0); /* an empty jbuf's text, appended to another */
        jbuf_lit(&b, "{\"n\":");
        jbuf_int(&b, INT64_MIN);
        jbuf_lit(&b, ",\"m\":");
        jbuf_int(&b, INT64_MAX);
        jbuf_lit(&b, ",\"t\":");
        jbuf_bool(&b, true);
        jbuf_lit(&b, ",\"f\":");
        jbuf_bool(&b, false);
        jbuf_lit(&b, ",\"null\":");
        jbuf_str(&b, NULL);
        jbuf_lit(&b, ",\"none\":");
        jbuf_json(&b, NULL);
        jbuf_lit(&b, ",\"big\":");
        jbuf_str(&b, big);
        jbuf_lit(&b, ",\"inner\":");
        jbuf_json(&b, inner);
        jbuf_lit(&b, "}");
        v = jbuf_parse(&b);
        ck_assert_int_eq(json_integer_value(json_object_get(v, "n")), INT64_MIN);
        ck_assert_int_eq(json_integer_value(json_object_get(v, "m")), INT64_MAX);
        ck_assert(json_is_true(json_object_get(v, "t")));
        ck_assert(json_is_false(json_object_get(v, "f")));
        ck_assert(json_is_null(json_object_get(v, "null")));
        ck_assert(json_is_null(json_object_get(v, "none")));
        ck_assert_str_eq(json_string_value(json_object_get(v, "big")), big);
        ck_assert(json_equal(json_object_get(v, "inner"), inner));
        json_decref(v);
        json_decref(inner);
        jbuf_reset(&b);
        ck_assert_uint_eq(b.len, 0);
        jbuf_free(&b);
        ck_assert_ptr_null(b.p);
}
END_TEST

Suite *util_suite(void)
{
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, durations_with_units_parse_to_milliseconds);
        tcase_add_test(tc, durations_without_unit_or_with_junk_are_refused);
        tcase_add_test(tc, sizes_use_powers_of_1024);
        tcase_add_test(tc, sizes_in_messages_read_naturally);
        tcase_add_test(tc, sanitize_keeps_valid_utf8_and_replaces_every_bad_byte);
        tcase_add_test(tc, utf8_cut_never_ends_inside_a_character);
        tcase_add_test(tc, any_bytes_become_a_json_string);
        tcase_add_test(tc, jbuf_strings_are_always_valid_json);
        tcase_add_test(tc, jbuf_builds_what_jansson_reads_back);
        suite_add_tcase(s, tc);
        return s;
}
