/*
 * worker.h - chimera-worker's pieces: the workflow runner and the agents.
 *
 * The worker knows nothing of PostgreSQL.  It gets a task frame, walks the
 * workflow's phases from the checkpoint the frame carries, calls each
 * phase's agent, reports progress after every phase and a result at the
 * end, all on the socketpair to chimerad (fd WORKER_FD).
 */
#ifndef CHIMERA_WORKER_H
#define CHIMERA_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "workflow.h"

#define WORKER_FD 3

enum agent_outcome {
        AGENT_SUCCESS,
        AGENT_FAILURE,   /* the phase failed: follow on_failure */
        AGENT_TRANSIENT, /* retry the attempt later (exit 75, timeout, crash) */
};

#define AGENT_STDERR_TAIL 2048 /* bytes of an agent's stderr kept for the timeline */

/* Why an agent's run ended (agent_proto.h decides; names in agent_cause_name()). */
enum agent_cause {
        CAUSE_NONE,         /* a built-in: no process */
        CAUSE_EXIT,         /* exited by itself, with any status */
        CAUSE_SIGNAL,       /* killed by a signal that no limit explains */
        CAUSE_START_FAILED, /* could not be started */
        CAUSE_TIMEOUT,      /* killed at the phase timeout */
        CAUSE_OUTPUT_LIMIT, /* killed for printing too much on stdout */
        CAUSE_MEMORY_LIMIT,
        CAUSE_CPU_LIMIT,
        CAUSE_PROCESS_LIMIT, /* failed after a fork was refused at the process limit */
};

/* What one run of an agent used. */
struct agent_usage {
        int64_t cpu_user_ms, cpu_sys_ms; /* its processes', reaped ones included */
        int64_t max_rss_kb;              /* the largest resident set among them */
        int64_t wall_ms;                 /* from spawn to exit */
};

struct agent_result {
        enum agent_outcome outcome;
        json_t *result; /* owned: the agent's answer, or NULL */
        char error[1024];
        bool fault; /* the agent misbehaved (crash, timeout, bad output), as opposed to
                       answering that the phase failed: what the circuit breaker counts */
        char stderr_tail[AGENT_STDERR_TAIL + 1];
        /* How the run ended and what it used: for the timeline, the task's total
         * and the metrics.  A built-in has CAUSE_NONE and only usage.wall_ms. */
        enum agent_cause cause;
        int exit_status; /* the status it exited with, or -1 (killed, never ran) */
        int signal;      /* the signal that killed it, or 0 */
        bool oom_killed; /* its cgroup counted an OOM kill */
        struct agent_usage usage;
};

/*
 * Runs phase's agent program with request (borrowed: the object the
 * program reads on stdin).  def (borrowed) is the agent's definition from
 * the task frame ({"argv", "env", "cwd", "limits"}), NULL for an agent the
 * frame does not define (then a failure, without running anything).
 * ctl_fd is watched while waiting so that the worker exits at once if
 * chimerad goes away (after killing the agent).  Fills *out; the caller
 * releases out->result.
 */
void agent_run(const struct wf_phase *phase, json_t *def, json_t *request, int ctl_fd,
               struct agent_result *out);

/*
 * Runs phase's built-in agent (workflow_agent_is_builtin()) inside the
 * worker, with phase->params and the task's payload (borrowed), which are
 * all a built-in reads: it needs no request.  ctl_fd is watched as by
 * agent_run().  Fills *out; the caller releases out->result.
 */
void agent_run_builtin(const struct wf_phase *phase, json_t *payload, int ctl_fd,
                       struct agent_result *out);

struct task_frame;

/*
 * Runs one task frame's workflow to its end, sending progress and result
 * frames on fd.  task is borrowed.  Returns 0, or -1 when the socket failed
 * (the worker must exit).
 */
int runner_run(int fd, size_t max_frame, const struct task_frame *task)
    __attribute__((warn_unused_result));

#endif
