/*
 * pool.c - the pre-forked workers: spawning, dispatching, frames, deaths.
 *
 * Each worker is fork+exec'd from chimera-worker with its end of a
 * socketpair on fd 3, so it starts with a fresh address space and no libpq
 * or libevent state of ours.  Our end is read with one read() per wake-up
 * and written to directly (buffered only when the socket is full); every
 * frame that
 * arrives goes through frame_decode() before anything acts on it, and a
 * worker that sends something malformed or out of turn is killed (its task
 * retried), never trusted.
 *
 * A worker's life: STARTING until its first heartbeat, then IDLE and BUSY
 * in turns.  Death is seen two ways: EOF on the socket (we kill it to be
 * sure) and SIGCHLD, where waitpid() reaps it; only the reaping settles
 * its task (retried) and schedules a replacement, with a growing back-off
 * when workers die right after they start, so a broken binary cannot make
 * chimerad fork in a tight loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "breaker.h"
#include "cgroup.h"
#include "chimerad.h"
#include "frame.h"
#include "jscan.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#define WORKER_FD            3
#define RESPAWN_QUICK_MS     1000 /* a death sooner than this after spawn counts as a crash */
#define RESPAWN_MAX_DELAY_MS 30000

static int worker_spawn(struct worker *w);
static void worker_kill(struct worker *w, const char *reason);
static void send_shutdown(struct worker *w);
static bool worker_should_recycle(struct worker *w);

void task_free(struct task *task)
{
        if (task == NULL)
                return;
        free(task->workflow);
        free(task->trace_id);
        free(task->phase);
        free(task);
}

static const char *worker_state_name(enum worker_state s)
{
        static const char *const names[] = {"starting", "idle", "busy", "stopping", "dead"};
        return names[s];
}

static void set_state(struct worker *w, enum worker_state s)
{
        w->state = s;
        w->state_since_ms = util_now_ms();
}

/* Finds chimera-worker next to our own executable, else in LIBEXECDIR. */
static void find_worker_path(struct pool *pool)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        const char *env = getenv("CHIMERA_WORKER");

        if (env != NULL && *env != '\0') {
                snprintf(pool->worker_path, sizeof(pool->worker_path), "%s", env);
                return;
        }
        if (n > 0) {
                self[n] = '\0';
                char *slash = strrchr(self, '/');
                if (slash != NULL) {
                        *slash = '\0';
                        snprintf(pool->worker_path, sizeof(pool->worker_path), "%s/chimera-worker",
                                 self);
                        if (access(pool->worker_path, X_OK) == 0)
                                return;
                }
        }
        snprintf(pool->worker_path, sizeof(pool->worker_path), "%s/chimera-worker",
                 CHIMERA_LIBEXECDIR);
}

/* The workflow's timeout for the whole task passed: the worker goes, the task is retried. */
static void task_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
        struct worker *w = arg;
        char reason[96], when[32];

        if (w->task == NULL)
                return;
        util_format_ms(w->task->timeout_ms, when, sizeof(when));
        snprintf(reason, sizeof(reason), "ran its task past the workflow timeout of %s", when);
        worker_kill(w, reason);
}

int pool_start(struct pool *pool, struct supervisor *sv)
{
        pool->sv = sv;
        pool->size = sv->cfg->pool_size;
        pool->workers = util_calloc((size_t)pool->size, sizeof(struct worker));
        find_worker_path(pool);
        if (access(pool->worker_path, X_OK) < 0) {
                log_warn("cannot execute the worker program %s", pool->worker_path);
                return -1;
        }
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                w->slot = i;
                w->pool = pool;
                w->pid = -1;
                w->fd = -1;
                w->timeout_ev = evtimer_new(sv->base, task_timeout_cb, w);
                if (w->timeout_ev == NULL)
                        fatalx("%s: evtimer_new", __func__);
                set_state(w, W_DEAD);
                if (worker_spawn(w) < 0)
                        return -1;
        }
        log_info("started %d workers (%s)", pool->size, pool->worker_path);
        return 0;
}

