/*
 * jdump.c - a jansson value written into a jbuf as compact JSON (jdump.h).
 *
 * jbuf_json() hands the value to json_dumpb(), which guards against a value
 * that contains itself: for every object and array it enters it formats
 * the container's address with snprintf() and files it in a hash table.
 * On a worker's builtin:noop path that was a sixth of the instructions of
 * a task, spent on the checkpoint's four small objects.  A worker's values
 * are trees (parsed from a frame or an agent's output, copied, or built
 * member by member), so the walk here skips the guard and writes the tokens
 * with jbuf.  Reals and strings holding a NUL byte, which jbuf cannot
 * write as jansson does, go through jbuf_json() one by one.
 */
#include <string.h>

#include "jdump.h"

/* A string that holds a NUL byte: jbuf_str() would stop at it. */
static bool has_nul(const char *s, size_t len)
{
        return memchr(s, '\0', len) != NULL;
}

static void dump_key(struct jbuf *b, const char *key, size_t len)
{
        json_t *tmp;

        if (!has_nul(key, len)) {
                jbuf_str(b, key);
                return;
        }
        tmp = json_stringn(key, len);
        jbuf_json(b, tmp);
        json_decref(tmp);
}

static void dump_object(struct jbuf *b, json_t *obj)
{
        bool first = true;

        jbuf_lit(b, "{");
        for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
                if (!first)
                        jbuf_lit(b, ",");
                first = false;
                dump_key(b, json_object_iter_key(it), json_object_iter_key_len(it));
                jbuf_lit(b, ":");
                jdump(b, json_object_iter_value(it));
        }
        jbuf_lit(b, "}");
}

static void dump_array(struct jbuf *b, json_t *arr)
{
        size_t n = json_array_size(arr);

        jbuf_lit(b, "[");
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        jbuf_lit(b, ",");
                jdump(b, json_array_get(arr, i));
        }
        jbuf_lit(b, "]");
}

void jdump(struct jbuf *b, json_t *v)
{
        if (v == NULL) {
                jbuf_lit(b, "null");
                return;
        }
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                dump_object(b, v);
                return;
        case JSON_ARRAY:
                dump_array(b, v);
                return;
        case JSON_STRING:
                if (has_nul(json_string_value(v), json_string_length(v)))
                        jbuf_json(b, v);
                else
                        jbuf_str(b, json_string_value(v));
                return;
        case JSON_INTEGER:
                jbuf_int(b, json_integer_value(v));
                return;
        case JSON_TRUE:
                jbuf_lit(b, "true");
                return;
        case JSON_FALSE:
                jbuf_lit(b, "false");
                return;
        case JSON_NULL:
                jbuf_lit(b, "null");
                return;
        default:
                /* A real: jansson's own format ("1.0", "1e+300"). */
                jbuf_json(b, v);
                return;
        }
}
