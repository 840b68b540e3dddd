/*
 * fuzz_agent_output.c - libFuzzer target for agent_interpret(), which
 * turns what an agent did (its exit, its stdout, the tail of its stderr,
 * the limits it ran under and what it used) into a phase outcome.  Agents
 * are programs we do not control.
 *
 * The input is split as follows:
 *   byte 0     the exit status (a multiple of 4: 0), or the signal
 *   byte 1     flags: timeout, overflow, killed by a signal, failed exec,
 *              OOM kill, refused fork
 *   bytes 2-3  how many of the bytes after the header are the stderr tail
 *              (at most AGENT_STDERR_TAIL, cut at a NUL as the worker's
 *              buffer is)
 *   byte 4     limits set: memory (64MB), CPU (2s), processes (16)
 *   byte 5     usage: peak RSS of byte5 MB, CPU time of byte5 * 20 ms
 *   then the stderr tail, then stdout.
 * Usage stays in the range a kernel reports; limits are what the config
 * accepts.
 *
 * The outcome must be usable as the runner uses it: the error goes into a
 * progress and a result frame with json_pack("s:s"), so it must be valid
 * UTF-8, or the frame cannot be built; a success carries an object, and
 * the cause has a name.
 */
#include <errno.h>
#include <string.h>

#include "agent_proto.h"
#include "fuzz.h"

#define HEADER 6

enum {
        F_TIMED_OUT = 1,
        F_OVERFLOW = 2,
        F_SIGNALED = 4,
        F_EXEC_FAILED = 8,
        F_OOM_KILLED = 16,
        F_FORK_REFUSED = 32,
};

enum {
        L_MEMORY = 1,
        L_CPU = 2,
        L_PROCESSES = 4,
};

static void read_header(const unsigned char *h, struct agent_exit *x)
{
        x->wait_status = (h[0] % 4 == 0 ? 0 : h[0]) << 8;
        if (h[1] & F_SIGNALED)
                x->wait_status = h[0] % 64 + 1; /* killed by signal 1..64 */
        x->timed_out = h[1] & F_TIMED_OUT;
        x->overflow = h[1] & F_OVERFLOW;
        x->exec_errno = h[1] & F_EXEC_FAILED ? ENOENT : 0;
        x->oom_killed = h[1] & F_OOM_KILLED;
        x->fork_refused = h[1] & F_FORK_REFUSED;
        x->limits.memory = h[4] & L_MEMORY ? 64 << 20 : 0;
        x->limits.cpu_ms = h[4] & L_CPU ? 2000 : 0;
        x->limits.processes = h[4] & L_PROCESSES ? 16 : 0;
        x->usage.max_rss_kb = (int64_t)h[5] * 1024;
        x->usage.cpu_user_ms = (int64_t)h[5] * 15;
        x->usage.cpu_sys_ms = (int64_t)h[5] * 5;
        x->usage.wall_ms = (int64_t)h[5] * 100;
}

static void check_result(const struct agent_result *r)
{
        FUZZ_CHECK(r->outcome == AGENT_SUCCESS || r->outcome == AGENT_FAILURE ||
                       r->outcome == AGENT_TRANSIENT,
                   "outcome %d", (int)r->outcome);
        FUZZ_CHECK(r->outcome != AGENT_SUCCESS || json_is_object(r->result),
                   "a success without an answer");
        FUZZ_CHECK(r->result == NULL || json_is_object(r->result), "an answer that is no object");
        FUZZ_CHECK(memchr(r->error, '\0', sizeof(r->error)) != NULL, "error not terminated");
        FUZZ_CHECK(r->outcome == AGENT_SUCCESS || r->error[0] != '\0',
                   "a failure without a reason");
        FUZZ_CHECK(fuzz_is_json_text(r->error), "error is not UTF-8: %s", r->error);
        FUZZ_CHECK(strcmp(agent_cause_name(r->cause), "unknown") != 0, "cause %d", (int)r->cause);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        char tail[AGENT_STDERR_TAIL + 1];
        struct agent_exit x = {.agent = "fuzz-agent", .timeout_ms = 300000, .max_output = 4096};
        struct agent_result r;
        size_t taillen;

        if (size < HEADER)
                return 0;
        read_header(data, &x);
        taillen = ((size_t)data[2] << 8 | data[3]) % (AGENT_STDERR_TAIL + 1);
        data += HEADER, size -= HEADER;
        if (taillen > size)
                taillen = size;
        memcpy(tail, data, taillen);
        tail[taillen] = '\0';
        x.err_tail = tail;
        x.out = (const char *)data + taillen;
        x.outlen = size - taillen;

        agent_interpret(&x, &r);
        check_result(&r);
        json_decref(r.result);
        return 0;
}
