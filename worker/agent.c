/*
 * agent.c - what a phase calls: a built-in, or a program.
 *
 * A program agent runs as the worker's child in a process group of its own,
 * with a clean environment (PATH, the CHIMERA_* variables, what the config
 * names), the request object on stdin and pipes for stdout and stderr.
 * One poll() loop feeds stdin, collects stdout up to a bound, keeps the
 * tail of stderr, watches the supervisor's socket and a pidfd for the
 * child's exit, and enforces the phase timeout: SIGTERM to the group, then
 * SIGKILL after AGENT_KILL_GRACE_MS.  When the agent exits the rest of its
 * group is killed before it is reaped, so nothing it started outlives the
 * phase (a child that made itself a new session escapes, unless the worker
 * has a cgroup leaf for its agents).  confine.c applies the agent's limits
 * in the child and measures the run; wait4() gives its rusage.
 * agent_proto.c decides what the run means.
 *
 * Built-in agents run inside the worker, for tests and benchmarks:
 *   builtin:noop   succeeds at once with {}
 *   builtin:sleep  sleeps params.ms, else payload.ms, milliseconds; succeeds
 *   builtin:fail   fails the phase (params.message says why); with
 *                  params.transient true it is a transient error instead
 * While sleeping the worker watches its socket, so it exits at once when
 * chimerad goes away rather than finishing work nobody will record.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "confine.h"
#include "frame.h"
#include "outbox.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#define AGENT_KILL_GRACE_MS      2000
#define AGENT_DEFAULT_MAX_OUTPUT (1024 * 1024)
#define AGENT_DEFAULT_PATH       "/usr/local/bin:/usr/bin:/bin"

/* One running agent program, from the worker's side. */
struct child {
        pid_t pid;
        int in, out, err, pidfd; /* our ends; -1 once closed */
        char *req;               /* the request text, owned */
        size_t reqlen, reqoff;
        char *buf; /* stdout, owned */
        size_t len, cap, max;
        bool overflow;
        char tail[AGENT_STDERR_TAIL + 1];
        size_t taillen;
        int status;
        struct rusage usage; /* from wait4(): the agent and the children it reaped */
        int64_t started_ms, exited_ms;
        struct confine_run limits;
};

/* Waits ms milliseconds, or exits the worker if the supervisor hangs up. */
static void sleep_watching(int ctl_fd, int64_t ms)
{
        int64_t deadline = util_now_ms() + ms;

        for (;;) {
                int64_t left = deadline - util_now_ms();
                struct pollfd pfd = {.fd = ctl_fd, .events = POLLIN};
                int n;

                if (left <= 0)
                        return;
                n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
                if (n < 0 && errno != EINTR)
                        return;
                /* The supervisor sends nothing while a task runs: input means EOF or
                 * an error, and either way nobody is listening any more. */
                if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
                        log_warnx("supervisor went away during a task: exiting");
                        exit(1);
                }
        }
}

static int64_t sleep_ms(json_t *params, json_t *payload)
{
        json_t *v = json_object_get(params, "ms");

        if (!json_is_integer(v))
                v = json_object_get(payload, "ms");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return 0;
        return json_integer_value(v);
}

