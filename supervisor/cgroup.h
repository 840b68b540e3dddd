/*
 * cgroup.h - the pool's cgroup v2 sub-tree, where chimerad runs in a
 * delegated cgroup (systemd Delegate=yes): chimerad in a "supervisor"
 * leaf, and per worker slot N a "worker-N" cgroup holding the worker in
 * "worker-N/worker" and its agents in "worker-N/agent", whose memory.max
 * and pids.max the worker sets from each agent's limits.  Without a
 * delegated cgroup all of this is a no-op and agents get rlimits only.
 */
#ifndef CHIMERA_CGROUP_H
#define CHIMERA_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

/* Names a worker's agent leaf for chimera-worker (worker/confine.h reads it). */
#define CGROUP_AGENT_ENV "CHIMERA_AGENT_CGROUP"

struct cgroup;
struct config;

/*
 * Builds the sub-tree for pool_size slots and moves chimerad into its
 * "supervisor" leaf, when chimerad runs alone in a cgroup v2 it may write
 * (not the root cgroup).  Returns it (free with cgroup_free()), or NULL when
 * chimerad has no delegated cgroup v2 or cannot use it; either way it logs
 * once which limits agents will get.
 */
struct cgroup *cgroup_setup(int pool_size);

/*
 * Hands the sub-tree to uid:gid before a root chimerad becomes that user
 * (privsep.c), as systemd's Delegate=yes does for a User= service: the
 * delegated cgroup's directory and its cgroup.procs, cgroup.threads and
 * cgroup.subtree_control, and everything in the worker sub-trees, so that
 * workers can still join their leaves and set their agents' limits.
 * Returns 0, or -1 after logging why; the tree is then of no use to the
 * new user and the caller frees it.
 */
int cgroup_give(const struct cgroup *cg, uid_t uid, gid_t gid) __attribute__((warn_unused_result));

/*
 * Warns about limits of cfg's agents that cannot hold here: a process
 * limit under root without the pids controller, which RLIMIT_NPROC does
 * not bind.  For start-up and each reload; cg may be NULL.
 */
void cgroup_check_config(const struct cgroup *cg, const struct config *cfg);

/*
 * In a freshly forked worker, before exec: joins slot's worker leaf and
 * names the slot's agent leaf in the environment for chimera-worker.  Does
 * nothing with cg NULL; a failure leaves the worker where it is, with
 * rlimits only for its agents.
 */
void cgroup_enter_worker(const struct cgroup *cg, int slot);

/*
 * Kills every process in slot's agent leaf (the worker under it died or
 * was killed): what left the agent's process group too.  No-op with cg NULL.
 */
void cgroup_kill_agent(const struct cgroup *cg, int slot);

/* Removes the worker sub-trees (their processes must be gone); NULL is fine. */
void cgroup_free(struct cgroup *cg);

#endif
