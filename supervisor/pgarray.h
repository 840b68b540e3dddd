/*
 * pgarray.h - one-dimensional PostgreSQL arrays in the binary format.
 *
 * For statement parameters sent in binary (db_query_prepared_bin()): the
 * server takes each element as it is, with no text to scan and no quoting
 * to undo; a jsonb element is still JSON text, parsed once, on its own.
 * The layout is array_send()'s: dimensions 1 (0 when empty), a has-nulls
 * flag, the element type's OID, length and lower bound 1; then each element
 * as a 4-byte length (-1 for NULL) and its bytes.  Integers are big-endian.
 */
#ifndef CHIMERA_PGARRAY_H
#define CHIMERA_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "jbuf.h"

/* Element types, by their OIDs in pg_type (fixed since PostgreSQL 7.x / 9.4). */
#define PGARRAY_INT8        20u
#define PGARRAY_INT4        23u
#define PGARRAY_TEXT        25u
#define PGARRAY_TIMESTAMPTZ 1184u
#define PGARRAY_JSONB       3802u

struct pgarray {
        struct jbuf b; /* the bytes; memory kept from one use to the next */
        uint32_t oid;
        int32_t n;
        int32_t nulls;
};

/* Starts an array of oid elements, forgetting what a was. */
void pgarray_begin(struct pgarray *a, uint32_t oid);

void pgarray_null(struct pgarray *a);
void pgarray_int8(struct pgarray *a, int64_t v);
void pgarray_int4(struct pgarray *a, int32_t v);

/* s, with any byte that does not start valid UTF-8 written as U+FFFD; NULL is NULL. */
void pgarray_text(struct pgarray *a, const char *s);

/* JSON text p[0..n) as jsonb (format version 1); p NULL is NULL. */
void pgarray_jsonb(struct pgarray *a, const char *p, size_t n);

/* Microseconds since the Unix epoch, as timestamptz. */
void pgarray_timestamptz(struct pgarray *a, int64_t unix_us);

/* Finishes the array: a->b.p[0..*len) is the parameter. */
const char *pgarray_end(struct pgarray *a, int *len);

void pgarray_free(struct pgarray *a);

#endif