/* ---- frames from a worker ---- */

static bool frame_is_for_task(const struct worker *w, const struct report *r)
{
        return w->task != NULL && r->id == w->task->id && r->attempt == w->task->attempt;
}

/*
 * The JSON string text decoded into buf when it fits, else into a new
 * string: free the result when it is not buf.
 */
static char *report_string(struct jtext text, char *buf, size_t size)
{
        return text.n < size ? jtext_string(text, buf, size) : jtext_strdup(text);
}

static void detail_member(struct jbuf *b, const char *key, struct jtext value)
{
        if (value.p == NULL)
                return;
        if (b->len > 1)
                jbuf_lit(b, ",");
        jbuf_lit(b, "\"");
        jbuf_raw(b, key, strlen(key));
        jbuf_lit(b, "\":");
        jbuf_raw(b, value.p, value.n);
}

static void on_progress(struct worker *w, const struct report *r)
{
        struct supervisor *sv = w->pool->sv;
        struct jbuf *detail = &w->pool->scratch;
        char pbuf[256], abuf[256];
        char *phase, *agent;

        if (r->event == REPORT_SPAWNED) {
                w->task->agent_pgid = (pid_t)r->pgid;
                return;
        }
        phase = report_string(r->phase, pbuf, sizeof(pbuf));
        if (r->event == REPORT_STARTED || r->started) {
                /* A "finished" frame with "started": an instant agent, both at once. */
                w->task->agent_pgid = 0;
                free(w->task->phase);
                w->task->phase = util_strdup(phase);
                queue_phase(sv->queue, w->task, "phase_started", phase, JTEXT_NONE, JTEXT_NONE);
        }
        if (r->event == REPORT_FINISHED) {
                if (r->agent.p != NULL) {
                        agent = report_string(r->agent, abuf, sizeof(abuf));
                        breakers_record(sv->breakers, sv->cfg, agent, r->fault);
                        if (agent != abuf)
                                free(agent);
                }
                stats_observe_agent(&sv->stats, r->usage, r->end);
                jbuf_reset(detail);
                jbuf_lit(detail, "{");
                detail_member(detail, "outcome", r->outcome);
                detail_member(detail, "next", r->next);
                detail_member(detail, "duration_ms", r->duration_ms);
                detail_member(detail, "error", r->detail_error);
                detail_member(detail, "stderr", r->stderr_tail);
                detail_member(detail, "usage", r->usage);
                detail_member(detail, "end", r->end);
                jbuf_lit(detail, "}");
                queue_phase(sv->queue, w->task, "phase_finished", phase,
                            (struct jtext){detail->p, detail->len}, r->state);
        }
        if (phase != pbuf)
                free(phase);
}

/* What a task's log lines carry; borrowed from w and t. */
static struct log_task task_log(const struct worker *w, const struct task *t, int64_t ms)
{
        struct log_task lt = {.id = t->id,
                              .attempt = t->attempt,
                              .workflow = t->workflow,
                              .phase = t->phase,
                              .trace_id = t->trace_id,
                              .worker_pid = (int)w->pid,
                              .duration_ms = ms};
        return lt;
}

