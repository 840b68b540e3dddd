/*
 * chimera-ctl.c - the operator's command line.
 *
 * Live state (what each worker runs right now) only chimerad knows, so
 * chimera-ctl asks it over the control socket: one newline-terminated JSON
 * request, one newline-terminated JSON reply, then the connection closes.
 * The socket is found the way chimerad finds it, through the same config
 * file, so an operator never has to repeat a path.
 *
 * Task history lives in PostgreSQL, and chimera-ctl reads it there
 * directly with libpq (blocking: a command line has nothing else to do
 * meanwhile), from the database the same config names, so `show` works
 * whether or not a chimerad is running.  `retry` changes a task there too,
 * in one statement that checks and acts under the row's lock.
 *
 * Each command is a row in commands[].  It prints its reply laid out for
 * people (80 columns), or with --json as JSON for scripts.  A reply is input from
 * another process, possibly of another version or broken: every exchange is
 * bounded in time and size, and the reply is checked in full before any of
 * it is printed, so a bad one gives a clear error, never a crash or half a
 * table.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

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
#define LINE_BUF           (SCREEN_WIDTH * 4 + 8) /* one screen line of UTF-8, and a NUL */
#define MAX_WRAPPED_LINES  4
#define DB_CONNECT_TIMEOUT "10" /* seconds, unless the connection string says otherwise */

struct ctl_opts {
        const char *config_path; /* -c FILE, or NULL for the default */
        const char *socket_path; /* --socket PATH, or NULL */
        const char *database;    /* --database URL, or NULL */
        int json;                /* --json */
};

struct ctl_cmd {
        const char *name;
        const char *synopsis; /* the command with its operands, for the usage text */
        const char *help;     /* one line for the usage text */
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
        json_int_t restarts, crash_streak; /* 0 from a supervisor that does not say */
        json_t *breakers;                  /* borrowed array, or NULL */
        struct status_worker *workers;     /* owned array */
        size_t nworkers;
        json_t *tasks; /* object, or NULL when the database is down */
};

/* A task row as to_jsonb() gives it, checked; everything borrowed from it. */
struct task_view {
        json_int_t id, attempts, max_attempts, priority;
        const char *workflow, *queue, *status, *trace_id, *created_at;
        json_t *payload, *result, *state;              /* each may be JSON null */
        const char *last_error;                        /* NULL when unset */
        const char *started_at, *finished_at, *run_at; /* ISO 8601 text, or NULL */
};