static void run_builtin(const char *name, json_t *params, json_t *payload, int ctl_fd,
                        struct agent_result *out)
{
        if (strcmp(name, "builtin:noop") == 0) {
                out->outcome = AGENT_SUCCESS;
                out->result = json_object();
        } else if (strcmp(name, "builtin:sleep") == 0) {
                int64_t ms = sleep_ms(params, payload);
                sleep_watching(ctl_fd, ms);
                out->outcome = AGENT_SUCCESS;
                out->result = json_pack("{s:I}", "slept_ms", (json_int_t)ms);
        } else if (strcmp(name, "builtin:fail") == 0) {
                const char *msg = json_string_value(json_object_get(params, "message"));
                out->outcome = json_is_true(json_object_get(params, "transient")) ? AGENT_TRANSIENT
                                                                                  : AGENT_FAILURE;
                snprintf(out->error, sizeof(out->error), "%s",
                         msg ? msg : "builtin:fail always fails");
        } else {
                out->outcome = AGENT_FAILURE;
                snprintf(out->error, sizeof(out->error), "unknown built-in agent \"%s\"", name);
        }
        util_utf8_sanitize(out->error); /* a long message may be cut inside a character */
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Environment strings ("K=V"), NULL-terminated; free with free_strv(). */
static char **build_env(json_t *def, json_t *request)
{
        static const char *const vars[][2] = {
            {"CHIMERA_TASK_ID", "task_id"},   {"CHIMERA_ATTEMPT", "attempt"},
            {"CHIMERA_TRACE_ID", "trace_id"}, {"CHIMERA_WORKFLOW", "workflow"},
            {"CHIMERA_PHASE", "phase"},       {"CHIMERA_ACTION", "action"},
        };
        json_t *env = json_object_get(def, "env"), *v;
        size_t n = 0, cap = 8 + json_object_size(env) + 1;
        char **strv = util_calloc(cap, sizeof(char *));
        const char *key;

        if (json_object_get(env, "PATH") == NULL &&
            asprintf(&strv[n++], "PATH=%s", AGENT_DEFAULT_PATH) < 0)
                fatalx("%s: out of memory", __func__);
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
                v = json_object_get(request, vars[i][1]);
                int rc = json_is_integer(v)
                             ? asprintf(&strv[n++], "%s=%lld", vars[i][0],
                                        (long long)json_integer_value(v))
                             : asprintf(&strv[n++], "%s=%s", vars[i][0],
                                        json_string_value(v) ? json_string_value(v) : "");
                if (rc < 0)
                        fatalx("%s: out of memory", __func__);
        }
        json_object_foreach (env, key, v) {
                if (asprintf(&strv[n++], "%s=%s", key, json_string_value(v)) < 0)
                        fatalx("%s: out of memory", __func__);
        }
        return strv;
}

static char **build_argv(json_t *def)
{
        json_t *argv = json_object_get(def, "argv"), *v;
        char **strv = util_calloc(json_array_size(argv) + 1, sizeof(char *));
        size_t i;

        json_array_foreach (argv, i, v)
                strv[i] = util_strdup(json_string_value(v));
        return strv;
}

static void free_strv(char **strv)
{
        for (size_t i = 0; strv != NULL && strv[i] != NULL; i++)
                free(strv[i]);
        free(strv);
}

/* Puts fd on target in the child, without close-on-exec. */
static void move_fd(int fd, int target)
{
        if (fd == target)
                fcntl(fd, F_SETFD, 0);
        else
                dup2(fd, target);
}

/* In the child: becomes the agent, or reports errno on the status pipe and exits. */
static void exec_agent(const struct child *c, pid_t worker, int in, int out, int err, int status_fd,
                       char **argv, char **envp, const char *cwd)
{
        int e;

        setpgid(0, 0);
        /* The worker runs under SCHED_BATCH (chimera-worker.c); an agent, as any program. */
        sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0});
        /* If the worker dies, so does the agent (chimerad kills the rest of its group). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != worker)
                _exit(127);
        signal(SIGPIPE, SIG_DFL);
        move_fd(in, 0);
        move_fd(out, 1);
        move_fd(err, 2);
        /* Nothing of the worker's may reach the agent, whatever forgot CLOEXEC. */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        confine_enter_child(&c->limits);
        if (cwd != NULL && chdir(cwd) < 0)
                goto failed;
        execvpe(argv[0], argv, envp);
failed:
        e = errno;
        if (write(status_fd, &e, sizeof(e)) < 0)
                _exit(127);
        _exit(127);
}

/*
 * Starts the agent.  Returns 0, or an errno value when it could not be
 * started (fork failed, or the child could not chdir or exec).
 */
