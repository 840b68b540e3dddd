/*
 * util.c - parsing of durations and sizes, clocks, fd flags and the
 * allocation wrappers whose failure is fatal (a daemon that cannot allocate
 * a few bytes cannot go on meaningfully).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct unit {
        const char *name;
        int64_t factor;
};

/*
 * Parses "<digits><unit>" where unit is one of units; the number must be a
 * non-negative integer.  A bare "0" needs no unit.
 */
static int parse_with_unit(const char *s, const struct unit *units, int64_t *out)
{
        char *end;
        long long n;

        if (s == NULL || *s < '0' || *s > '9')
                return -1;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno != 0 || n < 0)
                return -1;
        if (*end == '\0') {
                if (n != 0)
                        return -1;
                *out = 0;
                return 0;
        }
        for (const struct unit *u = units; u->name != NULL; u++) {
                if (strcmp(end, u->name) == 0) {
                        if (n > INT64_MAX / u->factor)
                                return -1;
                        *out = n * u->factor;
                        return 0;
                }
        }
        return -1;
}

int util_parse_duration(const char *s, int64_t *ms)
{
        static const struct unit units[] = {
            {"ms", 1},      {"s", 1000},         {"m", 60 * 1000},
            {"h", 3600000}, {"d", 24 * 3600000}, {NULL, 0},
        };
        return parse_with_unit(s, units, ms);
}

int util_parse_size(const char *s, int64_t *bytes)
{
        static const struct unit units[] = {
            {"B", 1},
            {"KB", 1024},
            {"KiB", 1024},
            {"MB", 1024 * 1024},
            {"MiB", 1024 * 1024},
            {"GB", 1024LL * 1024 * 1024},
            {"GiB", 1024LL * 1024 * 1024},
            {NULL, 0},
        };
        return parse_with_unit(s, units, bytes);
}

int64_t util_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int util_set_cloexec(int fd)
{
        int flags = fcntl(fd, F_GETFD);

        if (flags < 0)
                return -1;
        return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int util_set_nonblock(int fd)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return -1;
        return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int util_utf8_cut(const char *s, size_t max)
{
        size_t n = strnlen(s, max);

        /* s[max] exists when strnlen() stopped at max: it is at worst the NUL. */
        if (n == max)
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
        return (int)n;
}

size_t util_utf8_char_len(const unsigned char *s, size_t avail)
{
        size_t len;
        uint32_t c;

        if (avail == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                len = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, c = s[0] & 0x07;
        else
                return 0;
        if (avail < len)
                return 0;
        /* In a NUL-terminated text a NUL fails this before any byte past it is read. */
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff))
                return 0;
        return len;
}

void util_utf8_sanitize(char *s)
{
        unsigned char *p = (unsigned char *)s;

        while (*p != '\0') {
                size_t n = util_utf8_char_len(p, UTIL_UTF8_NUL_TERMINATED);

                if (n == 0)
                        *p++ = '?';
                else
                        p += n;
        }
}

size_t util_utf8_copy_char(char *o, const unsigned char **s)
{
        size_t n = util_utf8_char_len(*s, UTIL_UTF8_NUL_TERMINATED);

        if (n == 0) {
                memcpy(o, "\xef\xbf\xbd", 3);
                (*s)++;
                return 3;
        }
        memcpy(o, *s, n);
        *s += n;
        return n;
}

void util_put_be32(void *p, uint32_t v)
{
        unsigned char *b = p;

        b[0] = (unsigned char)(v >> 24);
        b[1] = (unsigned char)(v >> 16);
        b[2] = (unsigned char)(v >> 8);
        b[3] = (unsigned char)v;
}

json_t *util_json_text(const char *s)
{
        json_t *j = s != NULL ? json_string(s) : NULL;
        const unsigned char *p = (const unsigned char *)s;
        char *out, *o;

        if (j != NULL || s == NULL)
                return j;
        out = o = util_calloc(3 * strlen(s) + 1, 1);
        while (*p != '\0')
                o += util_utf8_copy_char(o, &p);
        j = json_string(out);
        free(out);
        return j;
}

int util_write_file_at(int dirfd, const char *name, const char *value)
{
        int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
        ssize_t n;
        int e;

        if (fd < 0)
                return -1;
        n = write(fd, value, strlen(value));
        e = errno;
        close(fd);
        errno = e;
        return n < 0 ? -1 : 0;
}

char *util_strdup(const char *s)
{
        char *p;

        if (s == NULL)
                return NULL;
        p = strdup(s);
        if (p == NULL)
                fatal("%s: strdup", __func__);
        return p;
}

void *util_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);

        if (p == NULL)
                fatal("%s: calloc", __func__);
        return p;
}

void *util_realloc(void *p, size_t size)
{
        void *q = realloc(p, size ? size : 1);

        if (q == NULL)
                fatalx("out of memory (%zu bytes)", size);
        return q;
}

const char *util_json_kind(const json_t *v)
{
        if (v == NULL)
                return "nothing";
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "an unknown value";
}

void util_format_ms(int64_t ms, char *buf, size_t size)
{
        if (ms < 1000)
                snprintf(buf, size, "%lldms", (long long)ms);
        else if (ms < 60000 && ms % 1000 != 0)
                snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
        else if (ms < 60000 || ms % 60000 != 0)
                snprintf(buf, size, "%llds", (long long)(ms / 1000));
        else if (ms < 3600000 || ms % 3600000 != 0)
                snprintf(buf, size, "%lldm", (long long)(ms / 60000));
        else if (ms < 86400000 || ms % 86400000 != 0)
                snprintf(buf, size, "%lldh", (long long)(ms / 3600000));
        else
                snprintf(buf, size, "%lldd", (long long)(ms / 86400000));
}

void util_format_size(int64_t bytes, char *buf, size_t size)
{
        static const struct {
                const char *unit;
                int64_t factor;
        } units[] = {{"GB", 1024LL * 1024 * 1024}, {"MB", 1024 * 1024}, {"KB", 1024}};

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (bytes < units[i].factor)
                        continue;
                if (bytes % units[i].factor == 0)
                        snprintf(buf, size, "%lld%s", (long long)(bytes / units[i].factor),
                                 units[i].unit);
                else
                        snprintf(buf, size, "%.1f%s", (double)bytes / (double)units[i].factor,
                                 units[i].unit);
                return;
        }
        snprintf(buf, size, "%lldB", (long long)bytes);
}
