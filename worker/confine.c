/*
 * confine.c - holds an agent run to its agent's "limits" and measures what
 * the run used.
 *
 * Two mechanisms, the better one where it exists:
 *
 *  - A cgroup v2 leaf of our own, when chimerad runs in a delegated cgroup
 *    and gave this worker one (CHIMERA_AGENT_CGROUP, see
 *    supervisor/cgroup.c).  Before each run the leaf's memory.max and
 *    pids.max are set from the limits (where chimerad could enable those
 *    controllers); the agent joins the leaf between fork and exec; after
 *    the run cgroup.kill ends whatever is left, even a process that made
 *    itself a new session.  memory.events tells an OOM kill apart from a
 *    crash, pids.events a refused fork, and cpu.stat counts the CPU time
 *    of every process of the run, reaped or not.
 *
 *  - setrlimit() in the child before exec, for whatever the cgroup does not
 *    cover: memory as RLIMIT_AS and RLIMIT_DATA (allocations fail instead
 *    of an OOM kill), cpu as RLIMIT_CPU (per process: SIGXCPU at the limit,
 *    SIGKILL a second later), files as RLIMIT_NOFILE and processes as
 *    RLIMIT_NPROC, which the kernel counts per user, not per agent, and
 *    does not enforce for root.
 *
 * The output bound and the phase timeout are agent.c's.  What a limit
 * means for the phase is agent_proto.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "util.h"

#define CGROUP_EMPTY_WAIT_MS 2000

/* The agent cgroup leaf of this worker, as a directory fd; -1 without one. */
static int cgroup_dir = -1;

void confine_init(void)
{
        const char *path = getenv(CONFINE_CGROUP_ENV);

        if (path != NULL && *path != '\0') {
                cgroup_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (cgroup_dir < 0)
                        log_warn("cannot open the agent cgroup %s: agents get rlimits only", path);
        }
        /* Agents get a clean environment anyway; this keeps it out of sight. */
        unsetenv(CONFINE_CGROUP_ENV);
}

/* Reads a small cgroup file into buf; returns its length, or -1. */
static ssize_t cg_read(const char *name, char *buf, size_t size)
{
        int fd = openat(cgroup_dir, name, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -1;
        n = read(fd, buf, size - 1);
        close(fd);
        if (n < 0)
                return -1;
        buf[n] = '\0';
        return n;
}

/* Writes value to a cgroup file; returns 0, or -1 with errno set. */
static int cg_write(const char *name, const char *value)
{
        return util_write_file_at(cgroup_dir, name, value);
}

/* The value of "key N" in a flat-keyed cgroup file (memory.events, cpu.stat); 0 if absent. */
static uint64_t cg_key(const char *file, const char *key)
{
        char buf[2048], *p;
        size_t klen = strlen(key);

        if (cg_read(file, buf, sizeof(buf)) < 0)
                return 0;
        for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
                        return strtoull(p + klen + 1, NULL, 10);
        }
        return 0;
}

static bool cg_has(const char *name)
{
        return faccessat(cgroup_dir, name, W_OK, 0) == 0;
}

/* "max" for no limit, else the number. */
static int cg_write_limit(const char *name, int64_t value)
{
        char buf[32];

        if (value > 0)
                snprintf(buf, sizeof(buf), "%" PRId64, value);
        else
                snprintf(buf, sizeof(buf), "max");
        return cg_write(name, buf);
}

static void cg_snapshot(struct confine_run *r, struct confine_counters *c)
{
        c->oom_kill = r->cg_memory ? cg_key("memory.events", "oom_kill") : 0;
        c->pids_max = r->cg_pids ? cg_key("pids.events", "max") : 0;
        c->user_usec = cg_key("cpu.stat", "user_usec");
        c->system_usec = cg_key("cpu.stat", "system_usec");
}