/* What the child of spawn() needs, on the worker's memory it borrows. */
struct exec_args {
        const struct child *c;
        pid_t worker;
        int in, out, err, status_fd;
        char **argv, **envp;
        const char *cwd;
};

static int exec_child(void *arg)
{
        const struct exec_args *a = arg;

        exec_agent(a->c, a->worker, a->in, a->out, a->err, a->status_fd, a->argv, a->envp, a->cwd);
        return 127;
}

/*
 * The agent's process is cloned with the worker's memory and the worker
 * suspended until it execs (as vfork and posix_spawn do), which saves
 * copying the worker's page tables and the faults after it: a tenth of the
 * price of an agent on a small VM.  The child runs on a stack of its own
 * and only makes system calls, nothing that allocates or changes memory
 * the worker relies on (the worker has no signal handlers to inherit).
 */
static pid_t clone_exec(struct exec_args *a)
{
        static char stack[64 * 1024] __attribute__((aligned(16)));

        return clone(exec_child, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, a);
}

static int spawn(struct child *c, char **argv, char **envp, const char *cwd)
{
        int in[2], out[2], err[2], st[2], e = 0;
        ssize_t n;

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
            pipe2(st, O_CLOEXEC) < 0)
                return errno; /* the worker is out of fds: it exits after this task */
        pid_t worker = getpid();

        c->started_ms = util_now_ms();
        struct exec_args args = {.c = c,
                                 .worker = worker,
                                 .in = in[0],
                                 .out = out[1],
                                 .err = err[1],
                                 .status_fd = st[1],
                                 .argv = argv,
                                 .envp = envp,
                                 .cwd = cwd};
        c->pid = clone_exec(&args);
        if (c->pid < 0) {
                e = errno;
                close(in[0]), close(in[1]), close(out[0]), close(out[1]);
                close(err[0]), close(err[1]), close(st[0]), close(st[1]);
                return e;
        }
        setpgid(c->pid, c->pid); /* also here, so that the group exists before we signal it */
        close(in[0]), close(out[1]), close(err[1]), close(st[1]);
        c->in = in[1];
        c->out = out[0];
        c->err = err[0];
        /* The status pipe closes on a successful exec, or carries the errno. */
        do
                n = read(st[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        close(st[0]);
        if (n == (ssize_t)sizeof(e)) {
                waitpid(c->pid, &c->status, 0);
                close_fd(&c->in), close_fd(&c->out), close_fd(&c->err);
                return e;
        }
        if (util_set_nonblock(c->in) < 0 || util_set_nonblock(c->out) < 0 ||
            util_set_nonblock(c->err) < 0)
                fatal("%s: nonblock", __func__);
        c->pidfd = pidfd_open(c->pid, 0); /* -1 on old kernels: we poll waitid then */
        return 0;
}

static void feed_stdin(struct child *c)
{
        ssize_t n = write(c->in, c->req + c->reqoff, c->reqlen - c->reqoff);

        if (n > 0)
                c->reqoff += (size_t)n;
        /* EPIPE: the agent does not read its request, which is its business. */
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || c->reqoff == c->reqlen)
                close_fd(&c->in);
}

static void read_stdout(struct child *c)
{
        for (;;) {
                if (c->cap - c->len < 4096) {
                        c->cap = c->cap ? c->cap * 2 : 16384;
                        c->buf = realloc(c->buf, c->cap);
                        if (c->buf == NULL)
                                fatalx("%s: out of memory", __func__);
                }
                ssize_t n = read(c->out, c->buf + c->len, c->cap - c->len);
                if (n > 0) {
                        c->len += (size_t)n;
                        if (c->len > c->max) {
                                c->overflow = true;
                                kill(-c->pid, SIGKILL);
                                close_fd(&c->out);
                                return;
                        }
                        continue;
                }
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        close_fd(&c->out);
                return;
        }
}