static int cmd_status(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_show(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_retry(const struct ctl_opts *opts, int argc, char **argv);

static const struct ctl_cmd commands[] = {
    {"status", "status", "the supervisor, what each worker runs, task counts", cmd_status},
    {"show", "show ID", "a task's row and its timeline of events", cmd_show},
    {"retry", "retry ID", "put a dead or failed task back in the queue", cmd_retry},
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
        fprintf(out, "usage: chimera-ctl [-c FILE] [--socket PATH] [--database URL] [--json]\n"
                     "                   COMMAND [ARG]\n"
                     "\n"
                     "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(out, "  %-18s%s\n", commands[i].synopsis, commands[i].help);
        fprintf(out,
                "\n"
                "Options:\n"
                "  -c, --config FILE    config file naming the control socket and the\n"
                "                       database (default " CONFIG_DEFAULT_PATH ")\n"
                "      --socket PATH    control socket to use, overriding the config\n"
                "      --database URL   database holding the task queue (a libpq URL or\n"
                "                       key=value string), overriding the config, which is\n"
                "                       then not read; without it: the config's \"database\",\n"
                "                       else CHIMERA_DATABASE_URL, else libpq's PG* variables\n"
                "      --json           print JSON, for scripts\n"
                "  -h, --help           show this help and exit\n"
                "      --version        show the version and exit\n"
                "\n"
                "retry ID queues a dead or failed task again, to run now with all its\n"
                "max_attempts.  A dead task resumes at the phase it reached; a failed one\n"
                "starts over from the first phase.  Its last_error stays until it ends\n"
                "again.  Other tasks (queued, running, succeeded, cancelled) are left alone.\n"
                "\n"
                "Exit status:\n"
                "  0  success\n"
                "  1  error: no chimerad running, database unreachable or without the\n"
                "     chimera schema, no such task, a task retry cannot act on,\n"
                "     unreadable config, bad reply, ...\n"
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
 * Loads the config file for what it names: -c FILE, else the default path.
 * A missing default file is fine (*cfg stays NULL and the defaults apply,
 * as they do for chimerad); a file named with -c must load.  Returns 0, or
 * -1 after printing the error.
 */
static int load_config(const struct ctl_opts *opts, struct config **cfg)
{
        const char *path = opts->config_path ? opts->config_path : CONFIG_DEFAULT_PATH;
        char err[1024];

        *cfg = NULL;
        if (!opts->config_path && access(path, F_OK) < 0 && errno == ENOENT)
                return 0;
        *cfg = config_load(path, err, sizeof(err));
        if (!*cfg) {
                ctl_errx("%s", err);
                return -1;
        }
        return 0;
}

/*
 * Finds the control socket: --socket, else the config file's
 * control_socket, else the default.  Returns a new string, or NULL after
 * printing the error.
 */
static char *resolve_socket(const struct ctl_opts *opts)
{
        struct config *cfg;
        char *sock;

        if (opts->socket_path)
                return util_strdup(opts->socket_path);
        if (load_config(opts, &cfg) < 0)
                return NULL;
        sock = util_strdup(cfg && cfg->control_socket ? cfg->control_socket
                                                      : CONFIG_DEFAULT_CONTROL_SOCKET);
        config_free(cfg);
        return sock;
}

/* ---- database client ---- */

/*
 * Finds the database as chimerad does: --database, else the config file's
 * database, else CHIMERA_DATABASE_URL, else "" (libpq's PG* variables).
 * With --database the config is not read at all, so a missing or broken
 * one is no error.  Returns a new string, or NULL after printing the error.
 */
static char *resolve_database(const struct ctl_opts *opts)
{
        const char *env = getenv("CHIMERA_DATABASE_URL");
        struct config *cfg;
        char *conninfo;

        if (opts->database)
                return util_strdup(opts->database);
        if (load_config(opts, &cfg) < 0)
                return NULL;
        conninfo = util_strdup(cfg && cfg->database ? cfg->database : env ? env : "");
        config_free(cfg);
        return conninfo;
}

/* "what: message", without the newline libpq ends its messages with. */
static void db_error(const char *what, const char *msg, char *err, size_t errsz)
{
        size_t n;

        snprintf(err, errsz, "%s: %s", what, msg);
        n = strlen(err);
        while (n > 0 && isspace((unsigned char)err[n - 1]))
                err[--n] = '\0';
}

/*
 * Connects to the database conninfo names (a URL or key=value string; ""
 * leaves it all to libpq's PG* variables), within DB_CONNECT_TIMEOUT unless
 * the string or PGCONNECT_TIMEOUT sets another, and makes the session UTC
 * so that timestamps read back the same for every operator.  Returns the
 * connection (the caller PQfinish()es it), or NULL with err set.  Messages
 * never show conninfo, which may hold a password; libpq's own do not.
 */
static PGconn *db_connect(const char *conninfo, char *err, size_t errsz)
{
        /* dbname expands to the whole connection string and overrides the
         * keywords before it, so the string's own connect_timeout wins. */
        const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
        const char *const vals[] = {getenv("PGCONNECT_TIMEOUT") ? NULL : DB_CONNECT_TIMEOUT,
                                    "chimera-ctl", conninfo, NULL};
        PGconn *conn = PQconnectdbParams(keys, vals, 1);
        PGresult *res;

        if (!conn) {
                snprintf(err, errsz, "cannot connect to the database: out of memory");
                return NULL;
        }
        if (PQstatus(conn) != CONNECTION_OK) {
                db_error("cannot connect to the database", PQerrorMessage(conn), err, errsz);
                PQfinish(conn);
                return NULL;
        }
        res = PQexec(conn, "SET TIME ZONE 'UTC'");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                db_error("setting the time zone", PQresultErrorMessage(res), err, errsz);
                PQclear(res);
                PQfinish(conn);
                return NULL;
        }
        PQclear(res);
        return conn;
}

/*
 * Finds the database (resolve_database()) and connects to it.  Returns the
 * connection, or NULL after printing the error.
 */
static PGconn *open_database(const struct ctl_opts *opts)
{
        char *conninfo = resolve_database(opts);
        PGconn *conn;
        char err[1024];

        if (!conninfo)
                return NULL;
        conn = db_connect(conninfo, err, sizeof(err));
        if (!conn)
                ctl_errx("%s", err);
        free(conninfo);
        return conn;
}

/*
 * Explains a failed query ("what: message", what being "reading the task"
 * or the like); a missing schema is the usual first-day mistake.
 */
static void query_error(PGconn *conn, const PGresult *res, const char *what, char *err,
                        size_t errsz)
{
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0))
                snprintf(err, errsz,
                         "the chimera schema is missing in database \"%s\": run 'chimerad "
                         "--migrate'",
                         PQdb(conn));
        else
                db_error(what, PQresultErrorMessage(res), err, errsz);
}

/* Decodes one JSON value of a result; returns a new reference, or NULL with err set. */
static json_t *result_json(const PGresult *res, int col, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *v = json_loads(PQgetvalue(res, 0, col), JSON_DECODE_ANY, &jerr);

        if (!v)
                snprintf(err, errsz, "cannot decode the task's %s: %s", col == 0 ? "row" : "events",
                         jerr.text);
        return v;
}

/*
 * Reads task id's row and its events (both new references) in one
 * statement, so that they come from one snapshot: a task that moves on
 * meanwhile is never shown with a timeline newer than its row.  Returns 1,
 * 0 when there is no such task, or -1 with err set.
 */
static int db_read_task(PGconn *conn, const char *id, json_t **task, json_t **events, char *err,
                        size_t errsz)
{
        static const char sql[] =
            "SELECT to_jsonb(t),"
            "       (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]')"
            "          FROM chimera.task_events e WHERE e.task_id = $1)"
            "  FROM chimera.tasks t WHERE t.id = $1";
        PGresult *res = PQexecParams(conn, sql, 1, NULL, &id, NULL, NULL, 0);
        int rc = -1;

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                query_error(conn, res, "reading the task", err, errsz);
                goto out;
        }
        rc = 0;
        if (PQntuples(res) == 0)
                goto out;
        *task = result_json(res, 0, err, errsz);
        *events = *task ? result_json(res, 1, err, errsz) : NULL;
        rc = *events ? 1 : -1;
out:
        PQclear(res);
        return rc;
}

/* What retry found and did. */
struct retry_outcome {
        char *previous; /* the task's status before: dead, failed, or why it was not retried */
        int retried;    /* whether it is queued again */
        char *phase;    /* the phase it resumes at; NULL when it starts over */
};

/*
 * Puts task id back in the queue if it is dead or failed, in one statement:
 * it locks the row (waiting for a writer that holds it, then seeing what that
 * writer committed), and only then judges its status, so two operators, or
 * an operator and a supervisor, can never both act on one old status.
 *
 * The task gets max_attempts attempts again (attempts 0), runs now, and is
 * unleased and unfinished; last_error stays (it says what went wrong before,
 * as it does on an automatic retry) until the task next succeeds or fails.
 * A dead task keeps its checkpoint and resumes at the phase it reached; a
 * failed task starts over (its checkpoint names "failed", or a phase it can
 * only fail from again, such as one past max_transitions), and so does any
 * checkpoint naming a terminal phase, which the runner would refuse.  The
 * "retried" event (attempt 0: between two rounds of attempts) records who
 * and what, and a NOTIFY wakes an idle supervisor, as the insert trigger
 * does for a new task.
 *
 * Returns 1 with out filled (the caller frees its strings), 0 when there is
 * no such task, -1 with err set.
 */
static int db_retry_task(PGconn *conn, const char *id, struct retry_outcome *out, char *err,
                         size_t errsz)
{
        static const char sql[] =
            "WITH o AS ("
            " SELECT id, status, attempts FROM chimera.tasks WHERE id = $1::bigint FOR UPDATE"
            "), u AS ("
            " UPDATE chimera.tasks t SET"
            "   status = 'queued', attempts = 0, run_at = now(), finished_at = NULL,"
            "   lease_owner = NULL, lease_expires_at = NULL, result = NULL,"
            "   state = CASE WHEN o.status = 'failed'"
            "                  OR t.state->>'phase' IN ('complete', 'failed')"
            "                THEN NULL ELSE t.state END"
            "  FROM o WHERE t.id = o.id AND o.status IN ('dead', 'failed')"
            "  RETURNING t.id, t.queue, t.state->>'phase' AS phase"
            "), e AS ("
            " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
            " SELECT u.id, 0, 'retried',"
            "        jsonb_strip_nulls(jsonb_build_object('by', 'chimera-ctl',"
            "          'previous_status', o.status, 'previous_attempts', o.attempts,"
            "          'role', current_user, 'resume_phase', u.phase))"
            "   FROM u JOIN o ON o.id = u.id"
            ")"
            "SELECT o.status, u.id IS NOT NULL, u.phase,"
            "       CASE WHEN u.id IS NOT NULL THEN pg_notify('chimera_tasks', u.queue) END"
            "  FROM o LEFT JOIN u ON true";
        PGresult *res = PQexecParams(conn, sql, 1, NULL, &id, NULL, NULL, 0);
        int rc = -1;

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                query_error(conn, res, "retrying the task", err, errsz);
                goto done;
        }
        rc = PQntuples(res) > 0;
        if (rc == 0)
                goto done;
        out->previous = util_strdup(PQgetvalue(res, 0, 0));
        out->retried = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        out->phase = PQgetisnull(res, 0, 2) ? NULL : util_strdup(PQgetvalue(res, 0, 2));
done:
        PQclear(res);
        return rc;
}

