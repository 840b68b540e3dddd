/*
 * chimera-ctl.c - the operator's command line.
 *
 * Live state (what each worker runs right now) only chimerad knows, so
 * chimera-ctl asks it over the control socket: one newline-terminated JSON
 * request, one newline-terminated JSON reply, then the connection closes.
 * The socket is found the way chimerad finds it, through the same config
 * file, so an operator never has to repeat a path.
 *
 * Each command is a row in commands[].  It prints its reply laid out for
 * people (80 columns), or with --json verbatim for scripts.  The reply is input from
 * another process, possibly of another version or broken: every exchange is
 * bounded in time and size, and the reply is checked in full before any of
 * it is printed, so a bad one gives a clear error, never a crash or half a
 * table.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define EXIT_USAGE 2

#define CTL_TIMEOUT_MS     (10 * 1000)
#define CTL_MAX_REPLY      (16 * 1024 * 1024)
#define CTL_CONNECT_PAUSE  50 /* ms between tries while the listen backlog is full */
#define SCREEN_WIDTH       80
#define MIN_SQUEEZED_WIDTH 4
#define MAX_OVERFLOW       10 /* columns a fixed-width cell may take beyond its own */

struct ctl_opts {
        const char *config_path; /* -c FILE, or NULL for the default */
        const char *socket_path; /* --socket PATH, or NULL */
        int json;                /* --json */
};

struct ctl_cmd {
        const char *name;
        const char *help; /* one line for the usage text */
        /* Runs the command with its arguments; returns the exit status. */
        int (*run)(const struct ctl_opts *opts, int argc, char **argv);
};

/* The status reply, checked; strings and objects are borrowed from it. */
struct status_worker {
        json_int_t slot, pid, tasks_done;
        const char *state;
        json_t *task, *workflow, *phase, *busy_ms; /* each may be JSON null */
};

struct status_view {
        const char *host, *version, *state;
        json_int_t pid, uptime_ms;
        json_t *queues;
        int db_up;
        json_int_t size, busy, idle, starting;
        struct status_worker *workers; /* owned array */
        size_t nworkers;
        json_t *tasks; /* object, or NULL when the database is down */
};

static int cmd_status(const struct ctl_opts *opts, int argc, char **argv);

static const struct ctl_cmd commands[] = {
    {"status", "the supervisor, what each worker runs, task counts", cmd_status},
};

static const char *const task_statuses[] = {"queued", "running", "succeeded",
                                            "failed", "dead",    "cancelled"};

static void ctl_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ctl_errx(const char *fmt, ...)
{
        va_list ap;

        fputs("chimera-ctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void usage(FILE *out)
{
        fprintf(out, "usage: chimera-ctl [-c FILE] [--socket PATH] [--json] COMMAND\n"
                     "\n"
                     "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(out, "  %-18s%s\n", commands[i].name, commands[i].help);
        fprintf(out, "\n"
                     "Options:\n"
                     "  -c, --config FILE   config file naming the control socket\n"
                     "                      (default " CONFIG_DEFAULT_PATH ")\n"
                     "      --socket PATH   control socket to use, overriding the config\n"
                     "      --json          print the reply as JSON, for scripts\n"
                     "  -h, --help          show this help and exit\n"
                     "      --version       show the version and exit\n"
                     "\n"
                     "Exit status:\n"
                     "  0  success\n"
                     "  1  error: no chimerad running, unreadable config, bad reply, ...\n"
                     "  2  wrong usage\n");
}

/* ---- control socket client ---- */

/*
 * Waits until fd is ready for events or the deadline passes.  Returns 1 when
 * ready, 0 on timeout, -1 on error (errno set).
 */
static int wait_fd(int fd, short events, int64_t deadline)
{
        struct pollfd pfd = {.fd = fd, .events = events};

        for (;;) {
                int64_t left = deadline - util_now_ms();
                if (left <= 0)
                        return 0;
                int n = poll(&pfd, 1, (int)left);
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 ? -1 : n > 0;
        }
}

static void connect_error(const char *path, int errnum, char *err, size_t errsz)
{
        if (errnum == ENOENT || errnum == ECONNREFUSED || errnum == ENOTDIR)
                snprintf(err, errsz, "no chimerad is running (cannot connect to %s: %s)", path,
                         strerror(errnum));
        else
                snprintf(err, errsz, "cannot connect to %s: %s", path, strerror(errnum));
}

/*
 * Connects to the control socket; the fd is non-blocking so that every later
 * step can be bounded by the deadline.  Returns the fd, or -1 with err set.
 */
static int ctl_connect(const char *path, int64_t deadline, char *err, size_t errsz)
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(addr.sun_path)) {
                snprintf(err, errsz, "control socket path too long: %s", path);
                return -1;
        }
        memcpy(addr.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                snprintf(err, errsz, "socket: %s", strerror(errno));
                return -1;
        }
        /* A non-blocking unix connect completes at once or fails; EAGAIN
         * means the listen backlog is full, which a busy chimerad drains. */
        while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
                if (errno == EAGAIN && util_now_ms() + CTL_CONNECT_PAUSE < deadline) {
                        usleep(CTL_CONNECT_PAUSE * 1000);
                        continue;
                }
                if (errno == EAGAIN)
                        snprintf(err, errsz,
                                 "chimerad did not accept a connection on %s within %ds", path,
                                 CTL_TIMEOUT_MS / 1000);
                else
                        connect_error(path, errno, err, errsz);
                close(fd);
                return -1;
        }
        return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline, char *err, size_t errsz)
{
        while (len > 0) {
                /* MSG_NOSIGNAL: a chimerad that hangs up is an error to
                 * report, not a reason to die of SIGPIPE. */
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n >= 0) {
                        buf += n;
                        len -= (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        snprintf(err, errsz, "sending to chimerad: %s", strerror(errno));
                        return -1;
                }
                if (wait_fd(fd, POLLOUT, deadline) <= 0) {
                        snprintf(err, errsz, "chimerad did not take the request within %ds",
                                 CTL_TIMEOUT_MS / 1000);
                        return -1;
                }
        }
        return 0;
}

