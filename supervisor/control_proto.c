/*
 * control_proto.c - from a control socket request line to a typed request
 * (control_proto.h).
 *
 * Everything a request can get wrong is found here, before control.c acts:
 * not JSON, not an object, no "cmd", an unknown command, a cancel without a
 * positive task id.  The messages are what chimera-ctl prints, so they say
 * what was expected.
 */
#include <stdio.h>
#include <string.h>

#include "control_proto.h"
#include "util.h"

static const struct {
        const char *name;
        enum control_cmd cmd;
} commands[] = {
    {"status", CONTROL_STATUS}, {"workers", CONTROL_WORKERS}, {"cancel", CONTROL_CANCEL},
    {"reload", CONTROL_RELOAD}, {"ping", CONTROL_PING},
};

static int lookup_cmd(const char *name, enum control_cmd *out)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, name) == 0) {
                        *out = commands[i].cmd;
                        return 0;
                }
        }
        return -1;
}

/* {"cmd":"cancel","id":N}: N names the task to stop. */
static int parse_cancel(json_t *msg, struct control_request *req, char *err, size_t errsz)
{
        json_t *idv = json_object_get(msg, "id");

        if (!json_is_integer(idv) || json_integer_value(idv) <= 0) {
                snprintf(err, errsz, "cancel needs an \"id\", a positive integer");
                return -1;
        }
        req->id = json_integer_value(idv);
        return 0;
}

int control_parse_request(const char *line, size_t len, struct control_request *req, char *err,
                          size_t errsz)
{
        json_error_t jerr;
        json_t *msg = NULL;
        const char *cmd;
        int rc = -1;

        *req = (struct control_request){0};
        if (len > CONTROL_MAX_LINE) {
                snprintf(err, errsz, "request too long");
                goto out;
        }
        msg = json_loadb(line, len, 0, &jerr);
        if (!json_is_object(msg)) {
                snprintf(err, errsz, "request is not a JSON object%s%s", msg ? "" : ": ",
                         msg ? "" : jerr.text);
                goto out;
        }
        cmd = json_string_value(json_object_get(msg, "cmd"));
        if (cmd == NULL) {
                snprintf(err, errsz, "request has no \"cmd\" string");
                goto out;
        }
        req->has_name = true;
        snprintf(req->name, sizeof(req->name), "%.*s", util_utf8_cut(cmd, sizeof(req->name) - 1),
                 cmd);
        if (lookup_cmd(cmd, &req->cmd) < 0) {
                snprintf(err, errsz, "unknown command \"%.*s\"", util_utf8_cut(cmd, 64), cmd);
                goto out;
        }
        if (req->cmd == CONTROL_CANCEL && parse_cancel(msg, req, err, errsz) < 0)
                goto out;
        rc = 0;
out:
        /* The reply is JSON, but jansson quotes the bytes near a syntax
         * error, which may end inside a character. */
        if (rc < 0 && errsz > 0)
                util_utf8_sanitize(err);
        json_decref(msg);
        return rc;
}