/* ---- formatting ---- */

static void appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends to the string in buf (size bytes), cutting what does not fit. */
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
        size_t used = strlen(buf);
        va_list ap;

        if (used + 1 >= size)
                return;
        va_start(ap, fmt);
        vsnprintf(buf + used, size - used, fmt, ap);
        va_end(ap);
}

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

/* Columns a text takes on a terminal: one per UTF-8 character. */
static int text_cols(const char *s)
{
        int cols = 0;

        for (; *s != '\0'; s++)
                cols += !is_utf8_continuation((unsigned char)*s);
        return cols;
}

/* Prints a line, cut to the screen width. */
static void print_fitted(FILE *out, const char *line)
{
        char buf[LINE_BUF];

        fit_text(line, SCREEN_WIDTH, buf, sizeof(buf));
        fprintf(out, "%s\n", buf);
}

/*
 * Length in bytes of the next line of p when wrapped at width columns: up
 * to a newline, else the longest run that fits and ends before a space,
 * else (a word longer than the line) as much as fits.
 */
static size_t wrap_segment(const char *p, int width)
{
        size_t i = 0, brk = 0;
        int cols = 0;

        for (; p[i] != '\0' && p[i] != '\n' && p[i] != '\r'; i++) {
                if (!is_utf8_continuation((unsigned char)p[i])) {
                        if (cols == width)
                                break;
                        cols++;
                }
                if (p[i] == ' ' || p[i] == '\t')
                        brk = i;
        }
        if (strchr(" \t\r\n", p[i]) != NULL) /* also true at the end: strchr finds the NUL */
                return i;
        return brk > 0 ? brk : i;
}

/* Copies at most len bytes of src into dst (size LINE_BUF) with tabs and newlines as spaces. */
static void copy_flat(const char *src, size_t len, char *dst)
{
        size_t i;

        for (i = 0; i < len && i < LINE_BUF - 1 && src[i] != '\0'; i++)
                dst[i] = strchr("\t\r\n", src[i]) != NULL ? ' ' : src[i];
        dst[i] = '\0';
}