/*
 * Doubles the read buffer, up to one byte more than the largest reply
 * allowed: filling that byte is how an oversized reply shows itself.
 */
static int grow(char **buf, size_t *cap)
{
        size_t ncap = *cap ? *cap * 2 : 4096;
        char *nbuf;

        if (ncap > CTL_MAX_REPLY + 1)
                ncap = CTL_MAX_REPLY + 1;
        nbuf = realloc(*buf, ncap);
        if (!nbuf)
                return -1;
        *buf = nbuf;
        *cap = ncap;
        return 0;
}

/* One recv(); returns bytes read, 0 at EOF, -1 with err set. */
static ssize_t recv_some(int fd, char *buf, size_t len, int64_t deadline, char *err, size_t errsz)
{
        for (;;) {
                ssize_t n = recv(fd, buf, len, 0);
                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        snprintf(err, errsz, "reading from chimerad: %s", strerror(errno));
                        return -1;
                }
                if (wait_fd(fd, POLLIN, deadline) <= 0) {
                        snprintf(err, errsz, "chimerad did not answer within %ds",
                                 CTL_TIMEOUT_MS / 1000);
                        return -1;
                }
        }
}

/*
 * Reads one reply line (without its newline) into a new buffer, *line, that
 * the caller frees.  A reply cut short by EOF is returned as is and left to
 * the JSON parser to judge.  Returns 0, or -1 with err set.
 */
static int read_line(int fd, int64_t deadline, char **line, size_t *len, char *err, size_t errsz)
{
        char *buf = NULL, *nl = NULL;
        size_t cap = 0, used = 0;
        int rc = -1;

        while (!nl) {
                if (used > CTL_MAX_REPLY)
                        break;
                if (used == cap && grow(&buf, &cap) < 0) {
                        snprintf(err, errsz, "out of memory reading the reply");
                        goto out;
                }
                ssize_t n = recv_some(fd, buf + used, cap - used, deadline, err, errsz);
                if (n < 0)
                        goto out;
                if (n == 0)
                        break;
                nl = memchr(buf + used, '\n', (size_t)n);
                used += (size_t)n;
        }
        if (used == 0) {
                snprintf(err, errsz, "chimerad closed the connection without replying");
                goto out;
        }
        *len = nl ? (size_t)(nl - buf) : used;
        if (*len > CTL_MAX_REPLY) {
                snprintf(err, errsz, "reply from chimerad is larger than %d MB",
                         CTL_MAX_REPLY / (1024 * 1024));
                goto out;
        }
        *line = buf;
        buf = NULL;
        rc = 0;
out:
        free(buf);
        return rc;
}

