/*
 * jbuf.h - JSON text written straight into a growing buffer.
 *
 * For the hot paths that used to build jansson objects only to dump them at
 * once (a worker's frames, chimerad's write batch): the writer appends
 * tokens, the caller is responsible for the commas and the nesting.  Every
 * string goes out valid: quotes, backslashes and control characters are
 * escaped, and bytes that are not UTF-8 become U+FFFD, so the text is
 * always JSON whatever bytes a string held.  Allocation failure aborts, as
 * util_realloc() does.
 */
#ifndef CHIMERA_JBUF_H
#define CHIMERA_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct jbuf {
        char *p;    /* owned; not NUL-terminated */
        size_t len; /* bytes written */
        size_t cap;
};

/*
 * A JSON text someone else holds (a value inside a frame, a dumped object):
 * p[0..n) is one valid JSON value, not NUL-terminated; p == NULL for none.
 */
struct jtext {
        const char *p;
        size_t n;
};

#define JTEXT_NONE ((struct jtext){NULL, 0})

/* Forgets the text but keeps the memory; jbuf_free() releases it. */
void jbuf_reset(struct jbuf *b);
void jbuf_free(struct jbuf *b);

/* Makes room for n more bytes and returns where they go (len unchanged). */
char *jbuf_reserve(struct jbuf *b, size_t n);

/* n bytes as they are: punctuation, keys known to need no escape, JSON text. */
void jbuf_raw(struct jbuf *b, const char *s, size_t n);
#define jbuf_lit(b, s) jbuf_raw((b), "" s, sizeof(s) - 1)

/* s as a JSON string, quoted and escaped; NULL writes null. */
void jbuf_str(struct jbuf *b, const char *s);

void jbuf_int(struct jbuf *b, int64_t v);
void jbuf_bool(struct jbuf *b, bool v);

/* v as compact JSON (jansson's own dump, so the text matches it); NULL writes null. */
void jbuf_json(struct jbuf *b, const json_t *v);

#endif
