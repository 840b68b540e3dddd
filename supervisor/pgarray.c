/*
 * pgarray.c - one-dimensional PostgreSQL arrays in the binary format.
 */
#include <string.h>

#include "pgarray.h"
#include "util.h"

/* Header of a one-dimensional array: ndim, flags, oid, length, lower bound. */
#define HEADER_SIZE 20

/* Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_US INT64_C(946684800000000)

static void add32(struct pgarray *a, uint32_t v)
{
        util_put_be32(jbuf_reserve(&a->b, 4), v);
        a->b.len += 4;
}

static void add64(struct pgarray *a, uint64_t v)
{
        add32(a, (uint32_t)(v >> 32));
        add32(a, (uint32_t)v);
}

void pgarray_begin(struct pgarray *a, uint32_t oid)
{
        jbuf_reset(&a->b);
        jbuf_reserve(&a->b, HEADER_SIZE);
        a->b.len = HEADER_SIZE; /* written by pgarray_end() */
        a->oid = oid;
        a->n = 0;
        a->nulls = 0;
}

void pgarray_null(struct pgarray *a)
{
        add32(a, UINT32_MAX); /* length -1 */
        a->n++;
        a->nulls = 1;
}

void pgarray_int8(struct pgarray *a, int64_t v)
{
        add32(a, 8);
        add64(a, (uint64_t)v);
        a->n++;
}

void pgarray_int4(struct pgarray *a, int32_t v)
{
        add32(a, 4);
        add32(a, (uint32_t)v);
        a->n++;
}

void pgarray_text(struct pgarray *a, const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t at, len;
        char *o;

        if (s == NULL) {
                pgarray_null(a);
                return;
        }
        len = strlen(s);
        at = a->b.len;
        /* Worst case: a bad byte (1) becomes U+FFFD (3). */
        o = jbuf_reserve(&a->b, 4 + 3 * len) + 4;
        while (*p != '\0') {
                if (*p < 0x80)
                        *o++ = (char)*p++;
                else
                        o += util_utf8_copy_char(o, &p);
        }
        len = (size_t)(o - (a->b.p + at + 4));
        util_put_be32(a->b.p + at, (uint32_t)len);
        a->b.len = at + 4 + len;
        a->n++;
}

void pgarray_jsonb(struct pgarray *a, const char *p, size_t n)
{
        char *o;

        if (p == NULL) {
                pgarray_null(a);
                return;
        }
        add32(a, (uint32_t)(n + 1));
        o = jbuf_reserve(&a->b, n + 1);
        o[0] = 1; /* jsonb's binary format version */
        memcpy(o + 1, p, n);
        a->b.len += n + 1;
        a->n++;
}

void pgarray_timestamptz(struct pgarray *a, int64_t unix_us)
{
        add32(a, 8);
        add64(a, (uint64_t)(unix_us - PG_EPOCH_US));
        a->n++;
}

const char *pgarray_end(struct pgarray *a, int *len)
{
        char *h = a->b.p;

        if (a->n == 0) {
                /* No dimensions: an empty array is ndim 0, flags, oid and nothing else. */
                util_put_be32(h, 0);
                util_put_be32(h + 4, 0);
                util_put_be32(h + 8, a->oid);
                *len = 12;
                return h;
        }
        util_put_be32(h, 1);
        util_put_be32(h + 4, (uint32_t)a->nulls);
        util_put_be32(h + 8, a->oid);
        util_put_be32(h + 12, (uint32_t)a->n);
        util_put_be32(h + 16, 1);
        *len = (int)a->b.len;
        return h;
}

void pgarray_free(struct pgarray *a)
{
        jbuf_free(&a->b);
}
