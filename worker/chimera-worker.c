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

/* Reads the rest of a frame too big for read_frame's buffer: the got bytes of its body are in part.
 */
static int read_big_frame(int fd, const char *part, size_t got, size_t len, struct frame *f,
                          char *err, size_t errsz)
{
        char *body = malloc(len);
        size_t off = got;
        ssize_t n;
        int rc;

        if (body == NULL) {
                snprintf(err, errsz, "out of memory for a frame of %zu bytes", len);
                return -1;
        }
        memcpy(body, part, got);
        while (off < len) {
                n = read(fd, body + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errsz, "reading a frame body: %s",
                                 n < 0 ? strerror(errno) : "truncated");
                        free(body);
                        return -1;
                }
                off += (size_t)n;
        }
        rc = frame_decode(body, len, f, err, errsz);
        free(body);
        return rc < 0 ? -1 : 1;
}

/*
 * Reads the next frame from the supervisor, as frame_read_fd() does, but
 * with one read() for a frame that fits in the buffer instead of two (the
 * header, then the body): one system call less per task.  Bytes read past
 * a frame are kept for the next call.  Returns 1, 0 on a clean EOF, -1.
 */
static int read_frame(int fd, size_t max, struct frame *f, char *err, size_t errsz)
{
        static char buf[64 * 1024];
        static size_t have;
        size_t len, whole;
        ssize_t n;
        int rc;

        for (;;) {
                if (have >= FRAME_HEADER_SIZE) {
                        if (frame_header_length((const unsigned char *)buf, max, &len) < 0) {
                                snprintf(err, errsz, "frame length out of range (maximum %zu)",
                                         max);
                                return -1;
                        }
                        whole = FRAME_HEADER_SIZE + len;
                        if (whole > sizeof(buf)) {
                                /* The supervisor sends one frame at a time: all we
                                 * have is the start of this one. */
                                rc = read_big_frame(fd, buf + FRAME_HEADER_SIZE,
                                                    have - FRAME_HEADER_SIZE, len, f, err, errsz);
                                have = 0;
                                return rc;
                        }
                        if (have >= whole) {
                                rc = frame_decode(buf + FRAME_HEADER_SIZE, len, f, err, errsz);
                                have -= whole;
                                memmove(buf, buf + whole, have);
                                return rc < 0 ? -1 : 1;
                        }
                }
                n = read(fd, buf + have, sizeof(buf) - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0 && have == 0)
                        return 0;
                if (n <= 0) {
                        snprintf(err, errsz, "reading a frame: %s",
                                 n < 0 ? strerror(errno) : "truncated");
                        return -1;
                }
                have += (size_t)n;
        }
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

int main(int argc, char **argv)
{
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
        if (send_heartbeat(max) < 0)
                return 1;
        for (;;) {
                rc = read_frame(WORKER_FD, max, &f, err, sizeof(err));
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
                rc = runner_run(WORKER_FD, max, f.msg);
                frame_clear(&f);
                if (rc < 0)
                        return 1;
        }
}
