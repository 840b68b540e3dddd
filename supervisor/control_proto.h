/*
 * control_proto.h - the one decode point of the control socket: a request
 * line becomes a typed, validated request before control.c acts on it.
 * Pure code (no sockets, no supervisor), so that the unit tests and the
 * fuzzer can call it directly.
 */
#ifndef CHIMERA_CONTROL_PROTO_H
#define CHIMERA_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/*
 * The longest request line.  control.c stops reading a connection whose
 * unfinished line grows past it; a whole line past it is refused here, as
 * it may have arrived in one read.
 */
#define CONTROL_MAX_LINE (64 * 1024)

enum control_cmd {
        CONTROL_STATUS = 1,
        CONTROL_WORKERS,
        CONTROL_CANCEL,
        CONTROL_RELOAD,
        CONTROL_PING,
};

struct control_request {
        enum control_cmd cmd;
        json_int_t id; /* CONTROL_CANCEL: the task, a positive integer; else 0 */
        /* The "cmd" string, cut to 64 bytes on a character boundary, when the
         * request is an object that has one: set even when the request is
         * refused, so that a permission check can name any command. */
        bool has_name;
        char name[65];
};

/*
 * Parses one request line of len bytes (without its newline; it need not
 * be NUL-terminated; over CONTROL_MAX_LINE bytes it is refused unread).
 * Returns 0 and fills *req, or -1 with the sentence to
 * answer in err ("request has no \"cmd\" string", "unknown command ..."),
 * always valid UTF-8 so that it fits in the JSON reply.
 */
int control_parse_request(const char *line, size_t len, struct control_request *req, char *err,
                          size_t errsz) __attribute__((warn_unused_result));

#endif