/*
 * Breaks text into at most maxlines (<= MAX_WRAPPED_LINES) lines of at
 * most width (1..SCREEN_WIDTH) columns, at spaces where it can and at the
 * text's own newlines; each line is made safe by fit_text(), and text that
 * does not fit ends the last line in '~'.  Returns the number of lines.
 */
static int wrap_text(const char *text, int width, char lines[][LINE_BUF], int maxlines)
{
        const char *p = text;
        char flat[LINE_BUF];
        int n = 0;

        for (; n < maxlines; n++) {
                size_t len;

                p += strspn(p, " \t\r\n");
                if (*p == '\0')
                        break;
                len = wrap_segment(p, width);
                /* The last line takes all that is left, for fit_text() to cut. */
                copy_flat(p, n == maxlines - 1 ? SIZE_MAX : len, flat);
                fit_text(flat, width, lines[n], LINE_BUF);
                p += len;
        }
        return n;
}

/*
 * Prints text wrapped by wrap_text(): the first line after label, padded
 * to indent columns, the others after indent spaces.
 */
static void print_wrapped(FILE *out, const char *label, int indent, const char *text, int maxlines)
{
        char lines[MAX_WRAPPED_LINES][LINE_BUF];
        int n = wrap_text(text, SCREEN_WIDTH - indent, lines, maxlines);

        for (int i = 0; i < n; i++)
                fprintf(out, "%-*s%s\n", indent, i == 0 ? label : "", lines[i]);
}

/* Prints v (borrowed) as indented JSON on stdout; returns the exit status. */
static int print_json(json_t *v)
{
        if (json_dumpf(v, stdout, JSON_INDENT(2)) < 0)
                return EXIT_FAILURE;
        fputc('\n', stdout);
        return EXIT_SUCCESS;
}

/* ---- tables ---- */

struct column {
        const char *title;
        int width;   /* columns of text */
        int gap;     /* spaces after it */
        int right;   /* right-aligned */
        int squeeze; /* may be cut to make room, so rows fit SCREEN_WIDTH */
};

/*
 * Prints one row of a table of ncols columns.  A cell wider than its
 * column (a long task id) takes up to MAX_OVERFLOW more columns and pushes
 * the rest right; the squeezable columns give that room back, so the row
 * still fits the screen.  Trailing blanks (empty last cells) are dropped.
 */
static void print_row(FILE *out, const struct column *cols, int ncols, const char *const cells[])
{
        char text[256], row[1024];
        size_t used = 0;
        int debt = 0;

        for (int i = 0; i < ncols && used < sizeof(row); i++) {
                const struct column *c = &cols[i];
                int w = c->width, n;

                if (c->squeeze && debt > 0 && w > MIN_SQUEEZED_WIDTH) {
                        int give = debt < w - MIN_SQUEEZED_WIDTH ? debt : w - MIN_SQUEEZED_WIDTH;
                        w -= give;
                        debt -= give;
                }
                n = fit_text(cells[i], c->squeeze ? w : w + MAX_OVERFLOW, text, sizeof(text));
                if (n > w) {
                        debt += n - w;
                        w = n;
                }
                used += (size_t)snprintf(row + used, sizeof(row) - used, "%*s%s%*s",
                                         c->right ? w - n : 0, "", text,
                                         (c->right ? 0 : w - n) + (i < ncols - 1 ? c->gap : 0), "");
        }
        used = strlen(row);
        while (used > 0 && row[used - 1] == ' ')
                row[--used] = '\0';
        fprintf(out, "%s\n", row);
}

/* Prints the titles of a table's columns as its first row. */
static void print_titles(FILE *out, const struct column *cols, int ncols)
{
        const char *titles[16];

        for (int i = 0; i < ncols && i < 16; i++)
                titles[i] = cols[i].title;
        print_row(out, cols, ncols, titles);
}

/* ---- the worker table ---- */

enum { COL_SLOT, COL_PID, COL_STATE, COL_DONE, COL_TASK, COL_WORKFLOW, COL_PHASE, COL_FOR, NCOLS };

/* Widths add up to SCREEN_WIDTH; durations never take more than 5. */
static const struct column columns[NCOLS] = {
    {"SLOT", 5, 1, 0, 0}, {"PID", 7, 1, 0, 0},       {"STATE", 8, 1, 0, 0},  {"DONE", 4, 2, 1, 0},
    {"TASK", 9, 1, 0, 0}, {"WORKFLOW", 15, 1, 0, 1}, {"PHASE", 19, 1, 0, 1}, {"FOR", 5, 0, 0, 0},
};

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
        print_row(out, columns, NCOLS, cells);
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
        v->restarts =
            json_integer_value(json_object_get(json_object_get(reply, "pool"), "restarts"));
        v->crash_streak =
            json_integer_value(json_object_get(json_object_get(reply, "pool"), "crash_streak"));
        v->breakers = json_object_get(reply, "breakers");
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

/* Agents paused (or failing) by their circuit breaker, one line each. */
static void print_breakers(FILE *out, const struct status_view *v)
{
        json_t *b;
        size_t i;
        char line[512], left[32];

        json_array_foreach (v->breakers, i, b) {
                json_int_t open_ms = json_integer_value(json_object_get(b, "open_ms"));
                const char *agent = json_string_value(json_object_get(b, "agent"));
                fmt_duration(open_ms, left, sizeof(left));
                snprintf(line, sizeof(line),
                         "breaker: agent %s, %" JSON_INTEGER_FORMAT " faults in a row, %s%s",
                         agent ? agent : "?", json_integer_value(json_object_get(b, "failures")),
                         open_ms > 0 ? "paused for another " : "closed", open_ms > 0 ? left : "");
                print_fitted(out, line);
        }
}