static void on_result(struct worker *w, const struct report *r)
{
        struct supervisor *sv = w->pool->sv;
        struct task *t = w->task;
        char status[16], ebuf[512];
        char *error = r->error.p != NULL ? report_string(r->error, ebuf, sizeof(ebuf)) : NULL;
        int64_t ms = util_now_ms() - t->started_ms;

        struct log_task lt = task_log(w, t, ms);

        jtext_string(r->status, status, sizeof(status));

        if (strcmp(status, "succeeded") == 0) {
                /* At debug: a line per task costs more than the task at full speed,
                 * and the task's events keep the record. */
                sv->stats.succeeded++;
                log_task(LOG_LEVEL_DEBUG, &lt, "succeeded");
        } else if (strcmp(status, "failed") == 0) {
                sv->stats.failed++;
                log_task(LOG_LEVEL_INFO, &lt, "failed: %s", error ? error : "no reason given");
        } else if (strcmp(status, "defer") == 0) {
                sv->stats.deferred++;
                log_task(LOG_LEVEL_INFO, &lt, "deferred: %s", error ? error : "agent paused");
        } else {
                sv->stats.retried++;
                log_task(LOG_LEVEL_INFO, &lt, "will be retried: %s",
                         error ? error : "transient error");
        }
        stats_observe_duration(&sv->stats, ms);
        /* No state: the "finished" frame just before carried this same checkpoint. */
        queue_finish(sv->queue, t, status, r->result, error, r->state);
        if (error != ebuf)
                free(error);
        task_free(t);
        w->task = NULL;
        evtimer_del(w->timeout_ev);
        w->tasks_done++;
        set_state(w, W_IDLE);
        if (worker_should_recycle(w)) {
                send_shutdown(w); /* replaced by a fresh one when it exits */
                return;
        }
        supervisor_maybe_finish(sv);
        queue_kick(sv->queue);
}

/* Resident set size of pid in bytes, from /proc; 0 when unknown. */
static int64_t process_rss(pid_t pid)
{
        char path[64];
        long long pages = 0, rss = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
        f = fopen(path, "re");
        if (f == NULL)
                return 0;
        if (fscanf(f, "%lld %lld", &pages, &rss) != 2)
                rss = 0;
        fclose(f);
        return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

/*
 * A worker is replaced after pool.max_tasks_per_worker tasks, or when it
 * has grown past pool.max_worker_rss (a leak in an agent library or a huge
 * payload should not stay resident forever), as php-fpm's pm.max_requests.
 */
static bool worker_should_recycle(struct worker *w)
{
        const struct config *cfg = w->pool->sv->cfg;
        int64_t rss;

        if (w->generation != w->pool->generation) {
                log_debug("worker %d predates the reload: replacing it", (int)w->pid);
                return true;
        }
        if (cfg->pool_max_tasks_per_worker > 0 &&
            w->tasks_done >= (unsigned)cfg->pool_max_tasks_per_worker) {
                log_debug("worker %d did %u tasks: replacing it", (int)w->pid, w->tasks_done);
                return true;
        }
        if (cfg->pool_max_worker_rss > 0 &&
            (rss = process_rss(w->pid)) > cfg->pool_max_worker_rss) {
                log_info("worker %d uses %lld bytes, above pool.max_worker_rss: replacing it",
                         (int)w->pid, (long long)rss);
                return true;
        }
        return false;
}

static bool result_status_valid(struct jtext s)
{
        return jtext_streq(s, "succeeded") || jtext_streq(s, "failed") || jtext_streq(s, "retry") ||
               jtext_streq(s, "defer");
}

/* Acts on one decoded frame.  Returns -1 with reason when the worker must go. */
static int handle_frame(struct worker *w, const struct report *r, char *why, size_t whysz)
{
        switch (r->type) {
        case FRAME_HEARTBEAT:
                if (w->state == W_STARTING) {
                        set_state(w, W_IDLE);
                        log_debug("worker %d (slot %d) ready", (int)w->pid, w->slot);
                        queue_kick(w->pool->sv->queue);
                }
                return 0;
        case FRAME_PROGRESS:
                if (w->state != W_BUSY || !frame_is_for_task(w, r))
                        break;
                on_progress(w, r);
                return 0;
        case FRAME_RESULT:
                if (w->state != W_BUSY || !frame_is_for_task(w, r))
                        break;
                if (!result_status_valid(r->status)) {
                        snprintf(why, whysz, "sent a result with an unknown status");
                        return -1;
                }
                on_result(w, r);
                return 0;
        default:
                break;
        }
        snprintf(why, whysz, "sent a %s frame out of turn", frame_type_name(r->type));
        return -1;
}

/* Decodes and acts on every whole frame read so far. */
static void worker_frames(struct worker *w)
{
        struct evbuffer *in = w->in;
        size_t max = (size_t)w->pool->sv->cfg->pool_max_frame_size;
        unsigned char hdr[FRAME_HEADER_SIZE];
        char why[256], *body;
        struct report r;
        size_t len;

        while (w->fd >= 0 && evbuffer_get_length(in) >= FRAME_HEADER_SIZE) {
                evbuffer_copyout(in, hdr, sizeof(hdr));
                if (frame_header_length(hdr, max, &len) < 0) {
                        worker_kill(w, "sent a frame of invalid length");
                        return;
                }
                if (evbuffer_get_length(in) < FRAME_HEADER_SIZE + len)
                        return;
                /* The body moves out of the buffer first: what handle_frame() does may
                 * close it, and the report points into the body. */
                evbuffer_drain(in, FRAME_HEADER_SIZE);
                body = jbuf_reserve(&w->pool->frame, len);
                if (evbuffer_remove(in, body, len) != (int)len)
                        fatalx("%s: evbuffer_remove", __func__);
                if (frame_decode_report(body, len, &r, why, sizeof(why)) < 0) {
                        char reason[300];
                        snprintf(reason, sizeof(reason), "sent a malformed frame (%s)", why);
                        worker_kill(w, reason);
                        return;
                }
                if (handle_frame(w, &r, why, sizeof(why)) < 0) {
                        worker_kill(w, why);
                        return;
                }
        }
}

static void worker_io_cb(evutil_socket_t fd, short what, void *arg)
{
        struct worker *w = arg;
        char buf[65536];
        ssize_t n;

        if (what & EV_WRITE) {
                if (evbuffer_write(w->out, fd) < 0 && errno != EAGAIN && errno != EINTR) {
                        worker_kill(w, NULL);
                        return;
                }
                if (evbuffer_get_length(w->out) > 0)
                        event_add(w->write_ev, NULL);
        }
        if (!(what & EV_READ))
                return;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                /* Usually the worker died and SIGCHLD tells how; kill it anyway in case
                 * it only closed the socket, so that the reaping always follows. */
                worker_kill(w, NULL);
                return;
        }
        if (evbuffer_add(w->in, buf, (size_t)n) < 0)
                fatalx("%s: out of memory", __func__);
        worker_frames(w);
}