/*
 * Parses a reply and checks its envelope.  Returns the reply (new reference)
 * when it says "ok": true; NULL with err set when it is not JSON, not an
 * object, or says "ok": false (err then holds chimerad's own message).
 */
static json_t *parse_reply(const char *line, size_t len, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *reply = json_loadb(line, len, 0, &jerr);
        json_t *ok;

        if (!reply) {
                snprintf(err, errsz, "invalid reply from chimerad: %s", jerr.text);
                return NULL;
        }
        ok = json_object_get(reply, "ok");
        if (!json_is_object(reply) || !json_is_boolean(ok)) {
                snprintf(err, errsz, "invalid reply from chimerad: no \"ok\" member");
                json_decref(reply);
                return NULL;
        }
        if (json_is_false(ok)) {
                json_t *msg = json_object_get(reply, "error");
                snprintf(err, errsz, "%s",
                         json_is_string(msg) ? json_string_value(msg) : "request failed");
                json_decref(reply);
                return NULL;
        }
        return reply;
}

/*
 * Sends one request (borrowed) to the control socket at path and returns
 * the successful reply (new reference), or NULL with err set.  The whole
 * exchange is bounded by CTL_TIMEOUT_MS.
 */
static json_t *ctl_call(const char *path, json_t *req, char *err, size_t errsz)
{
        int64_t deadline = util_now_ms() + CTL_TIMEOUT_MS;
        char *text = NULL, *line = NULL;
        json_t *reply = NULL;
        size_t len = 0;
        int fd;

        fd = ctl_connect(path, deadline, err, errsz);
        if (fd < 0)
                return NULL;
        text = json_dumps(req, JSON_COMPACT);
        if (!text) {
                snprintf(err, errsz, "cannot encode the request");
                goto out;
        }
        /* json_dumps() never emits a raw newline, so one ends the request. */
        if (send_all(fd, text, strlen(text), deadline, err, errsz) < 0 ||
            send_all(fd, "\n", 1, deadline, err, errsz) < 0)
                goto out;
        if (read_line(fd, deadline, &line, &len, err, errsz) < 0)
                goto out;
        reply = parse_reply(line, len, err, errsz);
out:
        free(line);
        free(text);
        close(fd);
        return reply;
}

/*
 * Finds the control socket: --socket, else the config file's
 * control_socket.  A missing default config file is fine (chimerad then
 * uses the default socket too); a config named with -c must load.  Returns
 * a new string, or NULL after printing the error.
 */
static char *resolve_socket(const struct ctl_opts *opts)
{
        const char *path = opts->config_path ? opts->config_path : CONFIG_DEFAULT_PATH;
        struct config *cfg;
        char err[1024];
        char *sock;

        if (opts->socket_path)
                return util_strdup(opts->socket_path);
        if (!opts->config_path && access(path, F_OK) < 0 && errno == ENOENT)
                return util_strdup(CONFIG_DEFAULT_CONTROL_SOCKET);
        cfg = config_load(path, err, sizeof(err));
        if (!cfg) {
                ctl_errx("%s", err);
                return NULL;
        }
        sock =
            util_strdup(cfg->control_socket ? cfg->control_socket : CONFIG_DEFAULT_CONTROL_SOCKET);
        config_free(cfg);
        return sock;
}

/* ---- formatting ---- */

/*
 * Formats a duration the way people read it, in five characters or fewer
 * (below 270 years): 850ms, 1.2s, 5m12s, 2h03m, 3d04h, 12d.
 */
static void fmt_duration(int64_t ms, char *buf, size_t size)
{
        const int64_t s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;

        if (ms < 0)
                ms = 0;
        if (ms < s)
                snprintf(buf, size, "%dms", (int)ms);
        else if (ms < m)
                snprintf(buf, size, "%d.%ds", (int)(ms / s), (int)(ms % s / 100));
        else if (ms < h)
                snprintf(buf, size, "%dm%02ds", (int)(ms / m), (int)(ms % m / s));
        else if (ms < d)
                snprintf(buf, size, "%dh%02dm", (int)(ms / h), (int)(ms % h / m));
        else if (ms < 10 * d)
                snprintf(buf, size, "%dd%02dh", (int)(ms / d), (int)(ms % d / h));
        else
                snprintf(buf, size, "%lldd", (long long)(ms / d));
}

static int is_utf8_continuation(unsigned char c)
{
        return (c & 0xc0) == 0x80;
}