static void print_status(FILE *out, const struct status_view *v)
{
        char line[256];

        print_supervisor(out, v);
        fprintf(out, "database: %s\n", v->db_up ? "up" : "down");
        snprintf(line, sizeof(line),
                 "pool: %" JSON_INTEGER_FORMAT " worker%s, %" JSON_INTEGER_FORMAT
                 " busy, %" JSON_INTEGER_FORMAT " idle, %" JSON_INTEGER_FORMAT
                 " starting, %" JSON_INTEGER_FORMAT " restarts%s",
                 v->size, v->size == 1 ? "" : "s", v->busy, v->idle, v->starting, v->restarts,
                 v->crash_streak > 0 ? " (workers crashing at start)" : "");
        print_fitted(out, line);
        print_breakers(out, v);
        if (v->nworkers > 0) {
                fputc('\n', out);
                print_titles(out, columns, NCOLS);
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
                if (print_json(reply) != EXIT_SUCCESS)
                        goto out;
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

/* ---- show ---- */

#define DAY_MS          (24 * 60 * 60 * 1000LL)
#define NO_DAY          INT64_MIN
#define ANY_DAY         INT64_MAX
#define LABEL_WIDTH     10 /* "created   ", "payload   ": the task's labels */
#define MAX_KIND_COLS   16
#define MAX_PHASE_COLS  24
#define MIN_DETAIL_COLS 6 /* a narrower DETAIL column moves every detail to its own line */
#define DETAIL_LINES    3

enum { EV_TIME, EV_ATT, EV_EVENT, EV_PHASE, EV_DURATION, EV_DETAIL, NEVCOLS };

static int64_t floor_div(int64_t a, int64_t b)
{
        return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Reads exactly n digits at *s; returns the number, or -1. */
static int read_digits(const char **s, int n)
{
        int v = 0;

        for (int i = 0; i < n; i++, (*s)++) {
                if (!isdigit((unsigned char)**s))
                        return -1;
                v = v * 10 + (**s - '0');
        }
        return v;
}

/*
 * Reads a UTC offset: "Z", or +HH, +HH:MM, +HH:MM:SS (or -).  Returns the
 * seconds east of UTC, with *ok saying whether there was one.
 */
static int read_offset(const char **s, int *ok)
{
        int sign = **s == '-' ? -1 : 1, secs = 0, mul = 3600;

        *ok = 0;
        if (**s == 'Z') {
                (*s)++;
                *ok = 1;
                return 0;
        }
        if (**s != '+' && **s != '-')
                return 0;
        (*s)++;
        for (;;) {
                int v = read_digits(s, 2);
                if (v < 0)
                        return 0;
                secs += v * mul;
                if (**s != ':' || mul == 1)
                        break;
                (*s)++;
                mul /= 60;
        }
        *ok = 1;
        return sign * secs;
}

/*
 * Parses a timestamp as PostgreSQL writes one in JSON
 * ("2026-11-29T21:54:06.249455+00:00"; the fraction optional, of any
 * length) into milliseconds since the epoch.  Returns 0, or -1 for
 * anything else ("infinity", a year beyond 9999).
 */
static int parse_time(const char *s, int64_t *ms)
{
        struct tm tm = {0};
        int frac = 0, scale = 1000, offset, ok;

        tm.tm_year = read_digits(&s, 4) - 1900;
        if (tm.tm_year < -1900 || *s++ != '-' || (tm.tm_mon = read_digits(&s, 2) - 1) < 0 ||
            *s++ != '-' || (tm.tm_mday = read_digits(&s, 2)) < 0 || *s++ != 'T' ||
            (tm.tm_hour = read_digits(&s, 2)) < 0 || *s++ != ':' ||
            (tm.tm_min = read_digits(&s, 2)) < 0 || *s++ != ':' ||
            (tm.tm_sec = read_digits(&s, 2)) < 0)
                return -1;
        if (*s == '.') {
                for (s++; isdigit((unsigned char)*s); s++) {
                        if (scale > 1) {
                                scale /= 10;
                                frac += (*s - '0') * scale;
                        }
                }
        }
        offset = read_offset(&s, &ok);
        if (!ok || *s != '\0')
                return -1;
        *ms = ((int64_t)timegm(&tm) - offset) * 1000 + frac;
        return 0;
}

/* Formats ms since the epoch in UTC: "21:54:06.249", after "2026-11-29 " when with_date. */
static void fmt_time(int64_t ms, int with_date, char *buf, size_t size)
{
        time_t t = (time_t)floor_div(ms, 1000);
        struct tm tm;
        char date[32] = "";

        gmtime_r(&t, &tm);
        if (with_date)
                strftime(date, sizeof(date), "%Y-%m-%d ", &tm);
        snprintf(buf, size, "%s%02d:%02d:%02d.%03d", date, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - floor_div(ms, 1000) * 1000));
}

/*
 * Formats an ISO timestamp as fmt_time() does, with the date unless it
 * falls on day (days since the epoch; NO_DAY: always the date, ANY_DAY:
 * never); one that does not parse is shown as it is.
 */
static void fmt_iso(const char *iso, int64_t day, char *buf, size_t size)
{
        int64_t ms;

        if (parse_time(iso, &ms) < 0)
                snprintf(buf, size, "%s", iso);
        else
                fmt_time(ms, day != ANY_DAY && floor_div(ms, DAY_MS) != day, buf, size);
}

/* The member key of o as a string, or NULL when absent, null or not a string. */
static const char *opt_string(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static int parse_task(json_t *row, struct task_view *v, char *err, size_t errsz)
{
        json_error_t jerr;

        if (json_unpack_ex(
                row, &jerr, 0, "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:o, s:o}", "id",
                &v->id, "workflow", &v->workflow, "queue", &v->queue, "status", &v->status,
                "attempts", &v->attempts, "max_attempts", &v->max_attempts, "priority",
                &v->priority, "trace_id", &v->trace_id, "created_at", &v->created_at, "payload",
                &v->payload, "result", &v->result, "state", &v->state) < 0) {
                snprintf(err, errsz, "unexpected task row: %s", jerr.text);
                return -1;
        }
        v->last_error = opt_string(row, "last_error");
        v->started_at = opt_string(row, "started_at");
        v->finished_at = opt_string(row, "finished_at");
        v->run_at = opt_string(row, "run_at");
        return 0;
}

static void print_task_head(FILE *out, const struct task_view *v)
{
        char wf[LINE_BUF], line[LINE_BUF * 2];

        fit_text(v->workflow, 24, wf, sizeof(wf));
        snprintf(line, sizeof(line),
                 "task %" JSON_INTEGER_FORMAT "  %s  %s  attempt %" JSON_INTEGER_FORMAT
                 " of %" JSON_INTEGER_FORMAT "  priority %" JSON_INTEGER_FORMAT "  queue %s",
                 v->id, wf, v->status, v->attempts, v->max_attempts, v->priority, v->queue);
        print_fitted(out, line);
        snprintf(line, sizeof(line), "%-*s%s", LABEL_WIDTH, "trace", v->trace_id);
        print_fitted(out, line);
}

/*
 * Prints the task's times on one line when they fit ("created 2026-11-29
 * 21:54:06.249  started 21:54:06.250 ..."; a date only where it changes),
 * else one to a line.  "run at" is when a queued task may next be claimed.
 */
static void print_task_times(FILE *out, const struct task_view *v)
{
        const struct {
                const char *label, *iso;
        } t[] = {{"created", v->created_at},
                 {"started", v->started_at},
                 {"finished", v->finished_at},
                 {"run at", strcmp(v->status, "queued") == 0 ? v->run_at : NULL}};
        int64_t day = NO_DAY, ms;
        char stamp[64], line[512];
        size_t used = 0;

        /* created is never null: it leads the line, under the other labels. */
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]) && used < sizeof(line); i++) {
                if (!t[i].iso)
                        continue;
                fmt_iso(t[i].iso, day, stamp, sizeof(stamp));
                if (used == 0)
                        used = (size_t)snprintf(line, sizeof(line), "%-*s%s", LABEL_WIDTH,
                                                t[i].label, stamp);
                else
                        used += (size_t)snprintf(line + used, sizeof(line) - used, "  %s %s",
                                                 t[i].label, stamp);
                if (parse_time(t[i].iso, &ms) == 0)
                        day = floor_div(ms, DAY_MS);
        }
        if (text_cols(line) <= SCREEN_WIDTH) {
                fprintf(out, "%s\n", line);
                return;
        }
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                if (!t[i].iso)
                        continue;
                fmt_iso(t[i].iso, NO_DAY, stamp, sizeof(stamp));
                snprintf(line, sizeof(line), "%-*s%s", LABEL_WIDTH, t[i].label, stamp);
                print_fitted(out, line);
        }
}

