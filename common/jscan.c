/*
 * jscan.c - JSON checked and walked in place, without building a tree
 * (jscan.h).  A recursive descent over the bytes, bounded by
 * JSCAN_MAX_DEPTH, that never reads past the end of the text.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "util.h"

struct scan {
        const char *p, *end, *start;
        char *err;
        size_t errsz;
};

static int fail(struct scan *s, const char *what)
{
        snprintf(s->err, s->errsz, "not JSON: %s at byte %zu", what, (size_t)(s->p - s->start));
        return -1;
}

static void skip_ws(struct scan *s)
{
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The four hex digits at p (at least four bytes) as a number, or -1. */
static long hex4(const char *p)
{
        long v = 0;

        for (int i = 0; i < 4; i++) {
                int d = hex_digit(p[i]);
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

/* A string: p at its opening quote, left after the closing one. */
static int scan_string(struct scan *s)
{
        s->p++;
        for (;;) {
                unsigned char c;
                long u, low;
                size_t n;

                while (s->p < s->end && (unsigned char)*s->p >= 0x20 &&
                       (unsigned char)*s->p < 0x80 && *s->p != '"' && *s->p != '\\')
                        s->p++;
                if (s->p >= s->end)
                        return fail(s, "unterminated string");
                c = (unsigned char)*s->p;
                if (c == '"') {
                        s->p++;
                        return 0;
                }
                if (c < 0x20)
                        return fail(s, "control character in a string");
                if (c >= 0x80) {
                        n = util_utf8_char_len((const unsigned char *)s->p,
                                               (size_t)(s->end - s->p));
                        if (n == 0)
                                return fail(s, "invalid UTF-8 in a string");
                        s->p += n;
                        continue;
                }
                /* A backslash. */
                if (s->end - s->p < 2)
                        return fail(s, "unterminated string");
                if (memchr("\"\\/bfnrt", s->p[1], 8) != NULL) {
                        s->p += 2;
                        continue;
                }
                if (s->p[1] != 'u')
                        return fail(s, "invalid escape");
                if (s->end - s->p < 6 || (u = hex4(s->p + 2)) < 0)
                        return fail(s, "invalid \\u escape");
                if (u == 0)
                        return fail(s, "\\u0000 in a string");
                if (u >= 0xdc00 && u <= 0xdfff)
                        return fail(s, "unpaired surrogate");
                s->p += 6;
                if (u < 0xd800 || u > 0xdbff)
                        continue;
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    (low = hex4(s->p + 2)) < 0xdc00 || low > 0xdfff)
                        return fail(s, "unpaired surrogate");
                s->p += 6;
        }
}

static bool is_digit(const struct scan *s)
{
        return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* Whether the number token [b, e) fits as jansson reads it. */
static bool number_fits(const char *b, const char *e, bool real)
{
        size_t n = (size_t)(e - b);
        char buf[32], *copy = n < sizeof(buf) ? buf : malloc(n + 1);
        bool fits;

        if (copy == NULL)
                return false;
        memcpy(copy, b, n);
        copy[n] = '\0';
        errno = 0;
        if (real) {
                double v = strtod(copy, NULL);
                fits = !((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE);
        } else {
                (void)strtoll(copy, NULL, 10);
                fits = errno != ERANGE;
        }
        if (copy != buf)
                free(copy);
        return fits;
}

static int scan_number(struct scan *s, json_type *type)
{
        const char *b = s->p;
        bool real = false, exp = false;

        if (*s->p == '-')
                s->p++;
        if (s->p < s->end && *s->p == '0')
                s->p++;
        else if (is_digit(s))
                while (is_digit(s))
                        s->p++;
        else
                return fail(s, "invalid number");
        if (s->p < s->end && *s->p == '.') {
                real = true;
                s->p++;
                if (!is_digit(s))
                        return fail(s, "invalid number");
                while (is_digit(s))
                        s->p++;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
                real = exp = true;
                s->p++;
                if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
                        s->p++;
                if (!is_digit(s))
                        return fail(s, "invalid number");
                while (is_digit(s))
                        s->p++;
        }
        *type = real ? JSON_REAL : JSON_INTEGER;
        /* Shorter ones always fit: 18 digits stay below 2^63, and a real
         * needs an exponent or over 300 digits to pass DBL_MAX. */
        if ((real ? exp || s->p - b > 300 : s->p - b >= 19) && !number_fits(b, s->p, real))
                return fail(s, real ? "real number overflow" : "too big integer");
        return 0;
}

static int scan_literal(struct scan *s, const char *word, size_t n)
{
        if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return fail(s, "invalid token");
        s->p += n;
        return 0;
}

static int scan_container(struct scan *s, int depth, bool object);

static int scan_value(struct scan *s, int depth, json_type *type)
{
        /* As jansson counts: every value, scalars too, the outermost at 1. */
        if (depth + 1 > JSCAN_MAX_DEPTH)
                return fail(s, "maximum nesting depth reached");
        if (s->p >= s->end)
                return fail(s, "value expected");
        switch (*s->p) {
        case '{':
                *type = JSON_OBJECT;
                return scan_container(s, depth, true);
        case '[':
                *type = JSON_ARRAY;
                return scan_container(s, depth, false);
        case '"':
                *type = JSON_STRING;
                return scan_string(s);
        case 't':
                *type = JSON_TRUE;
                return scan_literal(s, "true", 4);
        case 'f':
                *type = JSON_FALSE;
                return scan_literal(s, "false", 5);
        case 'n':
                *type = JSON_NULL;
                return scan_literal(s, "null", 4);
        default:
                if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
                        return scan_number(s, type);
                return fail(s, "invalid token");
        }
}

static int scan_container(struct scan *s, int depth, bool object)
{
        char close = object ? '}' : ']';
        json_type t;

        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
                s->p++;
                return 0;
        }
        for (;;) {
                if (object) {
                        if (s->p >= s->end || *s->p != '"')
                                return fail(s, "string or '}' expected");
                        if (scan_string(s) < 0)
                                return -1;
                        skip_ws(s);
                        if (s->p >= s->end || *s->p != ':')
                                return fail(s, "':' expected");
                        s->p++;
                        skip_ws(s);
                }
                if (scan_value(s, depth + 1, &t) < 0)
                        return -1;
                skip_ws(s);
                if (s->p < s->end && *s->p == ',') {
                        s->p++;
                        skip_ws(s);
                        continue;
                }
                if (s->p < s->end && *s->p == close) {
                        s->p++;
                        return 0;
                }
                return fail(s, object ? "',' or '}' expected" : "',' or ']' expected");
        }
}

/* Appends code point u as UTF-8 at o if it fits before end; returns the bytes, 0 if not. */
static size_t put_utf8(char *o, const char *end, unsigned long u)
{
        size_t n = u < 0x80 ? 1 : u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;

        if ((size_t)(end - o) < n)
                return 0;
        switch (n) {
        case 1:
                o[0] = (char)u;
                break;
        case 2:
                o[0] = (char)(0xc0 | (u >> 6));
                o[1] = (char)(0x80 | (u & 0x3f));
                break;
        case 3:
                o[0] = (char)(0xe0 | (u >> 12));
                o[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                o[2] = (char)(0x80 | (u & 0x3f));
                break;
        default:
                o[0] = (char)(0xf0 | (u >> 18));
                o[1] = (char)(0x80 | ((u >> 12) & 0x3f));
                o[2] = (char)(0x80 | ((u >> 6) & 0x3f));
                o[3] = (char)(0x80 | (u & 0x3f));
                break;
        }
        return n;
}

/*
 * Decodes the checked JSON string [p, e) (quotes included) into buf of
 * size bytes, NUL-terminated, stopping before a character that does not
 * fit.  Returns whether all of it fitted.
 */
static bool decode_string(const char *p, const char *e, char *buf, size_t size)
{
        char *o = buf, *end = buf + size - 1; /* room for the NUL */

        p++, e--;
        while (p < e) {
                unsigned long u;
                size_t n;

                if (*p != '\\') {
                        n = (unsigned char)*p < 0x80
                                ? 1
                                : util_utf8_char_len((const unsigned char *)p, (size_t)(e - p));
                        if (n == 0 || (size_t)(end - o) < n)
                                break;
                        memcpy(o, p, n);
                        o += n, p += n;
                        continue;
                }
                switch (p[1]) {
                case 'b':
                        u = '\b';
                        break;
                case 'f':
                        u = '\f';
                        break;
                case 'n':
                        u = '\n';
                        break;
                case 'r':
                        u = '\r';
                        break;
                case 't':
                        u = '\t';
                        break;
                case 'u':
                        u = (unsigned long)hex4(p + 2);
                        if (u >= 0xd800 && u <= 0xdbff) {
                                u = 0x10000 + ((u - 0xd800) << 10) +
                                    ((unsigned long)hex4(p + 8) - 0xdc00);
                                p += 6;
                        }
                        p += 4;
                        break;
                default:
                        u = (unsigned char)p[1];
                        break;
                }
                n = put_utf8(o, end, u);
                if (n == 0)
                        break;
                o += n, p += 2;
        }
        *o = '\0';
        return p >= e;
}

int jscan_object(const char *text, size_t len, jscan_member_fn member, void *arg, char *err,
                 size_t errsz)
{
        struct scan s = {text, text + len, text, err, errsz};
        char key[JSCAN_MAX_KEY + 1];
        json_type t;

        skip_ws(&s);
        if (s.p < s.end && *s.p != '{') {
                if (scan_value(&s, 0, &t) < 0)
                        return -1;
                snprintf(err, errsz, "not a JSON object");
                return -1;
        }
        if (s.p >= s.end)
                return fail(&s, "value expected");
        s.p++;
        skip_ws(&s);
        if (s.p < s.end && *s.p == '}') {
                s.p++;
                goto done;
        }
        for (;;) {
                const char *k = s.p, *v;
                bool whole;
                int rc;

                if (s.p >= s.end || *s.p != '"')
                        return fail(&s, "string or '}' expected");
                if (scan_string(&s) < 0)
                        return -1;
                whole = decode_string(k, s.p, key, sizeof(key));
                skip_ws(&s);
                if (s.p >= s.end || *s.p != ':')
                        return fail(&s, "':' expected");
                s.p++;
                skip_ws(&s);
                v = s.p;
                if (scan_value(&s, 1, &t) < 0)
                        return -1;
                rc = member(arg, whole ? key : NULL, (struct jtext){v, (size_t)(s.p - v)}, t, err,
                            errsz);
                if (rc != 0)
                        return rc < 0 ? -1 : 0;
                skip_ws(&s);
                if (s.p < s.end && *s.p == ',') {
                        s.p++;
                        skip_ws(&s);
                        continue;
                }
                if (s.p < s.end && *s.p == '}') {
                        s.p++;
                        break;
                }
                return fail(&s, "',' or '}' expected");
        }
done:
        skip_ws(&s);
        if (s.p != s.end)
                return fail(&s, "end of text expected");
        return 0;
}

struct get {
        const char *key;
        struct jtext value;
        json_type type;
};

static int get_member(void *arg, const char *key, struct jtext value, json_type type, char *err,
                      size_t errsz)
{
        struct get *g = arg;

        (void)err, (void)errsz;
        if (key == NULL || strcmp(key, g->key) != 0)
                return 0;
        g->value = value;
        g->type = type;
        return 1;
}

struct jtext jscan_get(struct jtext obj, const char *key, json_type *type)
{
        struct get g = {key, JTEXT_NONE, JSON_NULL};
        char err[8];

        if (obj.p == NULL || jscan_object(obj.p, obj.n, get_member, &g, err, sizeof(err)) < 0)
                return JTEXT_NONE;
        if (type != NULL)
                *type = g.type;
        return g.value;
}

bool jtext_streq(struct jtext text, const char *s)
{
        size_t n = strlen(s);
        char buf[256];

        if (text.p == NULL || text.n < 2 || text.p[0] != '"')
                return false;
        if (memchr(text.p, '\\', text.n) == NULL)
                return text.n == n + 2 && memcmp(text.p + 1, s, n) == 0;
        if (n >= sizeof(buf) || !decode_string(text.p, text.p + text.n, buf, sizeof(buf)))
                return false;
        return strcmp(buf, s) == 0;
}

char *jtext_string(struct jtext text, char *buf, size_t size)
{
        if (size == 0)
                return buf;
        buf[0] = '\0';
        if (text.p != NULL && text.n >= 2 && text.p[0] == '"')
                decode_string(text.p, text.p + text.n, buf, size);
        return buf;
}

char *jtext_strdup(struct jtext text)
{
        /* Decoding never makes a string longer than its JSON text. */
        char *s = util_calloc(1, text.n + 1);

        return jtext_string(text, s, text.n + 1);
}

int64_t jtext_int(struct jtext text)
{
        char buf[32];
        size_t n = text.n < sizeof(buf) - 1 ? text.n : sizeof(buf) - 1;

        if (text.p == NULL)
                return 0;
        memcpy(buf, text.p, n);
        buf[n] = '\0';
        return strtoll(buf, NULL, 10);
}
