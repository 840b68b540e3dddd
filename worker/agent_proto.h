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
};

/*
 * Decides the phase outcome.  Exit 0 with one JSON object on stdout is
 * success, unless the object's "status" is a string other than "success"
 * or "passed" (then a failure whose reason is its "error", else "reason",
 * else the status).  Exit 75 and deaths by a signal (ours at the timeout, or
 * a crash) are transient.  Any other exit, output that is not one JSON
 * object, too much output and an agent that cannot be started are phase
 * failures.  Fills out->outcome, out->error, out->fault (set for everything
 * but a well-formed answer and a plain non-zero exit) and out->result (a new
 * reference to the parsed object, or NULL).
 */
void agent_interpret(const struct agent_exit *x, struct agent_result *out);

#endif
