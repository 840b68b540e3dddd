/*
 * jscan.h - JSON checked and walked in place, without building a tree.
 *
 * For the frames a worker sends chimerad, many a second: the supervisor
 * reads a few fields and hands the rest (checkpoint, result, event detail)
 * on to PostgreSQL as text.  jscan_object() checks that a text is one JSON
 * object, as jansson would accept it, and reports each member of the top
 * level as a span of the text (struct jtext); the spans are copied into
 * the write batch unchanged.
 *
 * What is accepted is what jansson's json_loadb() accepts with its default
 * depth limit (2048): RFC 8259 JSON, strings of valid UTF-8 without
 * \u0000 and with paired surrogates, integers within 64 bits, reals within
 * a double's range.  One difference: jscan does not refuse a repeated key.
 * Its callers refuse repeated keys among those they read; in the values
 * they pass on, the last one wins, as PostgreSQL's jsonb keeps it.
 */
#ifndef CHIMERA_JSCAN_H
#define CHIMERA_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "jbuf.h"

#define JSCAN_MAX_DEPTH 2048

/* Keys longer than this are passed to a member callback as NULL. */
#define JSCAN_MAX_KEY 63

/*
 * Called for each member of the object, in order: key decoded (NUL-
 * terminated; NULL when longer than JSCAN_MAX_KEY bytes), value its span
 * and type.  Returns 0 to go on, 1 to stop there (jscan_object() then
 * returns 0 without looking further), or -1 with a reason in err to refuse
 * the text.
 */
typedef int (*jscan_member_fn)(void *arg, const char *key, struct jtext value, json_type type,
                               char *err, size_t errsz);

/*
 * Checks that text[0..len) is one JSON object (whitespace around it
 * allowed) and calls member for each of its members.  Returns 0, or -1
 * with a reason in err ("not JSON: invalid escape at byte 12", "not a JSON
 * object", or member's own).
 */
int jscan_object(const char *text, size_t len, jscan_member_fn member, void *arg, char *err,
                 size_t errsz) __attribute__((warn_unused_result));

/* The value of key in the object text obj (checked by jscan_object), or JTEXT_NONE. */
struct jtext jscan_get(struct jtext obj, const char *key, json_type *type);

/* Whether the JSON string text is s. */
bool jtext_streq(struct jtext text, const char *s);

/*
 * The JSON string text decoded, NUL-terminated, into buf of size bytes,
 * cut at a whole character when it does not fit.  Returns buf.
 */
char *jtext_string(struct jtext text, char *buf, size_t size);

/* The JSON string text decoded into a new string (util_calloc). */
char *jtext_strdup(struct jtext text);

/* The value of the JSON integer text (checked: within 64 bits). */
int64_t jtext_int(struct jtext text);

#endif
