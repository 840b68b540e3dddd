/*
 * chimera-ctl.c - the operator's command line.
 *
 * Live state (what each worker runs right now) only chimerad knows, so
 * chimera-ctl asks it over the control socket: one newline-terminated JSON
 * request, one newline-terminated JSON reply, then the connection closes.
 * The socket is found the way chimerad finds it, through the same config
 * file, so an operator never has to repeat a path.  status, workers, reload
 * and the cancel of a running task go this way, to this host's chimerad.
 *
 * Task history lives in PostgreSQL, and chimera-ctl reads it there
 * directly with libpq (blocking: a command line has nothing else to do
 * meanwhile), from the database the same config names, so tasks, show,
 * submit, retry, cancel, pause, resume and migrate work whether or not a
 * chimerad is running, and status adds what the rows of every supervisor
 * say.  A command that changes a task does it in one statement that checks
 * and acts under the row's lock, so two operators, or an operator and a
 * supervisor, never both act on one old status; every value goes in as a
 * statement parameter.
 *
 * Each command is a row in commands[], with its help and the options it
 * takes.  It prints its reply laid out for people (80 columns), or with
 * --json as JSON for scripts; errors go to stderr as text either way.  A
 * reply is input from another process, possibly of another version or
 * broken: every exchange is bounded in time and size, and the reply is
 * checked in full before any of it is printed, so a bad one gives a clear
 * error, never a crash or half a table.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "util.h"

/* Exit statuses: EXIT_SUCCESS (0), EXIT_FAILURE (1) for any error, and: */
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
#define DB_POLL_MS         50   /* between reads while waiting for chimerad's write */

/* The command options, as bits: each command says which it takes. */
enum {
        OPTF_STATUS = 1 << 0,
        OPTF_QUEUE = 1 << 1,
        OPTF_WORKFLOW = 1 << 2,
        OPTF_LIMIT = 1 << 3,
        OPTF_PRIORITY = 1 << 4,
        OPTF_RUN_AT = 1 << 5,
        OPTF_MAX_ATTEMPTS = 1 << 6,
};

struct ctl_opts {
        const char *config_path; /* -c FILE, or NULL for the default */
        const char *socket_path; /* --socket PATH, or NULL */
        const char *database;    /* --database URL, or NULL */
        int json;                /* --json */
        int help;                /* --help: the command's help, or the general usage */
        int version;             /* --version */
        unsigned given;          /* OPTF_* of the command options given */
        /* Command options as given (NULL when not); each command checks its own. */
        const char *status, *queue, *workflow, *limit;
        const char *priority, *run_at, *max_attempts;
};

struct ctl_cmd {
        const char *name;
        const char *operands; /* for the command list: "ID", "QUEUE", ... */
        const char *synopsis; /* the command with its operands and options */
        const char *summary;  /* one line for the command list */
        const char *help;     /* what `chimera-ctl help NAME` says after the synopsis */
        unsigned options;     /* OPTF_* it takes */
        /* Runs the command with its operands; returns the exit status. */
        int (*run)(const struct ctl_opts *opts, int argc, char **argv);
};