/* Starts talking to a worker over fd (ours now). */
static void chan_open(struct worker *w, int fd)
{
        struct event_base *base = w->pool->sv->base;

        w->fd = fd;
        w->in = evbuffer_new();
        w->out = evbuffer_new();
        w->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, worker_io_cb, w);
        w->write_ev = event_new(base, fd, EV_WRITE, worker_io_cb, w);
        if (w->in == NULL || w->out == NULL || w->read_ev == NULL || w->write_ev == NULL ||
            event_add(w->read_ev, NULL) < 0)
                fatalx("%s: cannot watch a worker's socket", __func__);
}

static void chan_close(struct worker *w)
{
        if (w->read_ev == NULL) /* never opened, or closed already */
                return;
        event_free(w->read_ev);
        event_free(w->write_ev);
        evbuffer_free(w->in);
        evbuffer_free(w->out);
        close(w->fd);
        w->read_ev = w->write_ev = NULL;
        w->in = w->out = NULL;
        w->fd = -1;
}

/*
 * Sends the n buffers of iov to the worker: written at once when nothing
 * waits before them, the rest kept until the socket takes it.  -1 when the
 * socket is broken.
 */
static int chan_send(struct worker *w, struct iovec *iov, int n)
{
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t sent = 0;

        if (w->fd < 0)
                return -1;
        if (evbuffer_get_length(w->out) == 0) {
                sent = sendmsg(w->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (sent < 0 && errno != EAGAIN && errno != EINTR)
                        return -1;
                if (sent < 0)
                        sent = 0;
        }
        for (int i = 0; i < n; i++) {
                size_t skip = (size_t)sent < iov[i].iov_len ? (size_t)sent : iov[i].iov_len;
                sent -= (ssize_t)skip;
                if (skip < iov[i].iov_len &&
                    evbuffer_add(w->out, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip) < 0)
                        fatalx("%s: out of memory", __func__);
        }
        if (evbuffer_get_length(w->out) > 0)
                event_add(w->write_ev, NULL);
        return 0;
}

/* ---- spawning and killing ---- */

/*
 * The only variables of ours a worker gets.  Our environment may hold the
 * database's credentials (CHIMERA_DATABASE_URL, PGPASSWORD, the other PG*
 * variables), which no worker or agent may see.  The agent cgroup was set
 * by cgroup_enter_worker() just before; the sanitizer options keep a
 * SANITIZE=1 build's workers reporting as chimerad does.  PATH is not
 * ours but the agents' default (worker/agent.c), so that nothing in a
 * worker searches directories only chimerad's caller trusted.
 */
static const char *const WORKER_ENV[] = {CGROUP_AGENT_ENV, "TZ", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                         "LSAN_OPTIONS"};
#define WORKER_ENV_MAX  (sizeof(WORKER_ENV) / sizeof(WORKER_ENV[0]) + 1)
#define WORKER_ENV_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

/* Fills envp (WORKER_ENV_MAX + 1 slots): PATH, and the entries of environ that WORKER_ENV names. */
static void worker_env(char **envp)
{
        size_t n = 0;

        envp[n++] = WORKER_ENV_PATH;
        for (char **e = environ; *e != NULL && n < WORKER_ENV_MAX; e++) {
                for (size_t i = 0; i < WORKER_ENV_MAX - 1; i++) {
                        size_t len = strlen(WORKER_ENV[i]);
                        if (strncmp(*e, WORKER_ENV[i], len) == 0 && (*e)[len] == '=') {
                                envp[n++] = *e;
                                break;
                        }
                }
        }
        envp[n] = NULL;
}

static void exec_worker(const struct pool *pool, int fd)
{
        char max[32], slot[16], *envp[WORKER_ENV_MAX + 1];
        const struct config *cfg = pool->sv->cfg;
        static const char *const levels[] = {"debug", "info", "warn", "error"};
        sigset_t none;

        /* Undo what the supervisor set up for itself before the new program starts. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (fd != WORKER_FD) {
                if (dup2(fd, WORKER_FD) < 0)
                        _exit(127);
        } else if (fcntl(fd, F_SETFD, 0) < 0) {
                _exit(127);
        }
        close_range(WORKER_FD + 1, ~0U, 0);
        snprintf(max, sizeof(max), "%lld", (long long)cfg->pool_max_frame_size);
        snprintf(slot, sizeof(slot), "%d", 0);
        char *const argv[] = {"chimera-worker",
                              "--max-frame-size",
                              max,
                              "--log-level",
                              (char *)levels[cfg->log_level],
                              "--log-format",
                              cfg->log_format == LOG_FORMAT_JSON ? "json" : "text",
                              NULL};
        worker_env(envp);
        execve(pool->worker_path, argv, envp);
        log_warn("cannot execute %s", pool->worker_path);
        _exit(127);
}

static int worker_spawn(struct worker *w)
{
        struct pool *pool = w->pool;
        int sp[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                log_warn("%s: socketpair", __func__);
                return -1;
        }
        pid = fork();
        if (pid < 0) {
                log_warn("%s: fork", __func__);
                close(sp[0]);
                close(sp[1]);
                return -1;
        }
        if (pid == 0) {
                close(sp[0]);
                cgroup_enter_worker(pool->sv->cgroup, w->slot);
                exec_worker(pool, sp[1]);
        }
        close(sp[1]);
        if (util_set_nonblock(sp[0]) < 0)
                fatal("%s: nonblock", __func__);
        chan_open(w, sp[0]);
        w->pid = pid;
        w->spawned_ms = util_now_ms();
        w->tasks_done = 0;
        w->generation = pool->generation;
        set_state(w, W_STARTING);
        log_debug("spawned worker %d in slot %d", (int)pid, w->slot);
        return 0;
}

/*
 * Stops talking to a worker and makes sure it dies; its task and its slot
 * are settled when SIGCHLD reaps it.  reason (copied) is why, for the
 * task's error; NULL for an orderly stop.
 */
static void worker_kill(struct worker *w, const char *reason)
{
        if (reason != NULL && w->kill_reason == NULL) {
                w->kill_reason = util_strdup(reason);
                log_warnx("worker %d (slot %d) %s: killing it", (int)w->pid, w->slot, reason);
        }
        chan_close(w);
        if (w->pid > 0)
                kill(w->pid, SIGKILL);
        if (w->state != W_DEAD)
                set_state(w, W_STOPPING);
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg)
{
        struct worker *w = arg;

        if (w->pool->sv->state >= SUP_DRAINING)
                return;
        if (worker_spawn(w) < 0)
                fatalx("cannot start a worker");
}

/*
 * Refills a slot.  A worker that died by itself (not told to stop) soon
 * after it started, without finishing a task, counts as a crash: each one
 * in a row doubles the wait before the next spawn, up to 30 s.
 */
static void schedule_respawn(struct worker *w, bool crashed)
{
        struct pool *pool = w->pool;
        int64_t lived = util_now_ms() - w->spawned_ms, delay = 0;
        struct timeval tv;

        if (pool->sv->state >= SUP_DRAINING)
                return;
        if (crashed && lived < RESPAWN_QUICK_MS && w->tasks_done == 0) {
                pool->crash_streak++;
                delay = 100;
                for (int i = 1; i < pool->crash_streak && delay < RESPAWN_MAX_DELAY_MS; i++)
                        delay *= 2;
                if (delay > RESPAWN_MAX_DELAY_MS)
                        delay = RESPAWN_MAX_DELAY_MS;
                log_warnx("workers are dying right after they start; next one in %lld ms",
                          (long long)delay);
        } else {
                pool->crash_streak = 0;
        }
        pool->restarts++;
        if (w->respawn_ev == NULL)
                w->respawn_ev = evtimer_new(pool->sv->base, respawn_cb, w);
        tv.tv_sec = delay / 1000;
        tv.tv_usec = (delay % 1000) * 1000;
        evtimer_add(w->respawn_ev, &tv);
}

static void describe_status(int status, char *buf, size_t size)
{
        if (WIFSIGNALED(status))
                snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
        else
                snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
}

/* Settles a reaped worker: its task goes back to the queue, its slot is refilled. */
static void worker_reaped(struct worker *w, int status)
{
        struct supervisor *sv = w->pool->sv;
        char how[96], err[512];
        /* Told to stop (shutdown frame, recycling, reload) and exited cleanly: no crash. */
        bool crashed = !(w->state == W_STOPPING && w->kill_reason == NULL && WIFEXITED(status) &&
                         WEXITSTATUS(status) == 0);

        describe_status(status, how, sizeof(how));
        if (w->task != NULL) {
                struct task *t = w->task;
                /* The worker died under its agent: the agent must not run on beside the
                 * retry.  Its group outlives the worker only while a member lives, so
                 * the id cannot have been reused by then. */
                if (t->agent_pgid > 1)
                        kill(-t->agent_pgid, SIGKILL);
                cgroup_kill_agent(sv->cgroup, w->slot);
                snprintf(err, sizeof(err), "worker %d %s%s%s%s%s", (int)w->pid, how,
                         w->kill_reason ? " after it " : "", w->kill_reason ? w->kill_reason : "",
                         t->phase ? " during phase " : "", t->phase ? t->phase : "");
                evtimer_del(w->timeout_ev);
                if (w->requeue) {
                        queue_finish(sv->queue, t, "requeue", JTEXT_NONE, err, JTEXT_NONE);
                } else {
                        struct log_task lt = task_log(w, t, util_now_ms() - t->started_ms);
                        log_task(LOG_LEVEL_WARN, &lt, "%s; it will be retried", err);
                        sv->stats.retried++;
                        queue_finish(sv->queue, t, "retry", JTEXT_NONE, err, JTEXT_NONE);
                }
                task_free(t);
                w->task = NULL;
        } else if (w->state != W_STOPPING && sv->state < SUP_DRAINING) {
                log_warnx("worker %d (slot %d) %s", (int)w->pid, w->slot, how);
        }
        chan_close(w);
        free(w->kill_reason);
        w->kill_reason = NULL;
        w->requeue = false;
        w->pid = -1;
        set_state(w, W_DEAD);
        schedule_respawn(w, crashed);
}

void pool_reap_cb(evutil_socket_t sig, short events, void *arg)
{
        struct supervisor *sv = arg;
        struct pool *pool = &sv->pool;
        int status;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (int i = 0; i < pool->size; i++) {
                        if (pool->workers[i].pid == pid) {
                                worker_reaped(&pool->workers[i], status);
                                break;
                        }
                }
        }
        supervisor_maybe_finish(sv);
        queue_kick(sv->queue);
}

/* ---- dispatch and queries ---- */

int pool_idle_count(const struct pool *pool)
{
        int n = 0;

        for (int i = 0; i < pool->size; i++)
                n += pool->workers[i].state == W_IDLE;
        return n;
}

int pool_busy_count(const struct pool *pool)
{
        int n = 0;

        for (int i = 0; i < pool->size; i++)
                n += pool->workers[i].task != NULL;
        return n;
}

int pool_dispatch(struct pool *pool, struct task *task, const char *frame, size_t len)
{
        unsigned char hdr[FRAME_HEADER_SIZE];

        util_put_be32(hdr, (uint32_t)len);
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                if (w->state != W_IDLE)
                        continue;
                struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)frame, len}};
                if (chan_send(w, iov, 2) < 0) {
                        worker_kill(w, "could not be sent a task");
                        continue;
                }
                task->started_ms = util_now_ms();
                w->task = task;
                set_state(w, W_BUSY);
                if (task->timeout_ms > 0) {
                        struct timeval tv = {task->timeout_ms / 1000,
                                             (task->timeout_ms % 1000) * 1000};
                        evtimer_add(w->timeout_ev, &tv);
                }
                log_debug("task %lld attempt %d -> worker %d", (long long)task->id, task->attempt,
                          (int)w->pid);
                return 0;
        }
        return -1;
}

