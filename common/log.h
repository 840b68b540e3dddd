/*
 * log.h - one line per event on stderr, shared by every chimera program.
 *
 * Two tiers, as in OpenBSD's daemons: log_warn*() for what a user, the
 * network or a child can cause (the program goes on), fatal*() for broken
 * invariants and start-up failures (the program exits 1).  The *x variants
 * do not append strerror(errno).
 */
#ifndef CHIMERA_LOG_H
#define CHIMERA_LOG_H

#include <stdarg.h>

enum log_level {
        LOG_LEVEL_DEBUG = 0,
        LOG_LEVEL_INFO,
        LOG_LEVEL_WARN,
        LOG_LEVEL_ERROR,
};

enum log_format {
        LOG_FORMAT_TEXT = 0,
        LOG_FORMAT_JSON,
};

/*
 * Sets the program name printed on each line, the lowest level printed and
 * the line format.  May be called again (on reload).  `prog` is borrowed and
 * must outlive every later log call (a string literal in practice).
 */
void log_init(const char *prog, enum log_level level, enum log_format format);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));

/*
 * What a line about a task carries besides its message: in text lines as a
 * trailing "(workflow W, attempt A, phase P, worker PID, N ms, trace T)",
 * in JSON lines as fields.  Unset members (NULL, 0, or duration_ms < 0)
 * are left out.
 */
struct log_task {
        long long id;
        int attempt;
        const char *workflow;
        const char *phase;
        const char *trace_id;
        int worker_pid;
        long long duration_ms;
};

void log_task(enum log_level level, const struct log_task *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