/* The status and workers replies, checked; strings and objects are borrowed from them. */
struct status_worker {
        json_int_t slot, pid, tasks_done;
        const char *state;
        json_t *task, *workflow, *phase, *busy_ms; /* each may be JSON null */
        json_t *attempt, *uptime_ms;               /* each may be JSON null or absent */
        int stale;                                 /* predates the last reload */
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
static int cmd_workers(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_tasks(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_show(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_submit(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_cancel(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_retry(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_pause(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_resume(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_reload(const struct ctl_opts *opts, int argc, char **argv);
static int cmd_migrate(const struct ctl_opts *opts, int argc, char **argv);

/* Every help text fits 80 columns; `chimera-ctl help CMD` prints it. */
static const struct ctl_cmd commands[] = {
    {"status", "", "status", "this chimerad, its workers, the live supervisors, rates",
     "Shows this host's chimerad, asked over the control socket: its state, its\n"
     "database connection, its pool and what each worker runs.  Then, read from\n"
     "the database: tasks by status, how long the oldest task that could run\n"
     "has waited (since its run_at), throughput (tasks finished in the last\n"
     "minute), success rate and average duration over the last hour, paused\n"
     "queues, and every live supervisor (heartbeat within 3 x lease; the lease\n"
     "from the config, else 30s).  \"Finished\" counts succeeded, failed and dead\n"
     "tasks; cancelled ones are left out of the rates.  A duration is\n"
     "finished_at - started_at, that is, of the task's last attempt.\n"
     "\n"
     "With --json: chimerad's reply, plus \"cluster\" (what the database says),\n"
     "or \"cluster\": null and \"cluster_error\" when chimera-ctl cannot read it.\n"
     "\n"
     "Exit status: 0 when chimerad answered, even if chimera-ctl could not read\n"
     "the database (it says so); 1 when no chimerad is running (what the\n"
     "database says is printed all the same) or on another error; 2 on wrong\n"
     "usage.\n",
     0, cmd_status},
    {"workers", "", "workers", "this chimerad's worker processes, in detail",
     "Shows the worker processes of this host's chimerad, from the control\n"
     "socket alone, so it answers while the database is down: per slot the pid,\n"
     "state, tasks done, how long the worker has lived, and the task it runs\n"
     "with its attempt, workflow, phase and for how long.  A state marked *\n"
     "belongs to a worker that predates the last reload: it is replaced when\n"
     "its task ends.  The pool line counts the restarts of every slot.\n"
     "\n"
     "Exit status: 0; 1 when no chimerad is running or on another error; 2 on\n"
     "wrong usage.\n",
     0, cmd_workers},
    {"tasks", "",
     "tasks [--status S] [--queue Q] [--workflow W]\n"
     "                   [--limit N]",
     "recent tasks, newest first",
     "Lists tasks from the database, newest first: id, workflow, status,\n"
     "attempts used of max_attempts, age since it was submitted, and the start\n"
     "of its last error (show ID prints all of it).\n"
     "\n"
     "  --status S     only tasks in status S: queued, running, succeeded,\n"
     "                 failed, dead or cancelled\n"
     "  --queue Q      only tasks of queue Q\n"
     "  --workflow W   only tasks of workflow W\n"
     "  --limit N      at most N tasks (default 20)\n"
     "\n"
     "With --json: an array of rows (without payload, state and result).\n"
     "\n"
     "Exit status: 0, also when no task matches; 1 on an error; 2 on wrong\n"
     "usage.\n",
     OPTF_STATUS | OPTF_QUEUE | OPTF_WORKFLOW | OPTF_LIMIT, cmd_tasks},
    {"show", "ID", "show ID", "a task's row and its timeline of events",
     "Prints task ID's row and its timeline: each claim, phase start and end\n"
     "with duration and outcome, retries, and how it ended.  With --json:\n"
     "{\"task\": the row, \"events\": [every event]}.\n"
     "\n"
     "Exit status: 0; 1 when there is no such task or on an error; 2 on wrong\n"
     "usage.\n",
     0, cmd_show},
    {"submit", "WORKFLOW",
     "submit WORKFLOW [JSON] [--priority N] [--queue Q]\n"
     "                   [--run-at TIME] [--max-attempts N]",
     "queue a new task",
     "Queues a task of WORKFLOW with the JSON object as its payload (default\n"
     "{}) and prints its id; with --json, its row.  The payload is checked\n"
     "before anything is sent; the database checks the rest, and its refusal\n"
     "is printed as it gives it.\n"
     "\n"
     "  --priority N       1 (lowest) to 5 (highest); default 3\n"
     "  --queue Q          default \"default\"\n"
     "  --run-at TIME      not before TIME: a timestamp PostgreSQL reads\n"
     "                     (\"2026-05-01 08:00:00+02\"; without a zone, UTC), or\n"
     "                     +DURATION from now (\"+90s\", \"+5m\", \"+2h\")\n"
     "  --max-attempts N   attempts before the task is dead; default 3\n"
     "\n"
     "Exit status: 0; 1 when the database refuses the task or on an error; 2\n"
     "on wrong usage, such as a payload that is not a JSON object.\n",
     OPTF_QUEUE | OPTF_PRIORITY | OPTF_RUN_AT | OPTF_MAX_ATTEMPTS, cmd_submit},
    {"cancel", "ID", "cancel ID", "cancel a queued or running task",
     "Cancels task ID.  A queued task is cancelled at once, in the database.\n"
     "A running one is stopped by the chimerad that runs it, asked over the\n"
     "control socket: its agent and its worker are killed (the worker is\n"
     "replaced), and the task ends cancelled, never retried.  Only this host's\n"
     "chimerad can be asked: a task running on another host is refused with\n"
     "that host's name; run chimera-ctl cancel there.  Either way a\n"
     "\"cancelled\" event records it.\n"
     "\n"
     "Exit status: 0 when the task is cancelled; 1 when there is no such task,\n"
     "it has ended already (succeeded, failed, dead, cancelled), it runs on\n"
     "another host, chimerad could not stop it, or on another error; 2 on\n"
     "wrong usage.\n",
     0, cmd_cancel},
    {"retry", "ID", "retry ID", "put a dead or failed task back in the queue",
     "Queues a dead or failed task again, to run now with all its\n"
     "max_attempts.  A dead task resumes at the phase it reached; a failed one\n"
     "starts over from the first phase.  Its last_error stays until it ends\n"
     "again, and a \"retried\" event records the retry.  Other tasks (queued,\n"
     "running, succeeded, cancelled) are left alone.\n"
     "\n"
     "Exit status: 0; 1 when there is no such task, it is not dead or failed,\n"
     "or on an error; 2 on wrong usage.\n",
     0, cmd_retry},
    {"pause", "QUEUE", "pause QUEUE", "stop every supervisor claiming from a queue",
     "Pauses QUEUE: no supervisor claims its tasks until it is resumed.  Tasks\n"
     "already running go on, and new ones can still be submitted: they wait.\n"
     "Pausing a paused queue changes nothing; QUEUE need not exist yet.\n"
     "\n"
     "Exit status: 0; 1 on an error; 2 on wrong usage.\n",
     0, cmd_pause},
    {"resume", "QUEUE", "resume QUEUE", "let supervisors claim from a queue again",
     "Lets supervisors claim QUEUE's tasks again, at once: idle ones are woken\n"
     "as a new task wakes them.  Resuming a queue that is not paused changes\n"
     "nothing.\n"
     "\n"
     "Exit status: 0; 1 on an error; 2 on wrong usage.\n",
     0, cmd_resume},
    {"reload", "", "reload", "make this chimerad read its config again",
     "Asks this host's chimerad to read its config file again, as SIGHUP does,\n"
     "and prints its verdict.  A config that does not load is refused with\n"
     "its error, and chimerad goes on with the one it runs.  A good one\n"
     "applies to every task claimed from then on, and the workers are replaced\n"
     "as they finish their current task; database, control_socket and\n"
     "pool.size need a restart.  chimera-ctl reads the config too, to find the\n"
     "socket: when it does not load, chimerad is not asked (--socket PATH asks\n"
     "it all the same).\n"
     "\n"
     "Exit status: 0 when chimerad reloaded; 1 when the config is refused, no\n"
     "chimerad is running, or on another error; 2 on wrong usage.\n",
     0, cmd_reload},
    {"migrate", "", "migrate", "create or upgrade the database schema",
     "Creates or upgrades the chimera schema, as chimerad --migrate does:\n"
     "applies each migration newer than chimera.schema_version, under a lock,\n"
     "so running it twice, or from two hosts at once, is safe.  With --json:\n"
     "{\"from_version\": N, \"version\": M, \"applied\": [names]}.\n"
     "\n"
     "Exit status: 0; 1 on an error; 2 on wrong usage.\n",
     0, cmd_migrate},
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
                     "                   COMMAND [ARG...]\n"
                     "\n"
                     "Commands (chimera-ctl help COMMAND, or COMMAND --help, tells more):\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                char name[32];
                snprintf(name, sizeof(name), "%s%s%s", commands[i].name,
                         commands[i].operands[0] ? " " : "", commands[i].operands);
                fprintf(out, "  %-18s%s\n", name, commands[i].summary);
        }
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
                "      --json           print JSON, for scripts (errors stay text on stderr)\n"
                "  -h, --help           show this help, or the command's, and exit\n"
                "      --version        show the version and exit\n"
                "\n"
                "Exit status:\n"
                "  0  success\n"
                "  1  error: no chimerad running (for status, workers, reload and the\n"
                "     cancel of a running task), database unreachable or without the\n"
                "     chimera schema, no such task, a task the command cannot act on,\n"
                "     a refused submit or reload, unreadable config, bad reply, ...\n"
                "  2  wrong usage: unknown command or option, bad operand\n");
}

static const struct ctl_cmd *find_command(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        }
        return NULL;
}

static void command_help(FILE *out, const struct ctl_cmd *cmd)
{
        fprintf(out,
                "usage: chimera-ctl [OPTIONS] %s\n\n%s\n"
                "OPTIONS: -c FILE, --socket PATH, --database URL, --json (chimera-ctl --help)\n",
                cmd->synopsis, cmd->help);
}

static int command_usage_error(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Reports wrong usage of command name: the message, then the command's
 * synopsis.  Returns EXIT_USAGE.
 */
static int command_usage_error(const char *name, const char *fmt, ...)
{
        const struct ctl_cmd *cmd = find_command(name);
        va_list ap;

        fputs("chimera-ctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (cmd)
                fprintf(stderr,
                        "usage: chimera-ctl [OPTIONS] %s\n(chimera-ctl help %s tells more)\n",
                        cmd->synopsis, cmd->name);
        return EXIT_USAGE;
}

/* Checks that command name got no operands; returns 0, or EXIT_USAGE after saying so. */
static int no_operands(const char *name, int argc)
{
        if (argc == 0)
                return 0;
        return command_usage_error(name, "%s takes no arguments", name);
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

/* " (for root and group G)", saying who may use path, into buf; "" when unknown. */
static void who_may(const char *path, char *buf, size_t size)
{
        struct stat st;
        struct group *gr;

        buf[0] = '\0';
        if (stat(path, &st) < 0)
                return;
        gr = getgrgid(st.st_gid);
        if (gr != NULL)
                snprintf(buf, size, " (mode %04o: its owner and group %s)",
                         (unsigned)(st.st_mode & 07777), gr->gr_name);
        else
                snprintf(buf, size, " (mode %04o: its owner and gid %u)",
                         (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid);
}

static void connect_error(const char *path, int errnum, char *err, size_t errsz)
{
        char who[300];

        if (errnum == EACCES) {
                who_may(path, who, sizeof(who));
                snprintf(err, errsz,
                         "permission denied: cannot connect to chimerad's control "
                         "socket %s%s",
                         path, who);
        } else if (errnum == ENOENT || errnum == ECONNREFUSED || errnum == ENOTDIR)
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
 * Parses a reply and checks its envelope: a JSON object with a boolean
 * "ok".  Returns it (new reference) whatever "ok" says, or NULL with err
 * set.
 */
static json_t *parse_envelope(const char *line, size_t len, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *reply = json_loadb(line, len, 0, &jerr);

        if (!reply) {
                snprintf(err, errsz, "invalid reply from chimerad: %s", jerr.text);
                return NULL;
        }
        if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
                snprintf(err, errsz, "invalid reply from chimerad: no \"ok\" member");
                json_decref(reply);
                return NULL;
        }
        return reply;
}

/*
 * Takes a reply's verdict: returns reply (its reference passes to the
 * caller) when it says "ok": true; otherwise drops it and returns NULL
 * with chimerad's own message in err.  A NULL reply stays NULL, err as is.
 */
static json_t *reply_ok(json_t *reply, char *err, size_t errsz)
{
        json_t *msg;

        if (!reply || json_is_true(json_object_get(reply, "ok")))
                return reply;
        msg = json_object_get(reply, "error");
        snprintf(err, errsz, "%s", json_is_string(msg) ? json_string_value(msg) : "request failed");
        json_decref(reply);
        return NULL;
}

/*
 * Sends one request (borrowed) to the control socket at path and returns
 * the reply (new reference), whatever its "ok", or NULL with err set.  The
 * whole exchange is bounded by CTL_TIMEOUT_MS.
 */
static json_t *ctl_exchange(const char *path, json_t *req, char *err, size_t errsz)
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
        reply = parse_envelope(line, len, err, errsz);
out:
        free(line);
        free(text);
        close(fd);
        return reply;
}

/* As ctl_exchange(), but only a reply that says "ok": true is returned. */
static json_t *ctl_call(const char *path, json_t *req, char *err, size_t errsz)
{
        return reply_ok(ctl_exchange(path, req, err, errsz), err, errsz);
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
        if (!*cfg && access(path, R_OK) < 0 && errno == EACCES) {
                /* The config names the database and may hold its password: it is
                 * for chimerad's group, and so is what it gives access to. */
                char who[300];
                who_may(path, who, sizeof(who));
                ctl_errx("permission denied: cannot read %s%s", path, who);
                return -1;
        }
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
                         "--migrate' (or 'chimera-ctl migrate')",
                         PQdb(conn));
        else
                db_error(what, PQresultErrorMessage(res), err, errsz);
}

/*
 * Explains a statement the database refused for its values (a check
 * constraint, a number out of range, a timestamp it cannot read): "what:
 * the server's message".  Only its primary message is shown, since the
 * DETAIL of a refused row quotes the row, payload and all.  Other errors
 * go to query_error().
 */
static void refusal_error(PGconn *conn, const PGresult *res, const char *what, char *err,
                          size_t errsz)
{
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

        /* Class 22 is data exceptions, 23 integrity constraint violations. */
        if (state && msg && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
                db_error(what, msg, err, errsz);
        else
                query_error(conn, res, what, err, errsz);
}

/* Runs a statement with text parameters (borrowed); the caller PQclear()s the result. */
static PGresult *db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
        return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* Sleeps ms milliseconds, for the rare waits on another process's write. */
static void pause_ms(int ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
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
        w->attempt = json_object_get(o, "attempt");
        w->uptime_ms = json_object_get(o, "uptime_ms");
        w->stale = json_is_true(json_object_get(o, "stale"));
        if (!is_int_or_null(w->task))
                bad = "task";
        else if (!is_string_or_null(w->workflow))
                bad = "workflow";
        else if (!is_string_or_null(w->phase))
                bad = "phase";
        else if (!is_int_or_null(w->busy_ms))
                bad = "busy_ms";
        else if (!is_int_or_null(w->attempt))
                bad = "attempt";
        else if (!is_int_or_null(w->uptime_ms))
                bad = "uptime_ms";
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

/* "tasks: queued 3, running 1, ...", from counts by status (borrowed; NULL: unknown). */
static void print_task_counts(FILE *out, json_t *tasks)
{
        char line[512];
        size_t used;

        if (!tasks) {
                fprintf(out, "tasks: unknown while the database is down\n");
                return;
        }
        used = (size_t)snprintf(line, sizeof(line), "tasks:");
        for (size_t i = 0; i < sizeof(task_statuses) / sizeof(task_statuses[0]); i++) {
                json_t *n = json_object_get(tasks, task_statuses[i]);
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

/* "pool: 4 workers, 1 busy, ..." */
static void print_pool_line(FILE *out, const struct status_view *v)
{
        char line[256];

        snprintf(line, sizeof(line),
                 "pool: %" JSON_INTEGER_FORMAT " worker%s, %" JSON_INTEGER_FORMAT
                 " busy, %" JSON_INTEGER_FORMAT " idle, %" JSON_INTEGER_FORMAT
                 " starting, %" JSON_INTEGER_FORMAT " restarts%s",
                 v->size, v->size == 1 ? "" : "s", v->busy, v->idle, v->starting, v->restarts,
                 v->crash_streak > 0 ? " (workers crashing at start)" : "");
        print_fitted(out, line);
}

/* The live part of status: what this host's chimerad says. */
static void print_status(FILE *out, const struct status_view *v)
{
        print_supervisor(out, v);
        fprintf(out, "database: %s\n", v->db_up ? "up" : "down");
        print_pool_line(out, v);
        print_breakers(out, v);
        if (v->nworkers > 0) {
                fputc('\n', out);
                print_titles(out, columns, NCOLS);
                for (size_t i = 0; i < v->nworkers; i++)
                        print_worker(out, &v->workers[i]);
        }
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

/* A non-negative integer member of o, else -1: an absent or broken figure. */
static int64_t opt_count(json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);

        return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

/*
 * "cpu 1.2s user, 30ms sys; peak RSS 61MB" from a usage object (a phase's
 * or the task's); nothing when it has no CPU figures (a built-in).
 */
static void fmt_usage(json_t *usage, char *buf, size_t size)
{
        int64_t user = opt_count(usage, "cpu_user_ms"), sys = opt_count(usage, "cpu_sys_ms");
        int64_t rss = opt_count(usage, "max_rss_kb");
        char u[16], y[16], r[16];

        buf[0] = '\0';
        if (user < 0 || sys < 0)
                return;
        fmt_duration(user, u, sizeof(u));
        fmt_duration(sys, y, sizeof(y));
        snprintf(buf, size, "cpu %s user, %s sys", u, y);
        if (rss >= 0) {
                util_format_size(rss * 1024, r, sizeof(r));
                appendf(buf, size, "; peak RSS %s", r);
        }
}

/*
 * "usage     3 phases, agents ran 1.5s: cpu 1.2s user, 30ms sys; peak RSS
 * 61MB": what the task's agents used, summed by the workers into the
 * checkpoint over every phase that reported.
 */
static void print_task_usage(FILE *out, json_t *state)
{
        json_t *usage = json_object_get(state, "usage");
        int64_t phases = opt_count(usage, "phases"), wall = opt_count(usage, "wall_ms");
        char line[LINE_BUF * 2], figures[128], ran[16];

        if (phases < 0)
                return;
        snprintf(line, sizeof(line), "%lld phase%s", (long long)phases, phases == 1 ? "" : "s");
        if (wall >= 0) {
                fmt_duration(wall, ran, sizeof(ran));
                appendf(line, sizeof(line), ", agents ran %s", ran);
        }
        fmt_usage(usage, figures, sizeof(figures));
        if (figures[0] != '\0')
                appendf(line, sizeof(line), ": %s", figures);
        print_wrapped(out, "usage", LABEL_WIDTH, line, MAX_WRAPPED_LINES);
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
        print_task_usage(out, v->state);
}

/*
 * What an event's detail says, in a line of text (empty for nothing):
 * "success -> next (cpu 80ms user, 0ms sys; peak RSS 1.6MB): error" for a
 * phase (its agent program's usage), "by HOST" for a claim, else the error
 * with when it will be retried.  An agent's stderr stays for --json.
 */
static void event_detail(const char *kind, json_t *detail, char *buf, size_t size)
{
        const char *error = opt_string(detail, "error"), *host = opt_string(detail, "host");
        const char *outcome = opt_string(detail, "outcome"), *next = opt_string(detail, "next");
        json_t *retry_in = json_object_get(detail, "retry_in_ms");
        char retry[16], usage_text[128];

        buf[0] = '\0';
        if (strcmp(kind, "phase_finished") == 0) {
                appendf(buf, size, "%s", outcome ? outcome : "-");
                if (next)
                        appendf(buf, size, " -> %s", next);
                fmt_usage(json_object_get(detail, "usage"), usage_text, sizeof(usage_text));
                if (usage_text[0] != '\0')
                        appendf(buf, size, " (%s)", usage_text);
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
                return command_usage_error(name, "%s takes one task id", name);
        return command_usage_error(name, "%s: a task id is a positive integer, not '%s'", name,
                                   argv[0]);
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

/* ---- status: what this chimerad and the database say ---- */

#define DEFAULT_LEASE_MS (30 * 1000) /* chimerad's default "lease" */

/*
 * Everything status reads from the database, in one statement, so from
 * one snapshot, as one JSON object: the live supervisors ($1: how recent
 * a heartbeat must be, in ms), tasks by status, the oldest task that could
 * run now (waiting since its run_at), throughput over the last minute,
 * success rate and average duration over the last hour (of the succeeded,
 * failed and dead tasks: a cancel says nothing about the work), and the
 * paused queues.
 */
static const char CLUSTER_SQL[] =
    "SELECT jsonb_build_object("
    " 'supervisors', (SELECT coalesce(jsonb_agg(jsonb_build_object("
    "     'id', id, 'host', host, 'pid', pid, 'pool_size', pool_size, 'version', version,"
    "     'queues', to_jsonb(queues), 'started_at', started_at,"
    "     'heartbeat_age_ms', floor(extract(epoch FROM now() - heartbeat_at) * 1000)::bigint)"
    "     ORDER BY host, pid), '[]'::jsonb)"
    "   FROM chimera.supervisors"
    "  WHERE heartbeat_at >= now() - $1::bigint * interval '1 millisecond'),"
    " 'live_window_ms', $1::bigint,"
    " 'tasks', (SELECT jsonb_object_agg(s.status, coalesce(c.n, 0))"
    "   FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled'])"
    "        AS s(status)"
    "   LEFT JOIN (SELECT status, count(*) AS n FROM chimera.tasks GROUP BY status) c"
    "     ON c.status = s.status),"
    " 'oldest_queued', (SELECT jsonb_build_object('id', id, 'queue', queue,"
    "     'age_ms', floor(extract(epoch FROM now() - run_at) * 1000)::bigint)"
    "   FROM chimera.tasks WHERE status = 'queued' AND run_at <= now()"
    "  ORDER BY run_at, id LIMIT 1),"
    " 'last_minute', (SELECT jsonb_build_object('finished', count(*))"
    "   FROM chimera.tasks WHERE finished_at >= now() - interval '1 minute'"
    "    AND status IN ('succeeded', 'failed', 'dead')),"
    " 'last_hour', (SELECT jsonb_build_object('finished', count(*),"
    "     'succeeded', count(*) FILTER (WHERE status = 'succeeded'),"
    "     'success_rate', round(100.0 * count(*) FILTER (WHERE status = 'succeeded')"
    "                           / nullif(count(*), 0), 1),"
    "     'avg_duration_ms',"
    "       round(avg(extract(epoch FROM finished_at - started_at) * 1000))::bigint)"
    "   FROM chimera.tasks WHERE finished_at >= now() - interval '1 hour'"
    "    AND status IN ('succeeded', 'failed', 'dead')),"
    " 'paused_queues', (SELECT coalesce(jsonb_agg(name ORDER BY name), '[]'::jsonb)"
    "   FROM chimera.queues WHERE paused)"
    ")::text";

/* Runs CLUSTER_SQL; returns its object (new reference), or NULL with err set. */
static json_t *db_read_cluster(PGconn *conn, int64_t window_ms, char *err, size_t errsz)
{
        char window[32];
        const char *params[1] = {window};
        json_error_t jerr;
        json_t *v = NULL;
        PGresult *res;

        snprintf(window, sizeof(window), "%lld", (long long)window_ms);
        res = db_exec(conn, CLUSTER_SQL, 1, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
                query_error(conn, res, "reading the status", err, errsz);
        else if (!(v = json_loads(PQgetvalue(res, 0, 0), 0, &jerr)))
                snprintf(err, errsz, "cannot decode the status: %s", jerr.text);
        PQclear(res);
        return v;
}

/*
 * How recent a live supervisor's heartbeat is: 3 x lease, the config's
 * lease when there is a config to read, else chimerad's default.
 */
static int64_t live_window_ms(const struct ctl_opts *opts)
{
        struct config *cfg = NULL;
        int64_t lease = DEFAULT_LEASE_MS;

        if (!(opts->socket_path && opts->database) && load_config(opts, &cfg) == 0 && cfg)
                lease = cfg->lease_ms;
        config_free(cfg);
        return 3 * lease;
}

/*
 * Connects and reads what status shows from the database.  Returns it (new
 * reference), or NULL with err set; a config that does not load has been
 * reported already.
 */
static json_t *read_cluster(const struct ctl_opts *opts, char *err, size_t errsz)
{
        char *conninfo = resolve_database(opts);
        json_t *cluster = NULL;
        PGconn *conn;

        if (!conninfo) {
                snprintf(err, errsz, "the config does not load");
                return NULL;
        }
        conn = db_connect(conninfo, err, errsz);
        if (conn)
                cluster = db_read_cluster(conn, live_window_ms(opts), err, errsz);
        PQfinish(conn);
        free(conninfo);
        return cluster;
}

enum { SV_HOST, SV_PID, SV_POOL, SV_VERSION, SV_QUEUES, SV_HEARTBEAT, NSVCOLS };

static const struct column supervisor_columns[NSVCOLS] = {
    {"HOST", 20, 1, 0, 1},   {"PID", 7, 1, 1, 0},     {"POOL", 4, 2, 1, 0},
    {"VERSION", 8, 1, 0, 0}, {"QUEUES", 23, 1, 0, 1}, {"HEARTBEAT", 12, 0, 0, 0},
};

static void print_supervisor_row(FILE *out, json_t *s)
{
        char pid[24], pool[24], queues[SCREEN_WIDTH + 32], age[16], beat[32];
        const char *cells[NSVCOLS];
        const char *host = opt_string(s, "host"), *version = opt_string(s, "version");

        fmt_cell(json_object_get(s, "pid"), pid, sizeof(pid));
        fmt_cell(json_object_get(s, "pool_size"), pool, sizeof(pool));
        fmt_queues(json_object_get(s, "queues"), (size_t)supervisor_columns[SV_QUEUES].width,
                   queues, sizeof(queues));
        fmt_duration(json_integer_value(json_object_get(s, "heartbeat_age_ms")), age, sizeof(age));
        snprintf(beat, sizeof(beat), "%s ago", age);
        cells[SV_HOST] = host ? host : "?";
        cells[SV_PID] = pid;
        cells[SV_POOL] = pool;
        cells[SV_VERSION] = version ? version : "?";
        cells[SV_QUEUES] = queues;
        cells[SV_HEARTBEAT] = beat;
        print_row(out, supervisor_columns, NSVCOLS, cells);
}

static void print_supervisors(FILE *out, json_t *cluster)
{
        json_t *list = json_object_get(cluster, "supervisors"), *s;
        char window[16], line[128];
        size_t i;

        fmt_duration(json_integer_value(json_object_get(cluster, "live_window_ms")), window,
                     sizeof(window));
        if (json_array_size(list) == 0) {
                fprintf(out, "supervisors: none live (no heartbeat within %s)\n", window);
                return;
        }
        snprintf(line, sizeof(line), "supervisors: %zu live (heartbeat within %s)",
                 json_array_size(list), window);
        print_fitted(out, line);
        print_titles(out, supervisor_columns, NSVCOLS);
        json_array_foreach (list, i, s)
                print_supervisor_row(out, s);
}

/* The oldest queued task, throughput, the last hour, and the paused queues. */
static void print_rates(FILE *out, json_t *cluster)
{
        json_t *oldest = json_object_get(cluster, "oldest_queued");
        json_t *hour = json_object_get(cluster, "last_hour");
        json_t *avg = json_object_get(hour, "avg_duration_ms");
        json_t *paused = json_object_get(cluster, "paused_queues");
        json_int_t finished = json_integer_value(json_object_get(hour, "finished"));
        char age[16], line[LINE_BUF], names[SCREEN_WIDTH + 32];

        if (json_is_object(oldest)) {
                fmt_duration(json_integer_value(json_object_get(oldest, "age_ms")), age,
                             sizeof(age));
                snprintf(line, sizeof(line),
                         "oldest queued: task %" JSON_INTEGER_FORMAT ", waiting %s (queue %s)",
                         json_integer_value(json_object_get(oldest, "id")), age,
                         opt_string(oldest, "queue") ? opt_string(oldest, "queue") : "?");
                print_fitted(out, line);
        } else {
                fprintf(out, "oldest queued: none waiting to run\n");
        }
        fprintf(out, "throughput: %" JSON_INTEGER_FORMAT " finished in the last minute\n",
                json_integer_value(
                    json_object_get(json_object_get(cluster, "last_minute"), "finished")));
        if (finished == 0) {
                fprintf(out, "last hour: none finished\n");
        } else {
                fmt_duration(json_integer_value(avg), age, sizeof(age));
                fprintf(out,
                        "last hour: %" JSON_INTEGER_FORMAT
                        " finished, %.1f%% succeeded, average duration %s\n",
                        finished, json_number_value(json_object_get(hour, "success_rate")),
                        json_is_integer(avg) ? age : "-");
        }
        if (json_array_size(paused) > 0) {
                fmt_queues(paused, SCREEN_WIDTH - strlen("paused queues: "), names, sizeof(names));
                snprintf(line, sizeof(line), "paused queues: %s", names);
                print_fitted(out, line);
        }
}

/* What the database says, after the tasks line. */
static void print_cluster(FILE *out, json_t *cluster)
{
        print_task_counts(out, json_object_get(cluster, "tasks"));
        print_rates(out, cluster);
        fputc('\n', out);
        print_supervisors(out, cluster);
}

static void print_cluster_error(FILE *out, const char *dberr)
{
        char text[1200];

        snprintf(text, sizeof(text),
                 "chimera-ctl cannot read the database, so rates, queues and other "
                 "supervisors are not shown: %s",
                 dberr);
        print_wrapped(out, "", 0, text, MAX_WRAPPED_LINES);
}

/*
 * Prints status for people, or with --json as one object: the reply
 * (borrowed; NULL when no chimerad answered, live_err then says why) and
 * the cluster (borrowed; NULL when it could not be read, dberr says why).
 * Returns the exit status: 0 when chimerad answered with a sound reply.
 */
static int print_status_all(const struct ctl_opts *opts, json_t *reply, const char *live_err,
                            json_t *cluster, const char *dberr)
{
        struct status_view v = {0};
        char err[512];
        json_t *all;
        int rc = reply ? EXIT_SUCCESS : EXIT_FAILURE;

        if (opts->json) {
                all = reply ? json_copy(reply)
                            : json_pack("{s:n, s:s}", "supervisor", "error", live_err);
                if (!all || json_object_set(all, "cluster", cluster ? cluster : json_null()) < 0 ||
                    (!cluster && json_object_set_new(all, "cluster_error", json_string(dberr)) < 0))
                        rc = EXIT_FAILURE;
                else if (print_json(all) != EXIT_SUCCESS)
                        rc = EXIT_FAILURE;
                json_decref(all);
                return rc;
        }
        if (reply && parse_status(reply, &v, err, sizeof(err)) < 0) {
                ctl_errx("%s", err);
                free(v.workers);
                return EXIT_FAILURE;
        }
        if (reply) {
                print_status(stdout, &v);
                fputc('\n', stdout);
        }
        if (cluster) {
                print_cluster(stdout, cluster);
        } else if (reply) {
                print_task_counts(stdout, v.tasks);
                print_cluster_error(stdout, dberr);
        }
        free(v.workers);
        return rc;
}

static int cmd_status(const struct ctl_opts *opts, int argc, char **argv)
{
        json_t *req = NULL, *reply = NULL, *cluster = NULL;
        char err[1024] = "out of memory", dberr[1024] = "";
        char *sock;
        int rc;

        if ((rc = no_operands("status", argc)) != 0)
                return rc;
        sock = resolve_socket(opts);
        if (!sock)
                return EXIT_FAILURE;
        req = json_pack("{s:s}", "cmd", "status");
        if (req)
                reply = ctl_call(sock, req, err, sizeof(err));
        /* Said first: what follows is only the database's side. */
        if (!reply)
                ctl_errx("%s", err);
        cluster = read_cluster(opts, dberr, sizeof(dberr));
        if (!reply && !cluster)
                ctl_errx("%s", dberr);
        rc = print_status_all(opts, reply, err, cluster, dberr);
        json_decref(cluster);
        json_decref(reply);
        json_decref(req);
        free(sock);
        return rc;
}

/* ---- workers ---- */

/*
 * Sends {"cmd": cmd} to this host's chimerad.  Returns its successful
 * reply (new reference), or NULL after printing the error.
 */
static json_t *ask_chimerad(const struct ctl_opts *opts, const char *cmd)
{
        char *sock = resolve_socket(opts);
        json_t *req, *reply = NULL;
        char err[1024] = "out of memory";

        if (!sock)
                return NULL;
        req = json_pack("{s:s}", "cmd", cmd);
        if (req)
                reply = ctl_call(sock, req, err, sizeof(err));
        if (!reply)
                ctl_errx("%s", err);
        json_decref(req);
        free(sock);
        return reply;
}

enum {
        WK_SLOT,
        WK_PID,
        WK_STATE,
        WK_DONE,
        WK_UP,
        WK_TASK,
        WK_ATT,
        WK_WORKFLOW,
        WK_PHASE,
        WK_FOR,
        NWKCOLS
};

/* Widths add up to SCREEN_WIDTH. */
static const struct column worker_columns[NWKCOLS] = {
    {"SLOT", 4, 1, 0, 0},   {"PID", 7, 1, 0, 0},  {"STATE", 9, 1, 0, 0}, {"DONE", 4, 2, 1, 0},
    {"UP", 5, 1, 0, 0},     {"TASK", 9, 1, 0, 0}, {"ATT", 3, 1, 1, 0},   {"WORKFLOW", 12, 1, 0, 1},
    {"PHASE", 12, 1, 0, 1}, {"FOR", 5, 0, 0, 0},
};

/* A duration cell: "-" for JSON null or absent. */
static void fmt_duration_cell(json_t *ms, char *buf, size_t size)
{
        if (json_is_integer(ms))
                fmt_duration(json_integer_value(ms), buf, size);
        else
                snprintf(buf, size, "-");
}

static void print_worker_detail(FILE *out, const struct status_worker *w)
{
        char slot[24], pid[24], state[40], done[24], up[16], task[32], att[24], wf[256], phase[256],
            busy[16];
        const char *cells[NWKCOLS];

        snprintf(slot, sizeof(slot), "%" JSON_INTEGER_FORMAT, w->slot);
        snprintf(pid, sizeof(pid), "%" JSON_INTEGER_FORMAT, w->pid);
        snprintf(state, sizeof(state), "%s%s", w->state, w->stale ? "*" : "");
        snprintf(done, sizeof(done), "%" JSON_INTEGER_FORMAT, w->tasks_done);
        fmt_duration_cell(w->uptime_ms, up, sizeof(up));
        fmt_cell(w->task, task, sizeof(task));
        fmt_cell(w->attempt, att, sizeof(att));
        fmt_cell(w->workflow, wf, sizeof(wf));
        fmt_cell(w->phase, phase, sizeof(phase));
        fmt_duration_cell(w->busy_ms, busy, sizeof(busy));
        cells[WK_SLOT] = slot;
        cells[WK_PID] = w->pid > 0 ? pid : "-";
        cells[WK_STATE] = state;
        cells[WK_DONE] = done;
        cells[WK_UP] = up;
        cells[WK_TASK] = task;
        cells[WK_ATT] = att;
        cells[WK_WORKFLOW] = wf;
        cells[WK_PHASE] = phase;
        cells[WK_FOR] = busy;
        print_row(out, worker_columns, NWKCOLS, cells);
}

static void print_workers(FILE *out, const struct status_view *v)
{
        int stale = 0;

        print_supervisor(out, v);
        fprintf(out, "database: %s\n", v->db_up ? "up" : "down");
        print_pool_line(out, v);
        fputc('\n', out);
        print_titles(out, worker_columns, NWKCOLS);
        for (size_t i = 0; i < v->nworkers; i++) {
                print_worker_detail(out, &v->workers[i]);
                stale |= v->workers[i].stale;
        }
        if (stale)
                fprintf(out, "* predates the last reload: replaced when its task ends\n");
}

static int cmd_workers(const struct ctl_opts *opts, int argc, char **argv)
{
        struct status_view v = {0};
        json_t *reply;
        char err[512];
        int rc;

        if ((rc = no_operands("workers", argc)) != 0)
                return rc;
        reply = ask_chimerad(opts, "workers");
        if (!reply)
                return EXIT_FAILURE;
        if (opts->json) {
                rc = print_json(reply);
        } else if (parse_status(reply, &v, err, sizeof(err)) < 0) {
                ctl_errx("%s", err);
                rc = EXIT_FAILURE;
        } else {
                print_workers(stdout, &v);
        }
        free(v.workers);
        json_decref(reply);
        return rc;
}

/* ---- operands and option values ---- */

/* Reads a whole decimal integer (an optional sign, digits, nothing else). */
static int parse_long(const char *s, long *v)
{
        char *end;

        if (!isdigit((unsigned char)s[0]) &&
            !((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1])))
                return -1;
        errno = 0;
        *v = strtol(s, &end, 10);
        return errno == 0 && *end == '\0' ? 0 : -1;
}

/*
 * Takes the one operand of command name that is not a task id (a queue or
 * a workflow name; what names it): it must be there and not empty.
 * Returns 0, or EXIT_USAGE after saying so.
 */
static int name_operand(const char *name, const char *what, int argc, char **argv)
{
        if (argc != 1)
                return command_usage_error(name, "%s takes one %s", name, what);
        if (argv[0][0] == '\0')
                return command_usage_error(name, "%s: the %s is empty", name, what);
        return 0;
}

/* ---- tasks ---- */

#define TASKS_DEFAULT_LIMIT 20
#define TASKS_MAX_LIMIT     100000

/* The newest tasks (at most $4), filtered by status $1, queue $2, workflow $3 (NULL: any). */
static const char TASKS_SQL[] =
    "SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id DESC), '[]'::jsonb)::text FROM ("
    " SELECT id, queue, workflow, status, priority, attempts, max_attempts, last_error,"
    "        trace_id, created_at, run_at, started_at, finished_at,"
    "        floor(extract(epoch FROM now() - created_at) * 1000)::bigint AS age_ms"
    "   FROM chimera.tasks"
    "  WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)"
    "    AND ($3::text IS NULL OR workflow = $3)"
    "  ORDER BY id DESC LIMIT $4::int) r";

enum { TK_ID, TK_WORKFLOW, TK_STATUS, TK_ATT, TK_AGE, TK_ERROR, NTKCOLS };

/* Widths add up to SCREEN_WIDTH. */
static const struct column task_columns[NTKCOLS] = {
    {"ID", 9, 1, 0, 0},  {"WORKFLOW", 16, 1, 0, 1}, {"STATUS", 9, 1, 0, 0},
    {"ATT", 5, 1, 0, 0}, {"AGE", 5, 2, 0, 0},       {"LAST ERROR", 30, 0, 0, 1},
};

static int is_task_status(const char *s)
{
        for (size_t i = 0; i < sizeof(task_statuses) / sizeof(task_statuses[0]); i++) {
                if (strcmp(task_statuses[i], s) == 0)
                        return 1;
        }
        return 0;
}

static void print_task_row(FILE *out, json_t *t)
{
        char id[32], att[48], age[16], error[LINE_BUF];
        const char *cells[NTKCOLS], *wf = opt_string(t, "workflow"), *st = opt_string(t, "status");
        const char *last = opt_string(t, "last_error");

        fmt_cell(json_object_get(t, "id"), id, sizeof(id));
        snprintf(att, sizeof(att), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(t, "attempts")),
                 json_integer_value(json_object_get(t, "max_attempts")));
        fmt_duration(json_integer_value(json_object_get(t, "age_ms")), age, sizeof(age));
        /* One line of it: an agent's multi-line error would break the table. */
        copy_flat(last ? last : "-", SIZE_MAX, error);
        cells[TK_ID] = id;
        cells[TK_WORKFLOW] = wf ? wf : "?";
        cells[TK_STATUS] = st ? st : "?";
        cells[TK_ATT] = att;
        cells[TK_AGE] = age;
        cells[TK_ERROR] = error;
        print_row(out, task_columns, NTKCOLS, cells);
}

/* Checks the filters of tasks; fills limit.  Returns 0, or EXIT_USAGE after saying why. */
static int tasks_options(const struct ctl_opts *opts, char *limit, size_t size)
{
        long n = TASKS_DEFAULT_LIMIT;

        if (opts->status && !is_task_status(opts->status))
                return command_usage_error("tasks",
                                           "tasks: --status is queued, running, succeeded, "
                                           "failed, dead or cancelled, not '%s'",
                                           opts->status);
        if (opts->limit && (parse_long(opts->limit, &n) < 0 || n < 1 || n > TASKS_MAX_LIMIT))
                return command_usage_error("tasks",
                                           "tasks: --limit needs a number from 1 to %d, not '%s'",
                                           TASKS_MAX_LIMIT, opts->limit);
        snprintf(limit, size, "%ld", n);
        return 0;
}

static int cmd_tasks(const struct ctl_opts *opts, int argc, char **argv)
{
        char limit[24], err[1024];
        const char *params[4] = {opts->status, opts->queue, opts->workflow, limit};
        json_error_t jerr;
        json_t *rows = NULL, *t;
        PGresult *res = NULL;
        PGconn *conn;
        size_t i;
        int rc;

        if ((rc = no_operands("tasks", argc)) != 0 ||
            (rc = tasks_options(opts, limit, sizeof(limit))) != 0)
                return rc;
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        rc = EXIT_FAILURE;
        res = db_exec(conn, TASKS_SQL, 4, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                query_error(conn, res, "reading the tasks", err, sizeof(err));
                ctl_errx("%s", err);
        } else if (!(rows = json_loads(PQgetvalue(res, 0, 0), 0, &jerr))) {
                ctl_errx("cannot decode the tasks: %s", jerr.text);
        } else if (opts->json) {
                rc = print_json(rows);
        } else {
                if (json_array_size(rows) == 0)
                        printf("%s\n", opts->given & ~OPTF_LIMIT ? "no tasks match" : "no tasks");
                else
                        print_titles(stdout, task_columns, NTKCOLS);
                json_array_foreach (rows, i, t)
                        print_task_row(stdout, t);
                rc = EXIT_SUCCESS;
        }
        json_decref(rows);
        PQclear(res);
        PQfinish(conn);
        return rc;
}

/* ---- submit ---- */

/*
 * Checks the payload operand: one JSON object.  Integers too big for
 * jansson are fine (the database keeps numbers exactly, and gets the text
 * as given).  Returns 0, or EXIT_USAGE after saying what is wrong.
 */
static int check_payload(const char *text)
{
        json_error_t jerr;
        json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
        int rc = 0;

        if (!v)
                rc = command_usage_error("submit",
                                         "submit: the payload is not valid JSON: %s (line %d, "
                                         "column %d)",
                                         jerr.text, jerr.line, jerr.column);
        else if (!json_is_object(v))
                rc = command_usage_error("submit",
                                         "submit: the payload must be a JSON object, not %s",
                                         util_json_kind(v));
        json_decref(v);
        return rc;
}

/* The values of submit's options, checked, as statement parameters. */
struct submit_values {
        char priority[24], max_attempts[24], delay_ms[24];
        const char *run_at; /* a timestamp for PostgreSQL, or NULL with delay_ms set */
};

static int submit_options(const struct ctl_opts *opts, struct submit_values *sv)
{
        long n;
        int64_t ms;

        if (opts->priority) {
                if (parse_long(opts->priority, &n) < 0)
                        return command_usage_error("submit",
                                                   "submit: --priority needs a number, not '%s'",
                                                   opts->priority);
                snprintf(sv->priority, sizeof(sv->priority), "%ld", n);
        }
        if (opts->max_attempts) {
                if (parse_long(opts->max_attempts, &n) < 0)
                        return command_usage_error(
                            "submit", "submit: --max-attempts needs a number, not '%s'",
                            opts->max_attempts);
                snprintf(sv->max_attempts, sizeof(sv->max_attempts), "%ld", n);
        }
        if (opts->run_at && opts->run_at[0] == '+') {
                if (util_parse_duration(opts->run_at + 1, &ms) < 0)
                        return command_usage_error("submit",
                                                   "submit: --run-at +DURATION needs a duration "
                                                   "such as +90s, +5m or +2h, not '%s'",
                                                   opts->run_at);
                snprintf(sv->delay_ms, sizeof(sv->delay_ms), "%lld", (long long)ms);
        } else {
                sv->run_at = opts->run_at;
        }
        return 0;
}

/*
 * Builds the INSERT of submit into sql, naming only the columns given, so
 * that the table's own defaults apply to the others; params (7 or more)
 * get the values, borrowed from opts and sv.  Returns how many.
 */
static int submit_statement(const struct ctl_opts *opts, const struct submit_values *sv,
                            const char *workflow, const char *payload, char *sql, size_t size,
                            const char **params)
{
        char cols[256] = "workflow, payload", vals[512] = "$1, $2::jsonb";
        int n = 2;

        params[0] = workflow;
        params[1] = payload;
        if (opts->priority) {
                params[n++] = sv->priority;
                appendf(cols, sizeof(cols), ", priority");
                appendf(vals, sizeof(vals), ", $%d::smallint", n);
        }
        if (opts->queue) {
                params[n++] = opts->queue;
                appendf(cols, sizeof(cols), ", queue");
                appendf(vals, sizeof(vals), ", $%d", n);
        }
        if (sv->max_attempts[0] != '\0') {
                params[n++] = sv->max_attempts;
                appendf(cols, sizeof(cols), ", max_attempts");
                appendf(vals, sizeof(vals), ", $%d::int", n);
        }
        if (opts->run_at) {
                params[n++] = sv->run_at ? sv->run_at : sv->delay_ms;
                appendf(cols, sizeof(cols), ", run_at");
                if (sv->run_at)
                        appendf(vals, sizeof(vals), ", $%d::timestamptz", n);
                else
                        appendf(vals, sizeof(vals),
                                ", now() + $%d::bigint * interval '1 millisecond'", n);
        }
        snprintf(
            sql, size,
            "INSERT INTO chimera.tasks AS t (%s) VALUES (%s) RETURNING t.id, to_jsonb(t)::text",
            cols, vals);
        return n;
}

/*
 * A workflow this host's config does not know is most likely a typo; it is
 * submitted all the same (supervisors elsewhere may know it), with a
 * warning.  With --database no config is read, so nothing is checked.
 */
static void warn_unknown_workflow(const struct ctl_opts *opts, const char *workflow)
{
        struct config *cfg = NULL;

        if (opts->database || load_config(opts, &cfg) < 0 || !cfg)
                return;
        if (!config_workflow(cfg, workflow))
                ctl_errx("warning: workflow \"%s\" is not in %s; a supervisor without it fails "
                         "the task",
                         workflow, cfg->path);
        config_free(cfg);
}

/* Without --max-attempts, the config's retry.max_attempts (if set) applies. */
static void submit_default_attempts(const struct ctl_opts *opts, struct submit_values *sv)
{
        struct config *cfg = NULL;

        if (opts->max_attempts || opts->database)
                return;
        if (load_config(opts, &cfg) == 0 && cfg != NULL && cfg->retry_max_attempts > 0)
                snprintf(sv->max_attempts, sizeof(sv->max_attempts), "%d", cfg->retry_max_attempts);
        config_free(cfg);
}

static int cmd_submit(const struct ctl_opts *opts, int argc, char **argv)
{
        struct submit_values sv = {.run_at = NULL};
        const char *params[8], *payload;
        char sql[1024], err[1024];
        json_error_t jerr;
        json_t *row = NULL;
        PGresult *res;
        PGconn *conn;
        int n, rc;

        if (argc < 1 || argc > 2)
                return command_usage_error("submit",
                                           "submit takes a workflow and, optionally, a payload");
        payload = argc == 2 ? argv[1] : "{}";
        if ((rc = check_payload(payload)) != 0 || (rc = submit_options(opts, &sv)) != 0)
                return rc;
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        warn_unknown_workflow(opts, argv[0]);
        submit_default_attempts(opts, &sv);
        n = submit_statement(opts, &sv, argv[0], payload, sql, sizeof(sql), params);
        res = db_exec(conn, sql, n, params);
        rc = EXIT_FAILURE;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                refusal_error(conn, res, "the database refused the task", err, sizeof(err));
                ctl_errx("%s", err);
        } else if (!opts->json) {
                printf("%s\n", PQgetvalue(res, 0, 0));
                rc = EXIT_SUCCESS;
        } else if (!(row = json_loads(PQgetvalue(res, 0, 1), 0, &jerr))) {
                /* It is queued all the same: say which it is. */
                ctl_errx("task %s queued, but its row cannot be decoded: %s", PQgetvalue(res, 0, 0),
                         jerr.text);
        } else {
                rc = print_json(row);
        }
        json_decref(row);
        PQclear(res);
        PQfinish(conn);
        return rc;
}

/* ---- cancel ---- */

/*
 * Cancels task $1 if it is queued, in one statement that locks the row
 * first and judges its status only then (as retry does): the task ends
 * cancelled with its finished_at and a "cancelled" event saying who, and a
 * running task is left for its supervisor.  Either way the row tells what
 * it found: the status, whether it acted, and for a running task the
 * supervisor holding it.
 */
static const char CANCEL_SQL[] =
    "WITH o AS ("
    " SELECT id, status, attempts, lease_owner FROM chimera.tasks WHERE id = $1::bigint"
    " FOR UPDATE"
    "), u AS ("
    " UPDATE chimera.tasks t SET status = 'cancelled', finished_at = now(),"
    "        lease_owner = NULL, lease_expires_at = NULL"
    "   FROM o WHERE t.id = o.id AND o.status = 'queued'"
    " RETURNING t.id"
    "), e AS ("
    " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
    " SELECT u.id, o.attempts, 'cancelled', jsonb_build_object('by', 'chimera-ctl',"
    "        'previous_status', o.status, 'role', current_user)"
    "   FROM u JOIN o ON o.id = u.id"
    ")"
    "SELECT o.status, u.id IS NOT NULL, coalesce(o.lease_owner::text, ''),"
    "       coalesce(s.host, ''), coalesce(s.pid::text, '')"
    "  FROM o LEFT JOIN u ON true LEFT JOIN chimera.supervisors s ON s.id = o.lease_owner";

/* The same columns, only looking: for the waits after asking chimerad. */
static const char TASK_OWNER_SQL[] =
    "SELECT t.status, false, coalesce(t.lease_owner::text, ''),"
    "       coalesce(s.host, ''), coalesce(s.pid::text, '')"
    "  FROM chimera.tasks t LEFT JOIN chimera.supervisors s ON s.id = t.lease_owner"
    " WHERE t.id = $1::bigint";

/* What CANCEL_SQL or TASK_OWNER_SQL found. */
struct cancel_view {
        char status[16]; /* the task's status; before the cancel when it acted */
        int cancelled;   /* it was queued, and is cancelled now */
        char owner[40];  /* the supervisor holding a running task, or "" */
        char host[256];  /* that supervisor's host and pid, "" when it has no row */
        char pid[16];
};

/* Runs sql for task id into v.  Returns 1, 0 when there is no such task, -1 with err set. */
static int db_cancel_view(PGconn *conn, const char *sql, const char *id, struct cancel_view *v,
                          char *err, size_t errsz)
{
        PGresult *res = db_exec(conn, sql, 1, &id);
        int rc = -1;

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                query_error(conn, res, "cancelling the task", err, errsz);
                goto out;
        }
        rc = PQntuples(res) > 0;
        if (rc == 0)
                goto out;
        snprintf(v->status, sizeof(v->status), "%s", PQgetvalue(res, 0, 0));
        v->cancelled = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        snprintf(v->owner, sizeof(v->owner), "%s", PQgetvalue(res, 0, 2));
        snprintf(v->host, sizeof(v->host), "%s", PQgetvalue(res, 0, 3));
        snprintf(v->pid, sizeof(v->pid), "%s", PQgetvalue(res, 0, 4));
out:
        PQclear(res);
        return rc;
}

/* "web1 (chimerad pid 4242)", or the id of a supervisor without a row. */
static void describe_owner(const struct cancel_view *v, char *buf, size_t size)
{
        if (v->host[0])
                snprintf(buf, size, "%s (chimerad pid %s)", v->host, v->pid);
        else
                snprintf(buf, size, "supervisor %s, which is gone", v->owner[0] ? v->owner : "?");
}

/*
 * Waits, within CTL_TIMEOUT_MS, for task id to leave "running" (chimerad
 * writing its outcome) and reads it into v.  Returns 1 when it did, 0 when
 * it is still running, -1 after printing an error.
 */
static int wait_not_running(PGconn *conn, const char *id, struct cancel_view *v)
{
        int64_t deadline = util_now_ms() + CTL_TIMEOUT_MS;
        char err[1024];

        for (;;) {
                int found = db_cancel_view(conn, TASK_OWNER_SQL, id, v, err, sizeof(err));
                if (found <= 0) {
                        ctl_errx("%s", found < 0 ? err : "the task is gone");
                        return -1;
                }
                if (strcmp(v->status, "running") != 0)
                        return 1;
                if (util_now_ms() > deadline)
                        return 0;
                pause_ms(DB_POLL_MS);
        }
}

#define CANCEL_PHASE_COLS 32 /* of a phase name in cancel's one line */

/*
 * Prints a cancel done: one line, or with --json one object.  reply is
 * chimerad's (borrowed) for a running task, NULL for a queued one.
 */
static int print_cancelled(const struct ctl_opts *opts, const char *id, const char *previous,
                           json_t *reply)
{
        const char *phase = opt_string(reply, "phase");
        char fitted[LINE_BUF];
        json_t *j;
        int rc;

        if (opts->json) {
                j = json_pack(
                    "{s:I, s:s, s:s, s:O*, s:O*, s:O*}", "id", (json_int_t)strtoll(id, NULL, 10),
                    "status", "cancelled", "previous_status", previous, "worker_pid",
                    json_object_get(reply, "pid"), "attempt", json_object_get(reply, "attempt"),
                    "phase", json_object_get(reply, "phase"));
                rc = j ? print_json(j) : EXIT_FAILURE;
                json_decref(j);
                return rc;
        }
        if (!reply) {
                printf("task %s cancelled (was %s)\n", id, previous);
        } else if (json_is_true(json_object_get(reply, "claimed_ahead"))) {
                printf("task %s cancelled (was claimed, waiting for a free worker)\n", id);
        } else if (phase) {
                fit_text(phase, CANCEL_PHASE_COLS, fitted, sizeof(fitted));
                printf("task %s cancelled (was running phase %s); its worker is replaced\n", id,
                       fitted);
        } else {
                printf("task %s cancelled (was running); its worker is replaced\n", id);
        }
        return EXIT_SUCCESS;
}

/*
 * chimerad said it does not run task id (reply borrowed).  Explains why:
 * the task runs under another supervisor, or has just ended here.
 */
static int cancel_not_held(PGconn *conn, const char *id, json_t *reply,
                           const struct cancel_view *before)
{
        const char *code = opt_string(reply, "code"), *here = opt_string(reply, "supervisor");
        struct cancel_view v = *before;
        char where[400];
        int moved;

        if (code && strcmp(code, "permission_denied") == 0) {
                ctl_errx("%s", opt_string(reply, "error") ? opt_string(reply, "error")
                                                          : "permission denied");
                return EXIT_FAILURE;
        }
        if (!code || strcmp(code, "not_held") != 0) {
                ctl_errx("chimerad could not cancel task %s: %s", id,
                         opt_string(reply, "error") ? opt_string(reply, "error")
                                                    : "no reason given");
                return EXIT_FAILURE;
        }
        describe_owner(&v, where, sizeof(where));
        if ((!here || strcmp(here, v.owner) != 0) && v.host[0]) {
                ctl_errx("task %s runs on %s, not here: cancel it there with 'chimera-ctl "
                         "cancel %s'",
                         id, where, id);
                return EXIT_FAILURE;
        }
        if (!here || strcmp(here, v.owner) != 0) {
                /* A supervisor's row goes only when it stops or is long dead. */
                ctl_errx("task %s is held by %s: it goes back to the queue when its lease "
                         "expires, and can be cancelled then",
                         id, where);
                return EXIT_FAILURE;
        }
        /* Ours, but on no worker: its outcome is on its way to the database. */
        moved = wait_not_running(conn, id, &v);
        if (moved > 0)
                ctl_errx("task %s ended before it could be cancelled: it is %s", id, v.status);
        else if (moved == 0)
                ctl_errx("task %s is finishing on this host's chimerad, which is writing its "
                         "outcome; see 'chimera-ctl show %s'",
                         id, id);
        return EXIT_FAILURE;
}

/*
 * Task id was running (what the database said: before): asks this host's
 * chimerad to stop it, then waits for the database to show it cancelled.
 */
static int cancel_running(const struct ctl_opts *opts, PGconn *conn, const char *id,
                          const struct cancel_view *before)
{
        json_t *req = NULL, *reply = NULL;
        char err[1024] = "out of memory", where[400];
        struct cancel_view v = {.cancelled = 0};
        int rc = EXIT_FAILURE, moved;
        char *sock = resolve_socket(opts);

        if (!sock)
                return EXIT_FAILURE;
        describe_owner(before, where, sizeof(where));
        req = json_pack("{s:s, s:I}", "cmd", "cancel", "id", (json_int_t)strtoll(id, NULL, 10));
        if (req)
                reply = ctl_exchange(sock, req, err, sizeof(err));
        if (!reply) {
                ctl_errx("task %s runs on %s, and this host's chimerad cannot be asked to stop "
                         "it: %s",
                         id, where, err);
        } else if (!json_is_true(json_object_get(reply, "ok"))) {
                rc = cancel_not_held(conn, id, reply, before);
        } else if ((moved = wait_not_running(conn, id, &v)) == 0) {
                ctl_errx("chimerad stopped task %s, but the database does not show it cancelled "
                         "yet (is chimerad's database connection down?); see 'chimera-ctl show "
                         "%s'",
                         id, id);
        } else if (moved > 0 && strcmp(v.status, "cancelled") != 0) {
                ctl_errx("chimerad stopped task %s, but the task is %s: its lease had moved on", id,
                         v.status);
        } else if (moved > 0) {
                rc = print_cancelled(opts, id, "running", reply);
        }
        json_decref(reply);
        json_decref(req);
        free(sock);
        return rc;
}

static int cmd_cancel(const struct ctl_opts *opts, int argc, char **argv)
{
        struct cancel_view v = {.cancelled = 0};
        char id[32], err[1024];
        PGconn *conn;
        int rc = EXIT_FAILURE, found;

        if (task_id_operand("cancel", argc, argv, id, sizeof(id)) != 0)
                return EXIT_USAGE;
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        found = db_cancel_view(conn, CANCEL_SQL, id, &v, err, sizeof(err));
        if (found < 0)
                ctl_errx("%s", err);
        else if (found == 0)
                ctl_errx("no task %s", id);
        else if (v.cancelled)
                rc = print_cancelled(opts, id, "queued", NULL);
        else if (strcmp(v.status, "running") != 0)
                ctl_errx("task %s is %s: only queued or running tasks can be cancelled", id,
                         v.status);
        else
                rc = cancel_running(opts, conn, id, &v);
        PQfinish(conn);
        return rc;
}

/* ---- pause and resume ---- */

/*
 * Pauses queue $1 (creating its row), keeping the time of a pause already
 * in force.  Returns whether it was paused before, since when it is
 * paused, and how many of its tasks wait and run.
 */
static const char PAUSE_SQL[] =
    "WITH old AS (SELECT paused FROM chimera.queues WHERE name = $1),"
    " up AS ("
    " INSERT INTO chimera.queues AS q (name, paused, paused_at) VALUES ($1, true, now())"
    " ON CONFLICT (name) DO UPDATE"
    "   SET paused = true, paused_at = CASE WHEN q.paused THEN q.paused_at ELSE now() END"
    " RETURNING paused_at)"
    "SELECT coalesce((SELECT paused FROM old), false),"
    "       (SELECT to_jsonb(paused_at) #>> '{}' FROM up),"
    "       (SELECT count(*) FROM chimera.tasks WHERE queue = $1 AND status = 'queued'),"
    "       (SELECT count(*) FROM chimera.tasks WHERE queue = $1 AND status = 'running')";

/*
 * Resumes queue $1, with the same answer about before; a queue that was
 * paused also gets the NOTIFY a new task sends, so that idle supervisors
 * claim its tasks at once rather than at their next poll.
 */
static const char RESUME_SQL[] =
    "WITH old AS (SELECT paused, paused_at FROM chimera.queues WHERE name = $1),"
    " up AS (UPDATE chimera.queues SET paused = false, paused_at = NULL"
    "         WHERE name = $1 AND paused RETURNING name)"
    "SELECT coalesce((SELECT paused FROM old), false),"
    "       (SELECT to_jsonb(paused_at) #>> '{}' FROM old),"
    "       (SELECT count(*) FROM chimera.tasks WHERE queue = $1 AND status = 'queued'),"
    "       (SELECT count(*) FROM chimera.tasks WHERE queue = $1 AND status = 'running'),"
    "       (SELECT pg_notify('chimera_tasks', name) FROM up) IS NULL";

/* What pause or resume found and did. */
struct queue_outcome {
        int pause;         /* the command: pause (1) or resume (0) */
        int was_paused;    /* before the command */
        const char *since; /* when the pause began (ISO 8601), or NULL */
        long long queued, running;
};

static void print_queue_text(const char *queue, const struct queue_outcome *q)
{
        char name[LINE_BUF], since[64], line[LINE_BUF * 2];

        fit_text(queue, 32, name, sizeof(name));
        if (q->since)
                fmt_iso(q->since, NO_DAY, since, sizeof(since));
        if (q->pause && q->was_paused)
                snprintf(line, sizeof(line), "queue %s was paused already (since %s UTC)", name,
                         q->since ? since : "?");
        else if (q->pause)
                snprintf(line, sizeof(line),
                         "queue %s paused: %lld queued task%s wait%s, %lld running go%s on", name,
                         q->queued, q->queued == 1 ? "" : "s", q->queued == 1 ? "s" : "",
                         q->running, q->running == 1 ? "es" : "");
        else if (q->was_paused)
                snprintf(line, sizeof(line), "queue %s resumed: %lld queued task%s can run", name,
                         q->queued, q->queued == 1 ? "" : "s");
        else
                snprintf(line, sizeof(line), "queue %s was not paused", name);
        print_fitted(stdout, line);
}

static int print_queue_outcome(const struct ctl_opts *opts, const char *queue,
                               const struct queue_outcome *q)
{
        json_t *j;
        int rc;

        if (!opts->json) {
                print_queue_text(queue, q);
                return EXIT_SUCCESS;
        }
        j = json_pack("{s:s, s:b, s:b, s:s?, s:I, s:I}", "queue", queue, "paused", q->pause,
                      "changed", q->pause != q->was_paused, "paused_at", q->pause ? q->since : NULL,
                      "queued", (json_int_t)q->queued, "running", (json_int_t)q->running);
        if (!j) {
                ctl_errx("cannot encode the reply (invalid UTF-8?)");
                return EXIT_FAILURE;
        }
        rc = print_json(j);
        json_decref(j);
        return rc;
}

/* pause and resume: one statement, then what it found. */
static int set_paused(const struct ctl_opts *opts, const char *name, int pause, int argc,
                      char **argv)
{
        struct queue_outcome q = {.pause = pause};
        const char *params[1];
        char err[1024];
        PGresult *res;
        PGconn *conn;
        int rc;

        if ((rc = name_operand(name, "queue name", argc, argv)) != 0)
                return rc;
        params[0] = argv[0];
        conn = open_database(opts);
        if (!conn)
                return EXIT_FAILURE;
        rc = EXIT_FAILURE;
        res = db_exec(conn, pause ? PAUSE_SQL : RESUME_SQL, 1, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                query_error(conn, res, pause ? "pausing the queue" : "resuming the queue", err,
                            sizeof(err));
                ctl_errx("%s", err);
        } else {
                q.was_paused = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
                q.since = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
                q.queued = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
                q.running = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
                rc = print_queue_outcome(opts, argv[0], &q);
        }
        PQclear(res);
        PQfinish(conn);
        return rc;
}

static int cmd_pause(const struct ctl_opts *opts, int argc, char **argv)
{
        return set_paused(opts, "pause", 1, argc, argv);
}

static int cmd_resume(const struct ctl_opts *opts, int argc, char **argv)
{
        return set_paused(opts, "resume", 0, argc, argv);
}

/* ---- reload ---- */

static int print_reloaded(const struct ctl_opts *opts, json_t *reply)
{
        char line[LINE_BUF * 2];
        const char *path = opt_string(reply, "config");

        if (opts->json)
                return print_json(reply);
        snprintf(line, sizeof(line),
                 "chimerad reloaded %s: %" JSON_INTEGER_FORMAT " workflows, %" JSON_INTEGER_FORMAT
                 " agents",
                 path ? path : "its config",
                 json_integer_value(json_object_get(reply, "workflows")),
                 json_integer_value(json_object_get(reply, "agents")));
        print_fitted(stdout, line);
        printf("workers are replaced as they finish their current task\n");
        return EXIT_SUCCESS;
}

static int cmd_reload(const struct ctl_opts *opts, int argc, char **argv)
{
        json_t *req = NULL, *reply = NULL;
        char err[1024] = "out of memory";
        struct config *cfg = NULL;
        char *sock = NULL;
        int rc;

        if ((rc = no_operands("reload", argc)) != 0)
                return rc;
        rc = EXIT_FAILURE;
        /* The config names the socket; one that does not load is what chimerad would refuse. */
        if (!opts->socket_path && load_config(opts, &cfg) < 0) {
                ctl_errx("chimerad was not asked to reload: the config does not load, so it "
                         "keeps its running configuration");
                goto out;
        }
        sock = util_strdup(opts->socket_path            ? opts->socket_path
                           : cfg && cfg->control_socket ? cfg->control_socket
                                                        : CONFIG_DEFAULT_CONTROL_SOCKET);
        req = json_pack("{s:s}", "cmd", "reload");
        if (req)
                reply = ctl_exchange(sock, req, err, sizeof(err));
        if (!reply)
                ctl_errx("%s", err);
        else if (opt_string(reply, "code") &&
                 strcmp(opt_string(reply, "code"), "permission_denied") == 0)
                ctl_errx("%s", opt_string(reply, "error") ? opt_string(reply, "error")
                                                          : "permission denied");
        else if (!json_is_true(json_object_get(reply, "ok")))
                ctl_errx("chimerad refused the new configuration and keeps its running one: %s",
                         opt_string(reply, "error") ? opt_string(reply, "error")
                                                    : "no reason given");
        else
                rc = print_reloaded(opts, reply);
out:
        json_decref(reply);
        json_decref(req);
        free(sock);
        config_free(cfg);
        return rc;
}

/* ---- migrate ---- */

/*
 * The schema version the database has: 0 when there is no schema yet.
 * Returns 0, or -1 with err set.
 */
static int db_schema_version(PGconn *conn, int *version, char *err, size_t errsz)
{
        PGresult *res =
            PQexec(conn, "SELECT coalesce(max(version), 0) FROM chimera.schema_version");
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int rc = 0;

        *version = 0;
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
                *version = atoi(PQgetvalue(res, 0, 0));
        else if (!state || (strcmp(state, "42P01") != 0 && strcmp(state, "3F000") != 0))
                rc = -1;
        if (rc < 0)
                db_error("reading the schema version", PQresultErrorMessage(res), err, errsz);
        PQclear(res);
        return rc;
}

/*
 * migrate_run() tells what it does on stdout; with --json that text must
 * not mix with the JSON.  Points stdout at /dev/null and returns the fd to
 * restore it from, or -1 (then stdout is left as it is).
 */
static int mute_stdout(void)
{
        int saved, null;

        fflush(stdout);
        saved = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
        null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0) {
                if (saved >= 0)
                        close(saved);
                saved = -1;
        }
        if (null >= 0)
                close(null);
        return saved;
}

static void unmute_stdout(int saved)
{
        if (saved < 0)
                return;
        fflush(stdout);
        if (dup2(saved, STDOUT_FILENO) < 0)
                ctl_errx("restoring stdout: %s", strerror(errno));
        close(saved);
}

static int print_migrated(int from, int to)
{
        json_t *applied = json_array(), *j;
        int rc;

        for (unsigned i = 0; i < migrations_count; i++) {
                if (migrations[i].version > from && migrations[i].version <= to)
                        json_array_append_new(applied, json_string(migrations[i].name));
        }
        j = json_pack("{s:i, s:i, s:o}", "from_version", from, "version", to, "applied", applied);
        rc = j ? print_json(j) : EXIT_FAILURE;
        json_decref(j);
        return rc;
}

static int cmd_migrate(const struct ctl_opts *opts, int argc, char **argv)
{
        char err[1024], why[1024], *conninfo = NULL;
        int rc, from = 0, to = 0, muted = -1;
        PGconn *conn = NULL;

        if ((rc = no_operands("migrate", argc)) != 0)
                return rc;
        rc = EXIT_FAILURE;
        conninfo = resolve_database(opts);
        if (!conninfo)
                goto out;
        /* Connecting first gives the same bounded wait and message as every command. */
        conn = db_connect(conninfo, err, sizeof(err));
        if (!conn || db_schema_version(conn, &from, err, sizeof(err)) < 0) {
                ctl_errx("%s", err);
                goto out;
        }
        if (opts->json)
                muted = mute_stdout();
        if (migrate_run(conninfo, why, sizeof(why)) < 0) {
                unmute_stdout(muted);
                /* Its messages are libpq's, newline and all. */
                why[strcspn(why, "\n")] = '\0';
                ctl_errx("%s", why);
                goto out;
        }
        unmute_stdout(muted);
        if (!opts->json)
                rc = EXIT_SUCCESS;
        else if (db_schema_version(conn, &to, err, sizeof(err)) < 0)
                ctl_errx("%s", err);
        else
                rc = print_migrated(from, to);
out:
        PQfinish(conn);
        free(conninfo);
        return rc;
}

/* ---- command line ---- */

enum {
        OPT_SOCKET = 256,
        OPT_DATABASE,
        OPT_JSON,
        OPT_VERSION,
        OPT_STATUS,
        OPT_QUEUE,
        OPT_WORKFLOW,
        OPT_LIMIT,
        OPT_PRIORITY,
        OPT_RUN_AT,
        OPT_MAX_ATTEMPTS,
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"database", required_argument, NULL, OPT_DATABASE},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"status", required_argument, NULL, OPT_STATUS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"workflow", required_argument, NULL, OPT_WORKFLOW},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"run-at", required_argument, NULL, OPT_RUN_AT},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {NULL, 0, NULL, 0},
};

/* The command options, by bit, for the message when a command does not take one. */
static const struct {
        unsigned bit;
        const char *name;
} command_option_names[] = {
    {OPTF_STATUS, "--status"},
    {OPTF_QUEUE, "--queue"},
    {OPTF_WORKFLOW, "--workflow"},
    {OPTF_LIMIT, "--limit"},
    {OPTF_PRIORITY, "--priority"},
    {OPTF_RUN_AT, "--run-at"},
    {OPTF_MAX_ATTEMPTS, "--max-attempts"},
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

/* Records a command option (optarg) in field; the command checks the value. */
static void take(struct ctl_opts *opts, unsigned bit, const char **field)
{
        opts->given |= bit;
        *field = optarg;
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
                        opts->help = 1;
                        break;
                case OPT_VERSION:
                        opts->version = 1;
                        break;
                case OPT_STATUS:
                        take(opts, OPTF_STATUS, &opts->status);
                        break;
                case OPT_QUEUE:
                        take(opts, OPTF_QUEUE, &opts->queue);
                        break;
                case OPT_WORKFLOW:
                        take(opts, OPTF_WORKFLOW, &opts->workflow);
                        break;
                case OPT_LIMIT:
                        take(opts, OPTF_LIMIT, &opts->limit);
                        break;
                case OPT_PRIORITY:
                        take(opts, OPTF_PRIORITY, &opts->priority);
                        break;
                case OPT_RUN_AT:
                        take(opts, OPTF_RUN_AT, &opts->run_at);
                        break;
                case OPT_MAX_ATTEMPTS:
                        take(opts, OPTF_MAX_ATTEMPTS, &opts->max_attempts);
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        return -1;
}

/* Refuses a command option given to a command that does not take it. */
static int check_command_options(const struct ctl_cmd *cmd, const struct ctl_opts *opts)
{
        for (size_t i = 0; i < sizeof(command_option_names) / sizeof(command_option_names[0]);
             i++) {
                unsigned bit = command_option_names[i].bit;
                if ((opts->given & bit) && !(cmd->options & bit))
                        return command_usage_error(cmd->name, "%s does not take %s", cmd->name,
                                                   command_option_names[i].name);
        }
        return 0;
}

/* chimera-ctl help [COMMAND] */
static int help(int argc, char **argv)
{
        const struct ctl_cmd *cmd;

        if (argc == 0) {
                usage(stdout);
                return EXIT_SUCCESS;
        }
        if (argc > 1)
                return usage_error("help takes one command name");
        cmd = find_command(argv[0]);
        if (!cmd)
                return usage_error("unknown command '%s'", argv[0]);
        command_help(stdout, cmd);
        return EXIT_SUCCESS;
}

static int print_version(const struct ctl_opts *opts)
{
        json_t *j;
        int rc;

        if (!opts->json) {
                printf("chimera-ctl %s\n", CHIMERA_VERSION);
                return EXIT_SUCCESS;
        }
        j = json_pack("{s:s, s:i}", "version", CHIMERA_VERSION, "schema_version",
                      migrate_latest_version());
        rc = j ? print_json(j) : EXIT_FAILURE;
        json_decref(j);
        return rc;
}

static int run(const struct ctl_opts *opts, int argc, char **argv)
{
        const struct ctl_cmd *cmd;
        int rc;

        if (opts->version)
                return print_version(opts);
        if (optind >= argc) {
                if (!opts->help)
                        return usage_error("no command given");
                usage(stdout);
                return EXIT_SUCCESS;
        }
        if (strcmp(argv[optind], "help") == 0)
                return help(argc - optind - 1, argv + optind + 1);
        cmd = find_command(argv[optind]);
        if (!cmd)
                return usage_error("unknown command '%s'", argv[optind]);
        if (opts->help) {
                command_help(stdout, cmd);
                return EXIT_SUCCESS;
        }
        if ((rc = check_command_options(cmd, opts)) != 0)
                return rc;
        return cmd->run(opts, argc - optind - 1, argv + optind + 1);
}

int main(int argc, char **argv)
{
        struct ctl_opts opts = {0};
        int rc;

        log_init("chimera-ctl", LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
        rc = parse_options(argc, argv, &opts);
        if (rc < 0)
                rc = run(&opts, argc, argv);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                ctl_errx("writing the output: %s", strerror(errno));
                return EXIT_FAILURE;
        }
        return rc;
}