/* Keeps the last AGENT_STDERR_TAIL bytes of what the agent writes on stderr. */
static void read_stderr(struct child *c)
{
        char chunk[4096];

        for (;;) {
                ssize_t n = read(c->err, chunk, sizeof(chunk));
                if (n <= 0) {
                        if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                close_fd(&c->err);
                        return;
                }
                if ((size_t)n >= AGENT_STDERR_TAIL) {
                        memcpy(c->tail, chunk + n - AGENT_STDERR_TAIL, AGENT_STDERR_TAIL);
                        c->taillen = AGENT_STDERR_TAIL;
                } else {
                        size_t keep = c->taillen + (size_t)n > AGENT_STDERR_TAIL
                                          ? AGENT_STDERR_TAIL - (size_t)n
                                          : c->taillen;
                        memmove(c->tail, c->tail + c->taillen - keep, keep);
                        memcpy(c->tail + keep, chunk, (size_t)n);
                        c->taillen = keep + (size_t)n;
                }
                c->tail[c->taillen] = '\0';
        }
}

/* True once the agent has exited (a zombie, not yet reaped). */
static bool child_exited(struct child *c)
{
        siginfo_t si = {0};

        return waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               si.si_pid == c->pid;
}

/*
 * Kills what is left of the agent's group, reaps the agent with its
 * rusage, then empties its cgroup leaf (which holds even what left the
 * group).
 */
static void finish_child(struct child *c)
{
        c->exited_ms = util_now_ms();
        if (c->out >= 0)
                read_stdout(c);
        if (c->err >= 0)
                read_stderr(c);
        kill(-c->pid, SIGKILL);
        while (wait4(c->pid, &c->status, 0, &c->usage) < 0 && errno == EINTR)
                ;
        confine_finish(&c->limits);
        close_fd(&c->in), close_fd(&c->out), close_fd(&c->err), close_fd(&c->pidfd);
}

/*
 * Runs the poll loop until the agent exits.  Sets *timed_out when the
 * phase timeout forced it.  Exits the worker if the supervisor goes away.
 */
static void supervise(struct child *c, int ctl_fd, int64_t timeout_ms, bool *timed_out)
{
        int64_t deadline = util_now_ms() + timeout_ms;

        for (;;) {
                struct pollfd pfd[5];
                int n = 0, wait;
                int64_t now = util_now_ms();

                if (now >= deadline) {
                        kill(-c->pid, *timed_out ? SIGKILL : SIGTERM);
                        deadline = now + (*timed_out ? 60000 : AGENT_KILL_GRACE_MS);
                        *timed_out = true;
                }
                pfd[n++] = (struct pollfd){.fd = ctl_fd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = c->in, .events = POLLOUT};
                pfd[n++] = (struct pollfd){.fd = c->out, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = c->err, .events = POLLIN};
                wait = (int)(deadline - now);
                if (c->pidfd < 0 && wait > 10)
                        wait = 10; /* no pidfd: look for the exit every 10 ms */
                if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR)
                        fatal("%s: poll", __func__);
                if (pfd[0].revents) {
                        kill(-c->pid, SIGKILL);
                        log_warnx("supervisor went away during a task: exiting");
                        exit(1);
                }
                if (pfd[2].revents)
                        feed_stdin(c);
                if (pfd[3].revents)
                        read_stdout(c);
                if (pfd[4].revents)
                        read_stderr(c);
                if ((c->pidfd < 0 || pfd[1].revents) && child_exited(c))
                        return;
        }
}

/*
 * Tells chimerad the agent's process group, so that it can kill the group
 * if this worker dies while the agent runs.
 */