void pool_held_ids(const struct pool *pool, json_t *arr)
{
        for (int i = 0; i < pool->size; i++) {
                const struct task *t = pool->workers[i].task;
                if (t != NULL)
                        json_array_append_new(arr, json_integer((json_int_t)t->id));
        }
}

static void send_shutdown(struct worker *w)
{
        static const unsigned char frame[] = "\0\0\0\023{\"type\":\"shutdown\"}";
        struct iovec iov = {(void *)frame, sizeof(frame) - 1};

        if (chan_send(w, &iov, 1) < 0)
                log_debug("worker %d: its socket is gone", (int)w->pid);
        set_state(w, W_STOPPING);
}

/* Tells idle workers to exit; busy ones are told when their task ends. */
void pool_shutdown(struct pool *pool)
{
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                if (w->respawn_ev != NULL)
                        evtimer_del(w->respawn_ev);
                if (w->state == W_IDLE || w->state == W_STARTING)
                        send_shutdown(w);
        }
}

void pool_reconfigure(struct pool *pool)
{
        pool->generation++;
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                if (w->state == W_IDLE)
                        send_shutdown(w);
        }
}

void pool_kill_busy(struct pool *pool, const char *reason)
{
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                if (w->task != NULL) {
                        w->requeue = true;
                        worker_kill(w, reason);
                }
        }
}

