/*
 * http_proto.h - the one decode point of a POST /api/tasks body: JSON text
 * becomes the text parameters of the INSERT, or the sentence of a 400.
 * Pure code (no evhttp, no database), so that the unit tests and the
 * fuzzer can call it directly.
 */
#ifndef CHIMERA_HTTP_PROTO_H
#define CHIMERA_HTTP_PROTO_H

#include <stddef.h>

/*
 * The members of a body, in the order of the INSERT's columns and
 * parameters.  Only the members given become columns, so whatever is left
 * out gets the table's own default, as with a plain INSERT from psql.
 */
enum http_task_field {
        HTTP_TASK_WORKFLOW,
        HTTP_TASK_PAYLOAD,
        HTTP_TASK_PRIORITY,
        HTTP_TASK_QUEUE,
        HTTP_TASK_RUN_AT,
        HTTP_TASK_MAX_ATTEMPTS,
        HTTP_TASK_NFIELDS
};

struct http_task_field_spec {
        const char *key;  /* the member, and the column it fills */
        const char *cast; /* of its text parameter, e.g. "::jsonb" */
};

/* Indexed by enum http_task_field. */
extern const struct http_task_field_spec http_task_fields[HTTP_TASK_NFIELDS];

/*
 * Reads a body of len bytes (it need not be NUL-terminated) into params,
 * indexed by enum http_task_field: a malloc'd text for each member given,
 * NULL for one absent or null.  Returns 0 (the caller frees the texts; the
 * workflow is always there), or -1 with the 400's message in err (valid
 * UTF-8, for the JSON answer) and every params[i] NULL.  err should hold
 * 1024 bytes.
 */
int http_task_parse(const char *body, size_t len, char *params[HTTP_TASK_NFIELDS], char *err,
                    size_t errsz) __attribute__((warn_unused_result));

#endif
