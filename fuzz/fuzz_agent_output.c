/*
 * fuzz_agent_output.c - libFuzzer target for agent_interpret(), which
 * turns what an agent did (its exit, its stdout, the tail of its stderr)
 * into a phase outcome.  Agents are programs we do not control.
 *
 * The input is split as follows: byte 0 picks the exit status, byte 1
 * flags a timeout, an overflow, a death by signal or a failed exec, bytes
 * 2-3 give how many of the following bytes are the stderr tail (at most
 * AGENT_STDERR_TAIL, cut at a NUL as the worker's buffer is), and the rest
 * is stdout.
 *
 * The outcome must be usable as the runner uses it: the error goes into a
 * progress and a result frame with json_pack("s:s"), so it must be valid
 * UTF-8, or the frame cannot be built; a success carries an object.
 */
#include <errno.h>
#include <string.h>

#include "agent_proto.h"
#include "fuzz.h"

enum {
        F_TIMED_OUT = 1,
        F_OVERFLOW = 2,
        F_SIGNALED = 4,
        F_EXEC_FAILED = 8,
};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        char tail[AGENT_STDERR_TAIL + 1];
        struct agent_exit x = {.agent = "fuzz-agent", .timeout_ms = 300000, .max_output = 4096};
        struct agent_result r;
        size_t taillen;

        if (size < 4)
                return 0;
        x.wait_status = (data[0] % 4 == 0 ? 0 : data[0]) << 8;
        if (data[1] & F_SIGNALED)
                x.wait_status = data[0] % 64 + 1; /* killed by signal 1..64 */
        x.timed_out = data[1] & F_TIMED_OUT;
        x.overflow = data[1] & F_OVERFLOW;
        x.exec_errno = data[1] & F_EXEC_FAILED ? ENOENT : 0;
        taillen = ((size_t)data[2] << 8 | data[3]) % (AGENT_STDERR_TAIL + 1);
        data += 4, size -= 4;
        if (taillen > size)
                taillen = size;
        memcpy(tail, data, taillen);
        tail[taillen] = '\0';
        x.err_tail = tail;
        x.out = (const char *)data + taillen;
        x.outlen = size - taillen;

        agent_interpret(&x, &r);
        FUZZ_CHECK(r.outcome == AGENT_SUCCESS || r.outcome == AGENT_FAILURE ||
                       r.outcome == AGENT_TRANSIENT,
                   "outcome %d", (int)r.outcome);
        FUZZ_CHECK(r.outcome != AGENT_SUCCESS || json_is_object(r.result),
                   "a success without an answer");
        FUZZ_CHECK(r.result == NULL || json_is_object(r.result), "an answer that is no object");
        FUZZ_CHECK(memchr(r.error, '\0', sizeof(r.error)) != NULL, "error not terminated");
        FUZZ_CHECK(r.outcome == AGENT_SUCCESS || r.error[0] != '\0', "a failure without a reason");
        FUZZ_CHECK(fuzz_is_json_text(r.error), "error is not UTF-8: %s", r.error);
        json_decref(r.result);
        return 0;
}