/*
 * Copies src into dst (dstsz >= 2) for display in at most max (>= 1)
 * columns: control characters become '?' so a reply cannot drive the
 * terminal, and a longer text, or one dst cannot hold, is cut and ends in
 * '~'.  Counts one column per UTF-8 character.  Returns the columns used.
 */
static int fit_text(const char *src, int max, char *dst, size_t dstsz)
{
        const unsigned char *p = (const unsigned char *)src;
        size_t o = 0, last = 0; /* last: where the latest character starts */
        int cols = 0;

        for (; *p != '\0'; p++) {
                if (o + 2 >= dstsz)
                        break;
                if (!is_utf8_continuation(*p)) {
                        if (cols == max)
                                break;
                        last = o;
                        cols++;
                }
                dst[o++] = (char)(*p < 0x20 || *p == 0x7f ? '?' : *p);
        }
        if (*p != '\0') {
                /* Cut: the latest character, perhaps incomplete, gives way. */
                if (cols > 0)
                        o = last;
                else
                        cols = 1;
                dst[o++] = '~';
        }
        dst[o] = '\0';
        return cols;
}

/* Renders a JSON cell: integers in decimal, strings as they are, null as "-". */
static void fmt_cell(json_t *v, char *buf, size_t size)
{
        if (json_is_integer(v))
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_string(v))
                snprintf(buf, size, "%s", json_string_value(v));
        else
                snprintf(buf, size, "-");
}

/* ---- the worker table ---- */

enum { COL_SLOT, COL_PID, COL_STATE, COL_DONE, COL_TASK, COL_WORKFLOW, COL_PHASE, COL_FOR, NCOLS };

struct column {
        const char *title;
        int width;   /* columns of text */
        int gap;     /* spaces after it */
        int right;   /* right-aligned */
        int squeeze; /* may be cut to make room, so rows fit SCREEN_WIDTH */
};

/* Widths add up to SCREEN_WIDTH; durations never take more than 5. */
static const struct column columns[NCOLS] = {
    {"SLOT", 5, 1, 0, 0}, {"PID", 7, 1, 0, 0},       {"STATE", 8, 1, 0, 0},  {"DONE", 4, 2, 1, 0},
    {"TASK", 9, 1, 0, 0}, {"WORKFLOW", 15, 1, 0, 1}, {"PHASE", 19, 1, 0, 1}, {"FOR", 5, 0, 0, 0},
};

/*
 * Prints one row.  A cell wider than its column (a long task id) takes up
 * to MAX_OVERFLOW more columns and pushes the rest right; the squeezable
 * columns give that room back, so the row still fits the screen.
 */
static void print_row(FILE *out, const char *const cells[NCOLS])
{
        char text[256];
        int debt = 0;

        for (int i = 0; i < NCOLS; i++) {
                const struct column *c = &columns[i];
                int w = c->width, n;

                if (c->squeeze && debt > 0) {
                        int give = debt < w - MIN_SQUEEZED_WIDTH ? debt : w - MIN_SQUEEZED_WIDTH;
                        w -= give;
                        debt -= give;
                }
                n = fit_text(cells[i], c->squeeze ? w : w + MAX_OVERFLOW, text, sizeof(text));
                if (n > w) {
                        debt += n - w;
                        w = n;
                }
                if (i == NCOLS - 1)
                        fprintf(out, "%*s%s\n", c->right ? w - n : 0, "", text);
                else if (c->right)
                        fprintf(out, "%*s%s%*s", w - n, "", text, c->gap, "");
                else
                        fprintf(out, "%s%*s", text, w - n + c->gap, "");
        }
}

static void print_worker(FILE *out, const struct status_worker *w)
{
        char slot[24], pid[24], done[24], task[32], wf[256], phase[256], busy[16];
        const char *cells[NCOLS];

        snprintf(slot, sizeof(slot), "%" JSON_INTEGER_FORMAT, w->slot);
        snprintf(pid, sizeof(pid), "%" JSON_INTEGER_FORMAT, w->pid);
        snprintf(done, sizeof(done), "%" JSON_INTEGER_FORMAT, w->tasks_done);
        fmt_cell(w->task, task, sizeof(task));
        fmt_cell(w->workflow, wf, sizeof(wf));
        fmt_cell(w->phase, phase, sizeof(phase));
        if (json_is_integer(w->busy_ms))
                fmt_duration(json_integer_value(w->busy_ms), busy, sizeof(busy));
        else
                snprintf(busy, sizeof(busy), "-");
        cells[COL_SLOT] = slot;
        cells[COL_PID] = pid;
        cells[COL_STATE] = w->state;
        cells[COL_DONE] = done;
        cells[COL_TASK] = task;
        cells[COL_WORKFLOW] = wf;
        cells[COL_PHASE] = phase;
        cells[COL_FOR] = busy;
        print_row(out, cells);
}

