/*
 * chimera-worker.c - one process of chimerad's pool.
 *
 * Started by chimerad (fork + exec) with its socketpair on fd 3.  Announces
 * itself with a heartbeat, then runs the tasks it is sent, one at a time,
 * until it reads "shutdown" or EOF.  Anything but a task or shutdown from
 * the supervisor is a broken invariant: the worker exits and is replaced.
 *
 * Before anything else it confines itself: no new privileges for it or
 * its agents (a set-user-ID program does not raise them), no descriptor
 * but stdio and its socket whatever its parent left open, stdin from
 * /dev/null, and death with the supervisor (PR_SET_PDEATHSIG, besides EOF
 * on the socket).  It never holds the database's credentials: chimerad
 * gives it a minimal environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "frame.h"
#include "confine.h"
#include "log.h"
#include "util.h"
#include "worker.h"

static void usage(void)
{
        fprintf(stderr, "usage: chimera-worker [--max-frame-size BYTES] [--log-level LEVEL]\n"
                        "                      [--log-format text|json]\n"
                        "chimera-worker is started by chimerad with its socket on fd 3;\n"
                        "it is not meant to be run by hand.\n");
}

static int parse_args(int argc, char **argv, size_t *max_frame)
{
        static const struct option opts[] = {
            {"max-frame-size", required_argument, NULL, 'm'},
            {"log-level", required_argument, NULL, 'l'},
            {"log-format", required_argument, NULL, 'f'},
            {NULL, 0, NULL, 0},
        };
        enum log_level level = LOG_LEVEL_INFO;
        enum log_format format = LOG_FORMAT_TEXT;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'm':
                        *max_frame = strtoull(optarg, NULL, 10);
                        if (*max_frame < 1024)
                                return -1;
                        break;
                case 'l':
                        if (log_level_parse(optarg, &level) < 0)
                                return -1;
                        break;
                case 'f':
                        format = strcmp(optarg, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
                        break;
                default:
                        return -1;
                }
        }
        log_init("chimera-worker", level, format);
        return 0;
}

static int send_heartbeat(size_t max)
{
        json_t *hb = json_pack("{s:s, s:i}", "type", "heartbeat", "pid", (int)getpid());
        char err[256];
        int rc = frame_write_fd(WORKER_FD, hb, max, err, sizeof(err));

        json_decref(hb);
        if (rc < 0)
                log_warnx("cannot greet the supervisor: %s", err);
        return rc;
}

/*
 * Drops what a worker must not have.  Returns 0, or -1 when the process
 * cannot be confined (the worker then exits).
 */
static int confine_self(void)
{
        int fd;

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                log_warn("prctl(PR_SET_NO_NEW_PRIVS)");
                return -1;
        }
        /* Nothing but stdio and the socket: a descriptor chimerad's parent
         * leaked without close-on-exec must not reach the agents. */
        if (close_range(WORKER_FD + 1, ~0U, 0) < 0) {
                log_warn("close_range");
                return -1;
        }
        /* Whatever chimerad's stdin is (a terminal, a pipe), it is not ours. */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) {
                log_warn("/dev/null");
                return -1;
        }
        if (fd != STDIN_FILENO)
                close(fd);
        return 0;
}

/*
 * A worker runs under SCHED_BATCH: woken by its next task, it waits for its
 * turn instead of preempting what runs on that CPU, which is mostly
 * chimerad in the middle of handing out tasks, or a PostgreSQL backend on
 * a claim: chimerad was preempted about once per no-op task (18,600
 * involuntary switches over a 20,000-task drain; 8,700-12,600 with the
 * workers under SCHED_BATCH), and back-to-back drains on slow hours of the
 * bench VM went 8-11 % faster (README, "Performance").
 * Agents go back to SCHED_OTHER as they start (agent.c).  Lowering one's
 * own policy needs no privilege; should it fail, the worker runs as it was.
 */
static void batch_policy(void)
{
        struct sched_param sp = {0};

        if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
                log_debug("sched_setscheduler(SCHED_BATCH): %s", strerror(errno));
}

int main(int argc, char **argv)
{
        static struct frame_reader reader; /* 64 kB: not on the stack */
        size_t max = FRAME_DEFAULT_MAX_SIZE;
        struct frame f;
        char err[512];
        int rc;

        if (parse_args(argc, argv, &max) < 0) {
                usage();
                return 2;
        }
        /* Exit with the supervisor even if it dies without closing our socket. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
                return 1;
        signal(SIGPIPE, SIG_IGN);
        if (util_set_cloexec(WORKER_FD) < 0) {
                log_warn("fd %d is not open: chimera-worker is started by chimerad", WORKER_FD);
                return 2;
        }
        if (confine_self() < 0)
                return 1;
        confine_init();
        batch_policy();
        if (send_heartbeat(max) < 0)
                return 1;
        for (;;) {
                rc = frame_reader_next(&reader, WORKER_FD, max, &f, err, sizeof(err));
                if (rc == 0)
                        return 0; /* the supervisor closed our socket */
                if (rc < 0) {
                        log_warnx("bad frame from the supervisor: %s", err);
                        return 1;
                }
                if (f.type == FRAME_SHUTDOWN) {
                        frame_clear(&f);
                        return 0;
                }
                if (f.type != FRAME_TASK) {
                        log_warnx("unexpected %s frame from the supervisor",
                                  frame_type_name(f.type));
                        frame_clear(&f);
                        return 1;
                }
                rc = runner_run(WORKER_FD, max, &f.task);
                frame_clear(&f);
                if (rc < 0)
                        return 1;
        }
}