bool pool_all_exited(const struct pool *pool)
{
        for (int i = 0; i < pool->size; i++)
                if (pool->workers[i].state != W_DEAD)
                        return false;
        return true;
}

void pool_free(struct pool *pool)
{
        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                chan_close(w);
                if (w->respawn_ev != NULL)
                        event_free(w->respawn_ev);
                if (w->timeout_ev != NULL)
                        event_free(w->timeout_ev);
                task_free(w->task);
                free(w->kill_reason);
        }
        free(pool->workers);
        pool->workers = NULL;
        jbuf_free(&pool->scratch);
        jbuf_free(&pool->frame);
}

json_t *pool_status_json(const struct pool *pool)
{
        json_t *workers = json_array();
        int64_t now = util_now_ms();
        int busy = 0, idle = 0, starting = 0;

        for (int i = 0; i < pool->size; i++) {
                const struct worker *w = &pool->workers[i];
                const struct task *t = w->task;
                busy += t != NULL;
                idle += w->state == W_IDLE;
                starting += w->state == W_STARTING;
                json_array_append_new(
                    workers,
                    json_pack("{s:i, s:i, s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "slot", w->slot,
                              "pid", (int)w->pid, "state", t ? "busy" : worker_state_name(w->state),
                              "tasks_done", (int)w->tasks_done, "task",
                              t ? json_integer((json_int_t)t->id) : json_null(), "workflow",
                              t ? json_string(t->workflow) : json_null(), "phase",
                              t && t->phase ? json_string(t->phase) : json_null(), "attempt",
                              t ? json_integer(t->attempt) : json_null(), "busy_ms",
                              t ? json_integer(now - t->started_ms) : json_null()));
        }
        return json_pack("{s:i, s:i, s:i, s:i, s:I, s:i, s:o}", "size", pool->size, "busy", busy,
                         "idle", idle, "starting", starting, "restarts", (json_int_t)pool->restarts,
                         "crash_streak", pool->crash_streak, "workers", workers);
}