/* ---- status ---- */

static int bad_reply(const char *where, const json_error_t *jerr, char *err, size_t errsz)
{
        snprintf(err, errsz, "invalid reply from chimerad: %s: %s", where, jerr->text);
        return -1;
}

static int is_int_or_null(json_t *v)
{
        return !v || json_is_integer(v) || json_is_null(v);
}

static int is_string_or_null(json_t *v)
{
        return !v || json_is_string(v) || json_is_null(v);
}

static int parse_worker(json_t *o, size_t i, struct status_worker *w, char *err, size_t errsz)
{
        const char *bad = NULL;
        json_error_t jerr;
        char where[64];

        snprintf(where, sizeof(where), "pool.workers[%zu]", i);
        /* The per-task members are null, or absent, while a worker is idle. */
        if (json_unpack_ex(o, &jerr, 0, "{s:I, s:I, s:s, s:I, s?o, s?o, s?o, s?o}", "slot",
                           &w->slot, "pid", &w->pid, "state", &w->state, "tasks_done",
                           &w->tasks_done, "task", &w->task, "workflow", &w->workflow, "phase",
                           &w->phase, "busy_ms", &w->busy_ms) < 0)
                return bad_reply(where, &jerr, err, errsz);
        if (!is_int_or_null(w->task))
                bad = "task";
        else if (!is_string_or_null(w->workflow))
                bad = "workflow";
        else if (!is_string_or_null(w->phase))
                bad = "phase";
        else if (!is_int_or_null(w->busy_ms))
                bad = "busy_ms";
        if (bad) {
                snprintf(err, errsz, "invalid reply from chimerad: %s.%s: wrong type", where, bad);
                return -1;
        }
        return 0;
}

static int parse_pool(json_t *reply, struct status_view *v, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *workers;

        if (json_unpack_ex(reply, &jerr, 0, "{s:{s:I, s:I, s:I, s:I, s:o}}", "pool", "size",
                           &v->size, "busy", &v->busy, "idle", &v->idle, "starting", &v->starting,
                           "workers", &workers) < 0)
                return bad_reply("pool", &jerr, err, errsz);
        if (!json_is_array(workers)) {
                snprintf(err, errsz, "invalid reply from chimerad: pool.workers: not an array");
                return -1;
        }
        v->nworkers = json_array_size(workers);
        v->workers = util_calloc(v->nworkers ? v->nworkers : 1, sizeof(*v->workers));
        for (size_t i = 0; i < v->nworkers; i++) {
                if (parse_worker(json_array_get(workers, i), i, &v->workers[i], err, errsz) < 0)
                        return -1;
        }
        return 0;
}

static int parse_tasks(json_t *reply, struct status_view *v, char *err, size_t errsz)
{
        json_t *tasks = json_object_get(reply, "tasks");

        /* chimerad cannot count tasks while the database is down. */
        if (!tasks || json_is_null(tasks))
                return 0;
        if (!json_is_object(tasks)) {
                snprintf(err, errsz, "invalid reply from chimerad: tasks: not an object");
                return -1;
        }
        for (size_t i = 0; i < sizeof(task_statuses) / sizeof(task_statuses[0]); i++) {
                if (!json_is_integer(json_object_get(tasks, task_statuses[i]))) {
                        snprintf(err, errsz, "invalid reply from chimerad: tasks.%s: not a count",
                                 task_statuses[i]);
                        return -1;
                }
        }
        v->tasks = tasks;
        return 0;
}

/*
 * Checks the whole status reply (borrowed) and fills v, whose strings stay
 * borrowed from it; v->workers must be freed even on failure.  Returns 0,
 * or -1 with err set.
 */