/* Prints "label     {json...}" on one line, cut to fit. */
static void print_json_line(FILE *out, const char *label, json_t *v)
{
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        char fitted[LINE_BUF];

        fit_text(text ? text : "?", SCREEN_WIDTH - LABEL_WIDTH, fitted, sizeof(fitted));
        fprintf(out, "%-*s%s\n", LABEL_WIDTH, label, fitted);
        free(text);
}

/* "state     phase complete, 7 transitions", from the workflow checkpoint. */
static void print_task_state(FILE *out, json_t *state)
{
        const char *phase = opt_string(state, "phase");
        json_t *n = json_object_get(state, "transitions");
        char line[LINE_BUF * 2];

        if (!phase && !json_is_integer(n))
                return;
        snprintf(line, sizeof(line), "%-*s", LABEL_WIDTH, "state");
        if (phase)
                appendf(line, sizeof(line), "phase %s%s", phase, json_is_integer(n) ? ", " : "");
        if (json_is_integer(n))
                appendf(line, sizeof(line), "%" JSON_INTEGER_FORMAT " transition%s",
                        json_integer_value(n), json_integer_value(n) == 1 ? "" : "s");
        print_fitted(out, line);
}

static void print_task(FILE *out, const struct task_view *v)
{
        print_task_head(out, v);
        print_task_times(out, v);
        print_json_line(out, "payload", v->payload);
        if (!json_is_null(v->result))
                print_json_line(out, "result", v->result);
        if (v->last_error)
                print_wrapped(out, "error", LABEL_WIDTH, v->last_error, MAX_WRAPPED_LINES);
        print_task_state(out, v->state);
}

/*
 * What an event's detail says, in a line of text (empty for nothing):
 * "success -> next" for a phase, "by HOST" for a claim, else the error
 * with when it will be retried.  An agent's stderr stays for --json.
 */
