/*
 * jbuf.c - JSON text written straight into a growing buffer (jbuf.h).
 */
#include <string.h>

#include "jbuf.h"
#include "util.h"

void jbuf_reset(struct jbuf *b)
{
        b->len = 0;
}

void jbuf_free(struct jbuf *b)
{
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
}

char *jbuf_reserve(struct jbuf *b, size_t n)
{
        if (b->cap - b->len < n) {
                size_t cap = b->cap < 256 ? 256 : b->cap;
                while (cap - b->len < n)
                        cap *= 2;
                b->p = util_realloc(b->p, cap);
                b->cap = cap;
        }
        return b->p + b->len;
}

void jbuf_raw(struct jbuf *b, const char *s, size_t n)
{
        if (n == 0)
                return; /* s may be NULL: an empty jbuf's text */
        memcpy(jbuf_reserve(b, n), s, n);
        b->len += n;
}

void jbuf_str(struct jbuf *b, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        char *o;

        if (s == NULL) {
                jbuf_lit(b, "null");
                return;
        }
        /* Worst case: six bytes for each control byte, three for a bad one. */
        o = jbuf_reserve(b, 6 * strlen(s) + 2);
        *o++ = '"';
        while (*p != '\0') {
                if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
                        *o++ = (char)*p++;
                        continue;
                }
                switch (*p) {
                case '"':
                case '\\':
                        *o++ = '\\';
                        *o++ = (char)*p++;
                        continue;
                case '\n':
                        *o++ = '\\', *o++ = 'n', p++;
                        continue;
                case '\t':
                        *o++ = '\\', *o++ = 't', p++;
                        continue;
                case '\r':
                        *o++ = '\\', *o++ = 'r', p++;
                        continue;
                default:
                        break;
                }
                if (*p < 0x20) {
                        memcpy(o, "\\u00", 4);
                        o[4] = hex[*p >> 4];
                        o[5] = hex[*p & 0xf];
                        o += 6, p++;
                        continue;
                }
                o += util_utf8_copy_char(o, &p);
        }
        *o++ = '"';
        b->len = (size_t)(o - b->p);
}

void jbuf_int(struct jbuf *b, int64_t v)
{
        /* Digits backwards into a scratch, then copied: snprintf costs ten times more. */
        char digits[24], *d = digits + sizeof(digits);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

        do {
                *--d = (char)('0' + u % 10);
                u /= 10;
        } while (u > 0);
        if (v < 0)
                *--d = '-';
        jbuf_raw(b, d, (size_t)(digits + sizeof(digits) - d));
}

void jbuf_bool(struct jbuf *b, bool v)
{
        if (v)
                jbuf_lit(b, "true");
        else
                jbuf_lit(b, "false");
}

void jbuf_json(struct jbuf *b, const json_t *v)
{
        size_t n, room;

        if (v == NULL) {
                jbuf_lit(b, "null");
                return;
        }
        room = b->cap - b->len;
        n = json_dumpb(v, b->p + b->len, room, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n > room) {
                json_dumpb(v, jbuf_reserve(b, n), n, JSON_COMPACT | JSON_ENCODE_ANY);
        } else if (n == 0) {
                /* Only a value jansson cannot write at all (a NaN real). */
                jbuf_lit(b, "null");
                return;
        }
        b->len += n;
}
