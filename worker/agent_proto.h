/*
 * agent_proto.h - what an agent's run means: the one place where an exit
 * status, a timeout and the bytes an agent printed become a phase outcome.
 * Pure code (no processes), so that every rule is unit-tested.
 */
#ifndef CHIMERA_AGENT_PROTO_H
#define CHIMERA_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#define AGENT_EXIT_TRANSIENT 75 /* EX_TEMPFAIL */

/*
 * The limits a run was held to, as far as they matter for reading its end
 * (agent_limits_parse() reads them from the agent's "limits" object).
 */
struct run_limits {
        int64_t memory;    /* bytes; 0: none */
        int64_t cpu_ms;    /* CPU time per process; 0: none */
        int64_t output;    /* bytes of stdout; 0: the default */
        int64_t files;     /* open files; 0: none */
        int64_t processes; /* processes and threads; 0: none */
};

/* How an agent's process ended, as the runner saw it. */
struct agent_exit {
        const char *agent; /* its name in the config */
        int exec_errno;    /* non-zero: it could not be started */
        int wait_status;   /* from waitpid(), when it ran */
        bool timed_out;    /* we killed it at the phase timeout */
        int64_t timeout_ms;
        bool overflow; /* it printed more than max_output bytes */
        size_t max_output;
        const char *out; /* what it printed on stdout (not NUL-terminated) */
        size_t outlen;
        const char *err_tail; /* the end of its stderr, NUL-terminated, may be "" */
        struct run_limits limits;
        struct agent_usage usage; /* what it used (wait4's rusage, or its cgroup) */
        bool oom_killed;          /* its cgroup counted an OOM kill during the run */
        bool fork_refused;        /* its cgroup refused a fork at pids.max during the run */
};

/*
 * Reads an agent's "limits" object (borrowed; NULL or not an object: no
 * limits) into *out.  Values the config did not validate are ignored.
 */
void agent_limits_parse(json_t *limits, struct run_limits *out);

/*
 * Why an agent's run ended, from what the worker saw: the first of start
 * failure, timeout, output overflow, an OOM kill its cgroup counted, death
 * by SIGXCPU (or by SIGKILL once past the CPU limit: the hard limit is one
 * second above the soft one), a memory limit and a refused fork.  Without a
 * cgroup, a memory limit is an address-space limit (RLIMIT_AS): the kernel
 * refuses allocations instead of killing, so a run that then failed (a
 * crash signal, or an exit status other than 0 and 75) after using at
 * least half its limit in resident memory counts as ending at the memory
 * limit.  Otherwise the cause is a plain exit or signal.  Pure.
 */
enum agent_cause agent_cause_of(const struct agent_exit *x);

/*
 * Decides the phase outcome.  Exit 0 with one JSON object on stdout is
 * success, unless the object's "status" is a string other than "success"
 * or "passed" (then a failure whose reason is its "error", else "reason",
 * else the status).  Exit 75 and deaths by a signal (ours at the timeout, or
 * a crash) are transient.  Any other exit, output that is not one JSON
 * object, too much output, an end at the memory, CPU or process limit
 * (agent_cause_of(); retrying would meet the same limit) and an agent that
 * cannot be started are phase failures.  Fills out->outcome, out->error
 * (valid UTF-8, whatever the agent printed), out->fault (set for everything but a well-formed
 * answer and a plain non-zero exit), out->result (a new reference to the parsed object, or NULL),
 * and how the run ended and what it used (out->cause, exit_status, signal, oom_killed, usage).
 */
void agent_interpret(const struct agent_exit *x, struct agent_result *out);

/* Stable names of causes, as in events and metrics ("memory_limit"); never NULL. */
const char *agent_cause_name(enum agent_cause cause);

/*
 * The accounting of one run for its phase_finished event: a new object
 * {"cpu_user_ms", "cpu_sys_ms", "max_rss_kb", "wall_ms"} (only "wall_ms"
 * for a built-in, which has no process of its own).
 */
json_t *agent_usage_json(const struct agent_result *r);

/*
 * The end of one run for its phase_finished event: a new object with
 * "cause" and "exit" (the status) or "signal" ("SIGKILL"), and "oom_kill"
 * when the cgroup saw one; NULL for a built-in.
 */
json_t *agent_end_json(const struct agent_result *r);

/*
 * Adds one run's usage to a task's running total (borrowed, modified):
 * {"phases": n, "cpu_user_ms", "cpu_sys_ms", "wall_ms" summed, "max_rss_kb"
 * the largest}.  Members missing or of the wrong type count as 0.
 */
void agent_usage_add(json_t *total, const struct agent_result *r);

#endif