static void event_detail(const char *kind, json_t *detail, char *buf, size_t size)
{
        const char *error = opt_string(detail, "error"), *host = opt_string(detail, "host");
        const char *outcome = opt_string(detail, "outcome"), *next = opt_string(detail, "next");
        json_t *retry_in = json_object_get(detail, "retry_in_ms");
        char retry[16];

        buf[0] = '\0';
        if (strcmp(kind, "phase_finished") == 0) {
                appendf(buf, size, "%s", outcome ? outcome : "-");
                if (next)
                        appendf(buf, size, " -> %s", next);
                if (error)
                        appendf(buf, size, ": %s", error);
        } else if (strcmp(kind, "claimed") == 0) {
                if (host)
                        appendf(buf, size, "by %s", host);
        } else {
                /* retried, failed, dead, cancelled, and kinds of later versions */
                const char *by = opt_string(detail, "by");
                const char *was = opt_string(detail, "previous_status");
                if (by)
                        appendf(buf, size, "by %s", by);
                if (by && was)
                        appendf(buf, size, " (was %s)", was);
                if (error)
                        appendf(buf, size, "%s%s", buf[0] ? ": " : "", error);
                if (json_is_integer(retry_in)) {
                        fmt_duration(json_integer_value(retry_in), retry, sizeof(retry));
                        appendf(buf, size, "%s(retry in %s)", buf[0] ? " " : "", retry);
                }
                if (json_is_false(json_object_get(detail, "charged")))
                        appendf(buf, size, "%s(not charged)", buf[0] ? " " : "");
        }
}

/* Whether the events happened on more than one day (in UTC). */
static int spans_days(json_t *events)
{
        int64_t first = NO_DAY, ms;
        json_t *e;
        size_t i;

        json_array_foreach (events, i, e) {
                if (parse_time(opt_string(e, "at") ? opt_string(e, "at") : "", &ms) < 0)
                        continue;
                if (first == NO_DAY)
                        first = floor_div(ms, DAY_MS);
                else if (floor_div(ms, DAY_MS) != first)
                        return 1;
        }
        return 0;
}

static void widen(struct column *c, int cols, int max)
{
        if (cols > max)
                cols = max;
        if (cols > c->width)
                c->width = cols;
}

/*
 * Lays the timeline out: columns as wide as their widest cell (bounded),
 * and whatever is left of the screen for the detail.
 */
static void timeline_layout(json_t *events, struct column cols[NEVCOLS])
{
        static const struct column base[NEVCOLS] = {
            {"TIME", 12, 2, 0, 0}, {"ATT", 3, 2, 1, 0},      {"EVENT", 5, 2, 0, 1},
            {"PHASE", 5, 2, 0, 1}, {"DURATION", 8, 2, 0, 0}, {"DETAIL", 0, 0, 0, 1},
        };
        char att[24];
        int used = 0;
        json_t *e;
        size_t i;

        memcpy(cols, base, sizeof(base));
        if (spans_days(events))
                cols[EV_TIME].width = 23;
        json_array_foreach (events, i, e) {
                const char *phase = opt_string(e, "phase");
                snprintf(att, sizeof(att), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(e, "attempt")));
                widen(&cols[EV_ATT], text_cols(att), 10);
                widen(&cols[EV_EVENT],
                      text_cols(opt_string(e, "kind") ? opt_string(e, "kind") : ""), MAX_KIND_COLS);
                widen(&cols[EV_PHASE], phase ? text_cols(phase) : 1, MAX_PHASE_COLS);
        }
        for (int c = 0; c < EV_DETAIL; c++)
                used += cols[c].width + cols[c].gap;
        cols[EV_DETAIL].width = SCREEN_WIDTH - used;
        if (cols[EV_DETAIL].width < MIN_DETAIL_COLS)
                cols[EV_DETAIL].title = "";
}

/*
 * Prints one event.  A detail too long for its column goes on lines of
 * its own below the row, indented under EVENT, rather than be cut short.
 */
static void print_event(FILE *out, const struct column cols[NEVCOLS], json_t *e, int with_date)
{
        const char *kind = opt_string(e, "kind"), *phase = opt_string(e, "phase");
        const char *at = opt_string(e, "at");
        json_t *detail = json_object_get(e, "detail"), *ms = json_object_get(detail, "duration_ms");
        char stamp[64], att[24], took[16], text[4096];
        const char *cells[NEVCOLS];
        int wide;

        if (at)
                fmt_iso(at, with_date ? NO_DAY : ANY_DAY, stamp, sizeof(stamp));
        snprintf(att, sizeof(att), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(e, "attempt")));
        if (json_is_integer(ms))
                fmt_duration(json_integer_value(ms), took, sizeof(took));
        event_detail(kind ? kind : "", detail, text, sizeof(text));
        wide = text[0] != '\0' &&
               (cols[EV_DETAIL].width < MIN_DETAIL_COLS || text_cols(text) > cols[EV_DETAIL].width);
        cells[EV_TIME] = at ? stamp : "-";
        cells[EV_ATT] = att;
        cells[EV_EVENT] = kind ? kind : "-";
        cells[EV_PHASE] = phase ? phase : "-";
        cells[EV_DURATION] = json_is_integer(ms) ? took : "-";
        cells[EV_DETAIL] = wide ? "" : text;
        print_row(out, cols, NEVCOLS, cells);
        if (wide)
                print_wrapped(out, "",
                              cols[EV_TIME].width + cols[EV_TIME].gap + cols[EV_ATT].width +
                                  cols[EV_ATT].gap,
                              text, DETAIL_LINES);
}

