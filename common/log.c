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
#include "util.h"

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

/* The trailing "(workflow ..., trace ...)" of a text task line. */
static void task_suffix(const struct log_task *t, char *buf, size_t size)
{
        size_t n = 0;

#define ADD(...) (n += (size_t)snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__))
        ADD(" (");
        if (t->workflow != NULL)
                ADD("workflow %s, ", t->workflow);
        if (t->attempt > 0)
                ADD("attempt %d, ", t->attempt);
        if (t->phase != NULL)
                ADD("phase %s, ", t->phase);
        if (t->worker_pid > 0)
                ADD("worker %d, ", t->worker_pid);
        if (t->duration_ms >= 0)
                ADD("%lld ms, ", t->duration_ms);
        ADD("trace %s)", t->trace_id != NULL ? t->trace_id : "-");
#undef ADD
}

static json_t *task_fields(const struct log_task *t)
{
        json_t *o = json_pack("{s:I}", "task_id", (json_int_t)t->id);

        if (t->workflow != NULL)
                json_object_set_new(o, "workflow", util_json_text(t->workflow));
        if (t->attempt > 0)
                json_object_set_new(o, "attempt", json_integer(t->attempt));
        if (t->phase != NULL)
                json_object_set_new(o, "phase", json_string(t->phase));
        if (t->worker_pid > 0)
                json_object_set_new(o, "worker_pid", json_integer(t->worker_pid));
        if (t->duration_ms >= 0)
                json_object_set_new(o, "duration_ms", json_integer(t->duration_ms));
        if (t->trace_id != NULL)
                json_object_set_new(o, "trace_id", json_string(t->trace_id));
        return o;
}

/* The format attributes let clang's -Wformat-nonliteral see fmt is checked by the callers. */
static void log_emit_task(enum log_level level, int errnum, const struct log_task *t,
                          const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_emit_task(enum log_level level, int errnum, const struct log_task *t,
                          const char *fmt, va_list ap)
{
        char msg[4096], when[40], line[8192], suffix[512];
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
                json_t *o = t != NULL ? task_fields(t) : json_object();
                json_object_set_new(o, "time", json_string(when));
                json_object_set_new(o, "prog", json_string(log_prog));
                json_object_set_new(o, "pid", json_integer((int)getpid()));
                json_object_set_new(o, "level", json_string(level_names[level]));
                json_object_set_new(o, "msg", util_json_text(msg));
                char *s = json_dumps(o, JSON_COMPACT);
                len = snprintf(line, sizeof(line), "%s\n", s ? s : msg);
                free(s);
                json_decref(o);
        } else {
                suffix[0] = '\0';
                if (t != NULL) {
                        task_suffix(t, suffix, sizeof(suffix));
                        len = snprintf(line, sizeof(line), "%s %s[%d]: %s: task %lld: %s%s\n", when,
                                       log_prog, (int)getpid(), level_names[level], t->id, msg,
                                       suffix);
                } else {
                        len = snprintf(line, sizeof(line), "%s %s[%d]: %s: %s\n", when, log_prog,
                                       (int)getpid(), level_names[level], msg);
                }
        }
        if (len < 0)
                return;
        if ((size_t)len >= sizeof(line)) {
                len = sizeof(line) - 1;
                line[len - 1] = '\n';
        }
        write_line(line, (size_t)len);
}

static void log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
        log_emit_task(level, errnum, NULL, fmt, ap);
}

void log_task(enum log_level level, const struct log_task *t, const char *fmt, ...)
{
        int saved = errno;
        va_list ap;

        va_start(ap, fmt);
        log_emit_task(level, 0, t, fmt, ap);
        va_end(ap);
        errno = saved;
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