/*
 * chimera-ctl cancel of a running task.  The outcome is recorded before
 * the worker dies, and the task taken from it, so that its death settles
 * nothing: no retry is written, and a frame the worker sent meanwhile is
 * never read (worker_kill() drops the socket).
 */
int pool_cancel_task(struct pool *pool, int64_t task_id)
{
        struct supervisor *sv = pool->sv;
        char reason[96];

        for (int i = 0; i < pool->size; i++) {
                struct worker *w = &pool->workers[i];
                struct task *t = w->task;

                if (t == NULL || t->id != task_id)
                        continue;
                log_info("task %lld cancelled by an operator (workflow %s, attempt %d, trace %s, "
                         "worker %d%s%s)",
                         (long long)t->id, t->workflow, t->attempt, t->trace_id, (int)w->pid,
                         t->phase ? ", phase " : "", t->phase ? t->phase : "");
                /* The agent has a process group of its own and would outlive the worker. */
                if (t->agent_pgid > 1)
                        kill(-t->agent_pgid, SIGKILL);
                cgroup_kill_agent(sv->cgroup, w->slot);
                queue_finish(sv->queue, t, "cancelled", JTEXT_NONE, NULL, JTEXT_NONE);
                evtimer_del(w->timeout_ev);
                task_free(t);
                w->task = NULL;
                /* Its task ended, on our word: the death that follows is no crash. */
                w->tasks_done++;
                snprintf(reason, sizeof(reason), "was running task %lld, which was cancelled",
                         (long long)task_id);
                worker_kill(w, reason);
                return 0;
        }
        return -1;
}