static void announce_pgid(int ctl_fd, json_t *request, const struct wf_phase *phase, pid_t pgid)
{
        struct jbuf *b = outbox_begin();

        jbuf_lit(b, "{\"type\":\"progress\",\"id\":");
        jbuf_int(b, json_integer_value(json_object_get(request, "task_id")));
        jbuf_lit(b, ",\"attempt\":");
        jbuf_int(b, json_integer_value(json_object_get(request, "attempt")));
        jbuf_lit(b, ",\"phase\":");
        jbuf_str(b, phase->name);
        jbuf_lit(b, ",\"event\":\"spawned\",\"pgid\":");
        jbuf_int(b, pgid);
        jbuf_lit(b, "}");
        /* With the "started" frame the runner left in the outbox. */
        if (outbox_end(FRAME_DEFAULT_MAX_SIZE) < 0 || outbox_flush(ctl_fd) < 0)
                log_warnx("cannot tell the supervisor about agent %s", phase->agent);
}

static void run_program(const struct wf_phase *phase, json_t *def, json_t *request, int ctl_fd,
                        struct agent_result *out)
{
        struct child c = {.in = -1, .out = -1, .err = -1, .pidfd = -1};
        struct agent_exit x = {.agent = phase->agent, .timeout_ms = phase->timeout_ms};
        char **argv = build_argv(def), **envp = build_env(def, request);

        confine_prepare(&c.limits, json_object_get(def, "limits"));
        c.max = c.limits.lim.output > 0 ? (size_t)c.limits.lim.output : AGENT_DEFAULT_MAX_OUTPUT;
        c.req = json_dumps(request, JSON_COMPACT);
        if (c.req == NULL)
                fatalx("%s: cannot encode the agent request", __func__);
        c.reqlen = strlen(c.req);
        x.exec_errno = spawn(&c, argv, envp, json_string_value(json_object_get(def, "cwd")));
        if (x.exec_errno == 0) {
                announce_pgid(ctl_fd, request, phase, c.pid);
                supervise(&c, ctl_fd, phase->timeout_ms, &x.timed_out);
                finish_child(&c);
                confine_collect(&c.limits, &c.usage, &x);
                x.usage.wall_ms = c.exited_ms - c.started_ms;
        }
        x.limits = c.limits.lim;
        x.wait_status = c.status;
        x.overflow = c.overflow;
        x.max_output = c.max;
        x.out = c.buf ? c.buf : "";
        x.outlen = c.len;
        x.err_tail = c.tail;
        agent_interpret(&x, out);
        memcpy(out->stderr_tail, c.tail, c.taillen + 1);
        /* Sent in a JSON frame: any byte that is not UTF-8 (a Latin-1 message, a
         * character cut where the tail starts) would make the frame unencodable. */
        util_utf8_sanitize(out->stderr_tail);
        free(c.buf);
        free(c.req);
        free_strv(argv);
        free_strv(envp);
}

/* What a run has before it ends: no result, no error, no process. */
static void result_init(struct agent_result *out)
{
        out->result = NULL;
        out->error[0] = '\0';
        out->fault = false;
        out->stderr_tail[0] = '\0';
        out->cause = CAUSE_NONE;
        out->exit_status = -1;
        out->signal = 0;
        out->oom_killed = false;
        out->usage = (struct agent_usage){0};
}

void agent_run_builtin(const struct wf_phase *phase, json_t *payload, int ctl_fd,
                       struct agent_result *out)
{
        int64_t t0 = util_now_ms();

        result_init(out);
        run_builtin(phase->agent, phase->params, payload, ctl_fd, out);
        out->usage.wall_ms = util_now_ms() - t0;
}

void agent_run(const struct wf_phase *phase, json_t *def, json_t *request, int ctl_fd,
               struct agent_result *out)
{
        result_init(out);
        if (!json_is_array(json_object_get(def, "argv")) ||
            json_array_size(json_object_get(def, "argv")) == 0) {
                out->outcome = AGENT_FAILURE;
                out->fault = true;
                snprintf(out->error, sizeof(out->error),
                         "agent %s is not defined in the supervisor's config", phase->agent);
                return;
        }
        run_program(phase, def, request, ctl_fd, out);
}