void confine_prepare(struct confine_run *r, json_t *limits)
{
        agent_limits_parse(limits, &r->lim);
        r->cgroup = false;
        r->cg_memory = r->cg_pids = false;
        if (cgroup_dir < 0)
                return;
        r->cgroup = true;
        /* A controller chimerad could not enable has no files here: rlimits stand in. */
        if (cg_has("memory.max")) {
                r->cg_memory = cg_write_limit("memory.max", r->lim.memory) == 0;
                /* Past memory.max the kernel would swap the agent out instead of
                 * stopping it; without swap accounting the file is absent. */
                if (r->cg_memory && cg_has("memory.swap.max"))
                        (void)cg_write("memory.swap.max", r->lim.memory > 0 ? "0" : "max");
                /* One OOM kill ends the whole agent, as one unit. */
                if (r->cg_memory && cg_has("memory.oom.group"))
                        (void)cg_write("memory.oom.group", "1");
                if (!r->cg_memory)
                        log_warn("cannot set the agent cgroup's memory.max");
        }
        if (cg_has("pids.max")) {
                r->cg_pids = cg_write_limit("pids.max", r->lim.processes) == 0;
                if (!r->cg_pids)
                        log_warn("cannot set the agent cgroup's pids.max");
        }
        cg_snapshot(r, &r->before);
}

/* Lowers one rlimit to value (soft) and hard, never above the hard limit we have. */
static void set_rlimit(int resource, rlim_t soft, rlim_t hard)
{
        struct rlimit cur, want;

        if (getrlimit(resource, &cur) < 0)
                return;
        want.rlim_max = hard < cur.rlim_max ? hard : cur.rlim_max;
        want.rlim_cur = soft < want.rlim_max ? soft : want.rlim_max;
        (void)setrlimit(resource, &want);
}

void confine_enter_child(const struct confine_run *r)
{
        const struct run_limits *l = &r->lim;
        bool joined = false;

        if (r->cgroup)
                joined = cg_write("cgroup.procs", "0") == 0;
        if (l->memory > 0 && !(joined && r->cg_memory)) {
                set_rlimit(RLIMIT_AS, (rlim_t)l->memory, (rlim_t)l->memory);
                set_rlimit(RLIMIT_DATA, (rlim_t)l->memory, (rlim_t)l->memory);
        }
        if (l->cpu_ms > 0) {
                rlim_t s = (rlim_t)((l->cpu_ms + 999) / 1000);
                set_rlimit(RLIMIT_CPU, s, s + 1);
        }
        if (l->files > 0)
                set_rlimit(RLIMIT_NOFILE, (rlim_t)l->files, (rlim_t)l->files);
        if (l->processes > 0 && !(joined && r->cg_pids))
                set_rlimit(RLIMIT_NPROC, (rlim_t)l->processes, (rlim_t)l->processes);
}

static void sleep_ms(int ms)
{
        struct timespec ts = {0, ms * 1000000L};

        nanosleep(&ts, NULL);
}

/* Kills every process left in the leaf and waits (briefly) until it is empty. */
static void cg_empty(void)
{
        int64_t deadline = util_now_ms() + CGROUP_EMPTY_WAIT_MS;
        char buf[4096];

        if (cg_write("cgroup.kill", "1") < 0) {
                /* Before Linux 5.14: one by one, as long as some are left. */
                while (cg_read("cgroup.procs", buf, sizeof(buf)) > 0 && buf[0] != '\0' &&
                       util_now_ms() < deadline) {
                        for (char *p = buf; *p != '\0'; p = strchr(p, '\n') + 1) {
                                kill((pid_t)atoi(p), SIGKILL);
                                if (strchr(p, '\n') == NULL)
                                        break;
                        }
                        sleep_ms(5);
                }
        }
        while (util_now_ms() < deadline && cg_read("cgroup.events", buf, sizeof(buf)) > 0 &&
               strstr(buf, "populated 1") != NULL)
                sleep_ms(2);
}

void confine_finish(struct confine_run *r)
{
        if (r->cgroup)
                cg_empty();
}

void confine_collect(struct confine_run *r, const struct rusage *ru, struct agent_exit *x)
{
        struct confine_counters after;

        x->limits = r->lim;
        x->usage.cpu_user_ms = (int64_t)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000;
        x->usage.cpu_sys_ms = (int64_t)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
        x->usage.max_rss_kb = ru->ru_maxrss;
        if (!r->cgroup)
                return;
        cg_snapshot(r, &after);
        x->oom_killed = after.oom_kill > r->before.oom_kill;
        x->fork_refused = after.pids_max > r->before.pids_max;
        /* The cgroup also counts what the agent left behind and we killed. */
        if (after.user_usec >= r->before.user_usec && after.system_usec >= r->before.system_usec &&
            after.user_usec + after.system_usec > r->before.user_usec + r->before.system_usec) {
                x->usage.cpu_user_ms = (int64_t)((after.user_usec - r->before.user_usec) / 1000);
                x->usage.cpu_sys_ms = (int64_t)((after.system_usec - r->before.system_usec) / 1000);
        }
}
