/*
 * confine.h - an agent run's resource limits and accounting (confine.c):
 * setrlimit in the child, and a cgroup v2 leaf when chimerad delegated one
 * to this worker.
 */
#ifndef CHIMERA_CONFINE_H
#define CHIMERA_CONFINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <jansson.h>

#include "agent_proto.h"

/* Where chimerad tells a worker its agent cgroup leaf (an absolute path). */
#define CONFINE_CGROUP_ENV "CHIMERA_AGENT_CGROUP"

/* Cumulative cgroup counters, read before and after a run. */
struct confine_counters {
        uint64_t oom_kill, pids_max, user_usec, system_usec;
};

/* One agent run, from confine_prepare() to confine_collect(). */
struct confine_run {
        struct run_limits lim;
        bool cgroup;    /* the run has a cgroup leaf */
        bool cg_memory; /* ... that enforces memory.max */
        bool cg_pids;   /* ... and pids.max */
        struct confine_counters before;
};

/* At worker start: opens the leaf named by CONFINE_CGROUP_ENV, if any. */
void confine_init(void);

/*
 * Before forking the agent: reads its "limits" (borrowed, may be NULL) and
 * sets the cgroup leaf's limits.  Logs and falls back to rlimits on errors.
 */
void confine_prepare(struct confine_run *r, json_t *limits);

/*
 * In the forked child, before exec: joins the leaf and sets the rlimits
 * the leaf does not stand for.  Never fails: a limit that cannot be set is
 * left as it was (a lower hard limit we already have stays).
 */
void confine_enter_child(const struct confine_run *r);

/*
 * After the agent was reaped: kills what is left in its cgroup leaf, even
 * processes that left its process group, and waits up to 2 s for the leaf
 * to empty.  Nothing to do without a leaf.
 */
void confine_finish(struct confine_run *r);

/*
 * Fills x->limits, x->usage (but wall_ms) and the cgroup verdicts from the
 * agent's rusage (wait4) and the leaf's counters.
 */
void confine_collect(struct confine_run *r, const struct rusage *ru, struct agent_exit *x);

#endif