static int parse_status(json_t *reply, struct status_view *v, char *err, size_t errsz)
{
        json_error_t jerr;

        if (json_unpack_ex(reply, &jerr, 0, "{s:{s:s, s:I, s:s, s:I, s:o, s:s}}", "supervisor",
                           "host", &v->host, "pid", &v->pid, "version", &v->version, "uptime_ms",
                           &v->uptime_ms, "queues", &v->queues, "state", &v->state) < 0)
                return bad_reply("supervisor", &jerr, err, errsz);
        if (!json_is_array(v->queues)) {
                snprintf(err, errsz,
                         "invalid reply from chimerad: supervisor.queues: not an array");
                return -1;
        }
        if (json_unpack_ex(reply, &jerr, 0, "{s:{s:b}}", "database", "up", &v->db_up) < 0)
                return bad_reply("database", &jerr, err, errsz);
        if (parse_pool(reply, v, err, errsz) < 0)
                return -1;
        return parse_tasks(reply, v, err, errsz);
}

/*
 * Joins the queue names with ", " into buf, within width bytes (bar a
 * first name longer than that, which the caller cuts): the names that do
 * not fit are counted instead, as in "a, b (+3 more)".  Returns how many
 * were left out.
 */
static size_t fmt_queues(json_t *queues, size_t width, char *buf, size_t size)
{
        size_t n = json_array_size(queues), used = 0, i;
        char more[32];

        buf[0] = '\0';
        for (i = 0; i < n; i++) {
                json_t *q = json_array_get(queues, i);
                const char *name = json_is_string(q) ? json_string_value(q) : "?";
                /* Keep room to say how many of the rest were left out. */
                size_t reserve =
                    i + 1 < n ? (size_t)snprintf(more, sizeof(more), " (+%zu more)", n - i - 1) : 0;
                size_t need = (i ? 2 : 0) + strlen(name);
                if (i > 0 && (used + need >= size || used + need + reserve > width))
                        break;
                snprintf(buf + used, size - used, "%s%s", i ? ", " : "", name);
                used = strlen(buf);
        }
        if (i < n)
                snprintf(buf + used, size - used, " (+%zu more)", n - i);
        return n - i;
}

/* Prints a line, cut to the screen width. */
static void print_fitted(FILE *out, const char *line)
{
        char buf[SCREEN_WIDTH * 4 + 8];

        fit_text(line, SCREEN_WIDTH, buf, sizeof(buf));
        fprintf(out, "%s\n", buf);
}

static void print_supervisor(FILE *out, const struct status_view *v)
{
        const char *label = ", queues: ";
        char up[16], queues[SCREEN_WIDTH + 32], head[512], line[640];
        size_t room = 0;

        fmt_duration(v->uptime_ms, up, sizeof(up));
        snprintf(head, sizeof(head), "chimerad %s pid %" JSON_INTEGER_FORMAT " on %s, up %s, %s",
                 v->version, v->pid, v->host, up, v->state);
        if (strlen(head) + strlen(label) < SCREEN_WIDTH)
                room = SCREEN_WIDTH - strlen(head) - strlen(label);
        if (room > 0 && fmt_queues(v->queues, room, queues, sizeof(queues)) == 0) {
                snprintf(line, sizeof(line), "%s%s%s", head, label, queues);
                print_fitted(out, line);
                return;
        }
        /* Many queues get a line of their own rather than be cut short. */
        print_fitted(out, head);
        fmt_queues(v->queues, SCREEN_WIDTH - strlen("queues: "), queues, sizeof(queues));
        snprintf(line, sizeof(line), "queues: %s", queues);
        print_fitted(out, line);
}

static void print_tasks(FILE *out, const struct status_view *v)
{
        char line[512];
        size_t used;

        if (!v->tasks) {
                fprintf(out, "tasks: unknown while the database is down\n");
                return;
        }
        used = (size_t)snprintf(line, sizeof(line), "tasks:");
        for (size_t i = 0; i < sizeof(task_statuses) / sizeof(task_statuses[0]); i++) {
                json_t *n = json_object_get(v->tasks, task_statuses[i]);
                used += (size_t)snprintf(line + used, sizeof(line) - used,
                                         "%s %s %" JSON_INTEGER_FORMAT, i ? "," : "",
                                         task_statuses[i], json_integer_value(n));
        }
        print_fitted(out, line);
}