static void print_timeline(FILE *out, json_t *events)
{
        struct column cols[NEVCOLS];
        int with_date = spans_days(events);
        json_t *e;
        size_t i;

        fputc('\n', out);
        if (json_array_size(events) == 0) {
                fprintf(out, "no events yet\n");
                return;
        }
        timeline_layout(events, cols);
        print_titles(out, cols, NEVCOLS);
        json_array_foreach (events, i, e)
                print_event(out, cols, e, with_date);
}

/* Prints a task (row and events, borrowed) for people or, with --json, as one object. */
static int print_show(const struct ctl_opts *opts, json_t *task, json_t *events)
{
        struct task_view v = {0};
        char err[512];
        json_t *all;
        int rc;

        if (opts->json) {
                all = json_pack("{s:O, s:O}", "task", task, "events", events);
                rc = all ? print_json(all) : EXIT_FAILURE;
                json_decref(all);
                return rc;
        }
        if (parse_task(task, &v, err, sizeof(err)) < 0 || !json_is_array(events)) {
                ctl_errx("%s", json_is_array(events) ? err : "unexpected task events: not a list");
                return EXIT_FAILURE;
        }
        print_task(stdout, &v);
        print_timeline(stdout, events);
        return EXIT_SUCCESS;
}

/* Copies a task id operand, a positive 64-bit integer, as canonical decimal; 0 or -1. */
static int parse_task_id(const char *s, char *buf, size_t size)
{
        char *end;
        long long id;

        if (!isdigit((unsigned char)s[0]))
                return -1;
        errno = 0;
        id = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0' || id <= 0)
                return -1;
        snprintf(buf, size, "%lld", id);
        return 0;
}

/*
 * Takes the one operand of command name, a task id, into buf as canonical
 * decimal.  Returns 0, or EXIT_USAGE after printing the error and usage.
 */
static int task_id_operand(const char *name, int argc, char **argv, char *buf, size_t size)
{
        if (argc == 1 && parse_task_id(argv[0], buf, size) == 0)
                return 0;
        if (argc != 1)
                ctl_errx("%s takes one task id", name);
        else
                ctl_errx("%s: a task id is a positive integer, not '%s'", name, argv[0]);
        usage(stderr);
        return EXIT_USAGE;
}

static int cmd_show(const struct ctl_opts *opts, int argc, char **argv)
{
        json_t *task = NULL, *events = NULL;
        char id[32], err[1024];
        PGconn *conn;
        int rc = EXIT_FAILURE, found;

        if (task_id_operand("show", argc, argv, id, sizeof(id)) != 0)
                return EXIT_USAGE;
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        found = db_read_task(conn, id, &task, &events, err, sizeof(err));
        if (found < 0)
                ctl_errx("%s", err);
        else if (found == 0)
                ctl_errx("no task %s", id);
        else
                rc = print_show(opts, task, events);
        json_decref(events);
        json_decref(task);
        PQfinish(conn);
        return rc;
}

/* ---- retry ---- */

#define RETRY_PHASE_COLS 48 /* of a phase name in retry's one line */

/* Prints what retry did: one line for people, or with --json one object. */
static int print_retry(const struct ctl_opts *opts, const char *id, const struct retry_outcome *r)
{
        char phase[LINE_BUF];
        json_t *j;
        int rc;

        if (opts->json) {
                j = json_pack("{s:I, s:s, s:s, s:s?}", "id", (json_int_t)strtoll(id, NULL, 10),
                              "status", "queued", "previous_status", r->previous, "resume_phase",
                              r->phase);
                if (!j) {
                        ctl_errx("cannot encode the reply (invalid UTF-8?)");
                        return EXIT_FAILURE;
                }
                rc = print_json(j);
                json_decref(j);
                return rc;
        }
        if (r->phase) {
                fit_text(r->phase, RETRY_PHASE_COLS, phase, sizeof(phase));
                printf("task %s queued again (was %s); it resumes at phase %s\n", id, r->previous,
                       phase);
        } else {
                printf("task %s queued again (was %s); it starts over\n", id, r->previous);
        }
        return EXIT_SUCCESS;
}

static int cmd_retry(const struct ctl_opts *opts, int argc, char **argv)
{
        struct retry_outcome r = {0};
        char id[32], err[1024];
        PGconn *conn;
        int rc = EXIT_FAILURE, found;

        if (task_id_operand("retry", argc, argv, id, sizeof(id)) != 0)
                return EXIT_USAGE;
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        found = db_retry_task(conn, id, &r, err, sizeof(err));
        if (found < 0)
                ctl_errx("%s", err);
        else if (found == 0)
                ctl_errx("no task %s", id);
        else if (!r.retried)
                ctl_errx("task %s is %s: only dead or failed tasks can be retried", id, r.previous);
        else
                rc = print_retry(opts, id, &r);
        free(r.previous);
        free(r.phase);
        PQfinish(conn);
        return rc;
}

/* ---- command line ---- */

enum { OPT_SOCKET = 256, OPT_DATABASE, OPT_JSON, OPT_VERSION };

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"database", required_argument, NULL, OPT_DATABASE},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
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
                case OPT_DATABASE:
                        opts->database = optarg;
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
