/*
 * check_pgarray.c - binary PostgreSQL arrays, byte for byte as array_send()
 * writes them: the header, NULL elements, an empty array, text that is not
 * UTF-8, jsonb's version byte and timestamptz's epoch.  (That the server
 * takes them is what the integration tests' every write shows.)
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "pgarray.h"
#include "suites.h"

static uint32_t get32(const char *p)
{
        const unsigned char *u = (const unsigned char *)p;

        return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static int64_t get64(const char *p)
{
        return (int64_t)((uint64_t)get32(p) << 32 | get32(p + 4));
}

START_TEST(header_elements_and_nulls)
{
        struct pgarray a = {0};
        const char *p;
        int len;

        pgarray_begin(&a, PGARRAY_INT8);
        pgarray_int8(&a, -2);
        pgarray_null(&a);
        pgarray_int8(&a, INT64_C(1) << 40);
        p = pgarray_end(&a, &len);
        ck_assert_int_eq(len, 20 + 12 + 4 + 12);
        ck_assert_uint_eq(get32(p), 1);      /* dimensions */
        ck_assert_uint_eq(get32(p + 4), 1);  /* has NULLs */
        ck_assert_uint_eq(get32(p + 8), 20); /* int8 */
        ck_assert_uint_eq(get32(p + 12), 3); /* length */
        ck_assert_uint_eq(get32(p + 16), 1); /* lower bound */
        ck_assert_uint_eq(get32(p + 20), 8);
        ck_assert_int_eq(get64(p + 24), -2);
        ck_assert_uint_eq(get32(p + 32), UINT32_MAX); /* -1: NULL */
        ck_assert_uint_eq(get32(p + 36), 8);
        ck_assert_int_eq(get64(p + 40), INT64_C(1) << 40);

        /* Used again: nothing of the first array is left, NULL flag included. */
        pgarray_begin(&a, PGARRAY_INT4);
        pgarray_int4(&a, 7);
        p = pgarray_end(&a, &len);
        ck_assert_int_eq(len, 20 + 8);
        ck_assert_uint_eq(get32(p + 4), 0);
        ck_assert_uint_eq(get32(p + 8), 23);
        ck_assert_uint_eq(get32(p + 12), 1);
        ck_assert_uint_eq(get32(p + 24), 7);
        pgarray_free(&a);
}
END_TEST

START_TEST(an_empty_array_has_no_dimensions)
{
        struct pgarray a = {0};
        const char *p;
        int len;

        pgarray_begin(&a, PGARRAY_TEXT);
        p = pgarray_end(&a, &len);
        ck_assert_int_eq(len, 12);
        ck_assert_uint_eq(get32(p), 0);
        ck_assert_uint_eq(get32(p + 8), 25);
        pgarray_free(&a);
}
END_TEST

START_TEST(text_is_made_utf8)
{
        struct pgarray a = {0};
        const char *p;
        int len;

        pgarray_begin(&a, PGARRAY_TEXT);
        pgarray_text(&a, "a\xff\xc3\xa9\xe2\x82"); /* a, a stray byte, é, a cut-off € */
        pgarray_text(&a, NULL);
        pgarray_text(&a, "");
        p = pgarray_end(&a, &len);
        ck_assert_uint_eq(get32(p + 4), 1);
        ck_assert_uint_eq(get32(p + 12), 3);
        ck_assert_uint_eq(get32(p + 20), 12);
        ck_assert_int_eq(memcmp(p + 24, "a\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd", 12), 0);
        ck_assert_uint_eq(get32(p + 36), UINT32_MAX);
        ck_assert_uint_eq(get32(p + 40), 0);
        ck_assert_int_eq(len, 44);
        pgarray_free(&a);
}
END_TEST

START_TEST(jsonb_and_timestamptz)
{
        struct pgarray a = {0};
        const char *p;
        int len;

        pgarray_begin(&a, PGARRAY_JSONB);
        pgarray_jsonb(&a, "{\"a\":1}", 7);
        pgarray_jsonb(&a, NULL, 0);
        p = pgarray_end(&a, &len);
        ck_assert_uint_eq(get32(p + 8), 3802);
        ck_assert_uint_eq(get32(p + 20), 8);
        ck_assert_int_eq(p[24], 1); /* format version */
        ck_assert_int_eq(memcmp(p + 25, "{\"a\":1}", 7), 0);
        ck_assert_uint_eq(get32(p + 32), UINT32_MAX);

        pgarray_begin(&a, PGARRAY_TIMESTAMPTZ);
        pgarray_timestamptz(&a, INT64_C(946684800000000)); /* 2000-01-01: PostgreSQL's 0 */
        pgarray_timestamptz(&a, 0);                        /* 1970-01-01 */
        p = pgarray_end(&a, &len);
        ck_assert_uint_eq(get32(p + 8), 1184);
        ck_assert_int_eq(get64(p + 24), 0);
        ck_assert_int_eq(get64(p + 36), -INT64_C(946684800000000));
        pgarray_free(&a);
}
END_TEST

Suite *pgarray_suite(void)
{
        Suite *s = suite_create("pgarray");
        TCase *tc = tcase_create("binary");

        tcase_add_test(tc, header_elements_and_nulls);
        tcase_add_test(tc, an_empty_array_has_no_dimensions);
        tcase_add_test(tc, text_is_made_utf8);
        tcase_add_test(tc, jsonb_and_timestamptz);
        suite_add_tcase(s, tc);
        return s;
}