static void print_status(FILE *out, const struct status_view *v)
{
        print_supervisor(out, v);
        fprintf(out, "database: %s\n", v->db_up ? "up" : "down");
        fprintf(out,
                "pool: %" JSON_INTEGER_FORMAT " worker%s, %" JSON_INTEGER_FORMAT
                " busy, %" JSON_INTEGER_FORMAT " idle, %" JSON_INTEGER_FORMAT " starting\n",
                v->size, v->size == 1 ? "" : "s", v->busy, v->idle, v->starting);
        if (v->nworkers > 0) {
                const char *titles[NCOLS];

                for (int i = 0; i < NCOLS; i++)
                        titles[i] = columns[i].title;
                fputc('\n', out);
                print_row(out, titles);
                for (size_t i = 0; i < v->nworkers; i++)
                        print_worker(out, &v->workers[i]);
        }
        fputc('\n', out);
        print_tasks(out, v);
}

/* Prints a status reply for people or, with --json, as indented JSON. */
static int print_status_reply(const struct ctl_opts *opts, json_t *reply)
{
        struct status_view v = {0};
        char err[512];
        int rc = EXIT_FAILURE;

        if (opts->json) {
                if (json_dumpf(reply, stdout, JSON_INDENT(2)) < 0)
                        goto out;
                fputc('\n', stdout);
        } else {
                if (parse_status(reply, &v, err, sizeof(err)) < 0) {
                        ctl_errx("%s", err);
                        goto out;
                }
                print_status(stdout, &v);
        }
        rc = EXIT_SUCCESS;
out:
        free(v.workers);
        return rc;
}

static int cmd_status(const struct ctl_opts *opts, int argc, char **argv)
{
        json_t *req = NULL, *reply = NULL;
        char *sock = NULL;
        char err[1024];
        int rc = EXIT_FAILURE;

        if (argc > 0) {
                ctl_errx("status takes no arguments");
                usage(stderr);
                return EXIT_USAGE;
        }
        sock = resolve_socket(opts);
        if (!sock)
                goto out;
        req = json_pack("{s:s}", "cmd", "status");
        reply = req ? ctl_call(sock, req, err, sizeof(err)) : NULL;
        if (!reply) {
                ctl_errx("%s", req ? err : "out of memory");
                goto out;
        }
        rc = print_status_reply(opts, reply);
out:
        json_decref(reply);
        json_decref(req);
        free(sock);
        return rc;
}

/* ---- command line ---- */

enum { OPT_SOCKET = 256, OPT_JSON, OPT_VERSION };

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},    {"socket", required_argument, NULL, OPT_SOCKET},
    {"json", no_argument, NULL, OPT_JSON},       {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("chimera-ctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        usage(stderr);
        return EXIT_USAGE;
}

static int option_error(int c, char **argv)
{
        char opt[3] = {'-', (char)optopt, '\0'};
        /* optopt holds a short option's letter; a long one is named by argv. */
        const char *name = optopt > 0 && optopt < 128 ? opt : argv[optind - 1];

        if (c == ':')
                return usage_error("option %s needs an argument", name);
        return usage_error("unknown option %s", name);
}

/*
 * Parses the options, which may come before or after the command (GNU
 * getopt moves them in front).  Returns -1 to go on with the operands at
 * argv[optind], or an exit status.
 */
static int parse_options(int argc, char **argv, struct ctl_opts *opts)
{
        int c;

        opterr = 0; /* our messages name the program, not argv[0] */
        while ((c = getopt_long(argc, argv, ":c:h", long_options, NULL)) != -1) {
                switch (c) {
                case 'c':
                        opts->config_path = optarg;
                        break;
                case OPT_SOCKET:
                        opts->socket_path = optarg;
                        break;
                case OPT_JSON:
                        opts->json = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_SUCCESS;
                case OPT_VERSION:
                        printf("chimera-ctl %s\n", CHIMERA_VERSION);
                        return EXIT_SUCCESS;
                default:
                        return option_error(c, argv);
                }
        }
        return -1;
}

static const struct ctl_cmd *find_command(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        }
        return NULL;
}

int main(int argc, char **argv)
{
        struct ctl_opts opts = {0};
        const struct ctl_cmd *cmd;
        int rc;

        log_init("chimera-ctl", LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
        rc = parse_options(argc, argv, &opts);
        if (rc >= 0)
                return rc;
        if (optind >= argc)
                return usage_error("no command given");
        cmd = find_command(argv[optind]);
        if (!cmd)
                return usage_error("unknown command '%s'", argv[optind]);
        rc = cmd->run(&opts, argc - optind - 1, argv + optind + 1);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                ctl_errx("writing the output: %s", strerror(errno));
                return EXIT_FAILURE;
        }
        return rc;
}
