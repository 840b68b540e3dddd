/*
 * check_jdump.c - jdump() writes the value jansson's own dump writes: what
 * it writes reads back equal, byte for byte the same text as json_dumps()
 * but for the escapes of control characters, whatever the value holds.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "jdump.h"
#include "suites.h"

/* Dumps v with jdump() into a NUL-terminated string the caller frees. */
static char *dump(json_t *v)
{
        struct jbuf b = {0};
        char *s;

        jdump(&b, v);
        s = strndup(b.p, b.len);
        jbuf_free(&b);
        return s;
}

static json_t *load(const char *text)
{
        json_error_t jerr;
        json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

        ck_assert_msg(v != NULL, "%s: %s", text, jerr.text);
        return v;
}

START_TEST(values_read_back_equal_and_as_jansson_writes_them)
{
        static const struct {
                const char *text;
                int same_text; /* no control character: the text is jansson's */
        } cases[] = {
            {"{}", 1},
            {"[]", 1},
            {"null", 1},
            {"true", 1},
            {"false", 1},
            {"0", 1},
            {"-9223372036854775808", 1},
            {"9223372036854775807", 1},
            {"1.5", 1},
            {"1e300", 1},
            {"-0.0", 1},
            {"\"\"", 1},
            {"\"quote \\\" backslash \\\\ slash / caf\\u00e9 \\ud83d\\ude00 \\u2028\"", 1},
            {"\"tab\\t newline\\n cr\\r bs\\b ff\\f unit\\u001f del\\u007f\"", 0},
            {"\"nul \\u0000 inside\"", 1},
            {"{\"phase\":\"complete\",\"transitions\":1,\"results\":{\"run\":{}},"
             "\"usage\":{\"phases\":1,\"cpu_user_ms\":0,\"wall_ms\":3},\"last\":\"run\"}",
             1},
            {"{\"z\":1,\"a\":2,\"m\":[1,\"two\",3.25,null,true,false,{},[]]}", 1},
            {"{\"k\\n\":\"v\",\"k\\u0001\":1}", 0},
            {"[[[[{\"a\":[{\"b\":{}}]}]]]]", 1},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *v = load(cases[i].text), *back;
                char *got = dump(v), *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

                back = load(got);
                ck_assert_msg(json_equal(v, back), "%s wrote %s", cases[i].text, got);
                if (cases[i].same_text)
                        ck_assert_msg(strcmp(got, want) == 0, "%s: %s, jansson %s", cases[i].text,
                                      got, want);
                json_decref(back);
                json_decref(v);
                free(want);
                free(got);
        }
}
END_TEST

/* jansson reads no key with a NUL byte, but json_object_setn() makes one. */
START_TEST(a_key_with_a_nul_byte_is_written_as_jansson_writes_it)
{
        json_t *v = json_object();
        char *got, *want;

        json_object_setn_new(v, "a\0b", 3, json_integer(1));
        json_object_set_new(v, "c", json_stringn("d\0e", 3));
        got = dump(v);
        want = json_dumps(v, JSON_COMPACT);
        ck_assert_str_eq(got, want);
        ck_assert_str_eq(got, "{\"a\\u0000b\":1,\"c\":\"d\\u0000e\"}");
        json_decref(v);
        free(want);
        free(got);
}
END_TEST

START_TEST(null_writes_null_after_what_is_there)
{
        struct jbuf b = {0};

        jbuf_lit(&b, "{\"result\":");
        jdump(&b, NULL);
        jbuf_lit(&b, "}");
        ck_assert_int_eq(b.len, strlen("{\"result\":null}"));
        ck_assert(memcmp(b.p, "{\"result\":null}", b.len) == 0);
        jbuf_free(&b);
}
END_TEST

/* As deep as a checkpoint may be and more: jansson itself reads 2048 levels. */
START_TEST(deep_values_round_trip)
{
        json_t *v = json_object(), *inner = v, *back;
        char *got;

        for (int i = 0; i < 2000; i++) {
                json_t *next = i % 2 ? json_object() : json_array();
                if (json_is_object(inner))
                        json_object_set_new(inner, "k", next);
                else
                        json_array_append_new(inner, next);
                inner = next;
        }
        got = dump(v);
        back = load(got);
        ck_assert(json_equal(v, back));
        json_decref(back);
        json_decref(v);
        free(got);
}
END_TEST

Suite *jdump_suite(void)
{
        Suite *s = suite_create("jdump");
        TCase *tc = tcase_create("dump");

        tcase_add_test(tc, values_read_back_equal_and_as_jansson_writes_them);
        tcase_add_test(tc, a_key_with_a_nul_byte_is_written_as_jansson_writes_it);
        tcase_add_test(tc, null_writes_null_after_what_is_there);
        tcase_add_test(tc, deep_values_round_trip);
        suite_add_tcase(s, tc);
        return s;
}
