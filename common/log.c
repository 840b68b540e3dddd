/*
 * log.c - line-oriented logging to stderr.
 *
 * Each call writes one whole line with a single write(2), so lines from the
 * supervisor and its workers (which share stderr) never interleave inside a
 * line.  Text lines read "TIME PROG[PID]: LEVEL: message"; JSON lines carry
 * the same fields as an object, for log shippers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

static const char *log_prog = "chimera";
static enum log_level log_min = LOG_LEVEL_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog, enum log_level level, enum log_format format)
{
        log_prog = prog;
        log_min = level;
        log_fmt = format;
}

int log_level_parse(const char *s, enum log_level *out)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
                if (strcmp(s, level_names[i]) == 0) {
                        *out = (enum log_level)i;
                        return 0;
                }
        }
        return -1;
}

static void format_time(char *buf, size_t size)
{
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes the whole line, retrying short writes; errors are ignored on purpose. */
static void write_line(const char *line, size_t len)
{
        while (len > 0) {
                ssize_t n = write(STDERR_FILENO, line, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                line += n;
                len -= (size_t)n;
        }
}

static void log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
        char msg[4096], when[40], line[4608];
        int len;

        if (level < log_min)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (errnum != 0) {
                size_t n = strlen(msg);
                snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
        }
        format_time(when, sizeof(when));
        if (log_fmt == LOG_FORMAT_JSON) {
                json_t *o =
                    json_pack("{s:s, s:s, s:i, s:s, s:s}", "time", when, "prog", log_prog, "pid",
                              (int)getpid(), "level", level_names[level], "msg", msg);
                char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
                len = snprintf(line, sizeof(line), "%s\n", s ? s : msg);
                free(s);
                json_decref(o);
        } else {
                len = snprintf(line, sizeof(line), "%s %s[%d]: %s: %s\n", when, log_prog,
                               (int)getpid(), level_names[level], msg);
        }
        if (len < 0)
                return;
        if ((size_t)len >= sizeof(line)) {
                len = sizeof(line) - 1;
                line[len - 1] = '\n';
        }
        write_line(line, (size_t)len);
}

#define LOG_FN(fn, level, with_errno)                                                              \
        void fn(const char *fmt, ...)                                                              \
        {                                                                                          \
                int saved = errno;                                                                 \
                va_list ap;                                                                        \
                va_start(ap, fmt);                                                                 \
                log_emit(level, with_errno ? saved : 0, fmt, ap);                                  \
                va_end(ap);                                                                        \
                errno = saved;                                                                     \
        }

LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)

void fatal(const char *fmt, ...)
{
        int saved = errno;
        va_list ap;

        va_start(ap, fmt);
        log_emit(LOG_LEVEL_ERROR, saved, fmt, ap);
        va_end(ap);
        exit(1);
}

void fatalx(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_emit(LOG_LEVEL_ERROR, 0, fmt, ap);
        va_end(ap);
        exit(1);
}
