/*
 * fuzz_control.c - libFuzzer target for control_parse_request(), the
 * decoder of chimerad's control socket, fed one request line as anyone
 * allowed on the socket could send it.
 *
 * A refusal is answered as control.c answers it, {"ok":false,"error":...}:
 * building that reply must work, or chimera-ctl gets the generic "could
 * not be encoded" instead of the reason.  An accepted request must be one
 * of the known commands, and a cancel must name a positive task id.
 */
#include "control_proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        struct control_request req;
        char err[256];
        json_t *reply;

        err[0] = '\0';
        if (control_parse_request((const char *)data, size, &req, err, sizeof(err)) < 0) {
                reply = json_pack("{s:b, s:s}", "ok", 0, "error", err);
                FUZZ_CHECK(reply != NULL, "the refusal cannot be sent: %s", err);
                json_decref(reply);
                return 0;
        }
        FUZZ_CHECK(req.cmd >= CONTROL_STATUS && req.cmd <= CONTROL_PING, "cmd %d", (int)req.cmd);
        FUZZ_CHECK(req.cmd != CONTROL_CANCEL || req.id > 0, "cancel of task %lld",
                   (long long)req.id);
        return 0;
}
