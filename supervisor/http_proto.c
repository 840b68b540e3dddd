/*
 * http_proto.c - reading a POST /api/tasks body (http_proto.h).
 *
 * The body must be one JSON object whose members are known and of the
 * right type; each becomes the text of a parameter, which PostgreSQL casts
 * to its column (so the database still has the last word: a run_at it
 * cannot read is its error, passed on to the client).  Messages name the
 * member and say what it must be and what it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_proto.h"
#include "log.h"
#include "util.h"

const struct http_task_field_spec http_task_fields[HTTP_TASK_NFIELDS] = {
    [HTTP_TASK_WORKFLOW] = {"workflow", ""},
    [HTTP_TASK_PAYLOAD] = {"payload", "::jsonb"},
    [HTTP_TASK_PRIORITY] = {"priority", "::smallint"},
    [HTTP_TASK_QUEUE] = {"queue", ""},
    [HTTP_TASK_RUN_AT] = {"run_at", "::timestamptz"},
    [HTTP_TASK_MAX_ATTEMPTS] = {"max_attempts", "::integer"},
};

/*
 * Checks one member of the body and sets its parameter text (malloc'd) in
 * *param; null is taken as absent.  Returns NULL, or what is wrong.
 */
static const char *task_field(enum http_task_field f, const json_t *v, char **param)
{
        char num[32];

        if (json_is_null(v))
                return NULL;
        switch (f) {
        case HTTP_TASK_WORKFLOW:
        case HTTP_TASK_QUEUE:
                if (!json_is_string(v) || json_string_length(v) == 0)
                        return "must be a non-empty string";
                *param = util_strdup(json_string_value(v));
                return NULL;
        case HTTP_TASK_RUN_AT:
                if (!json_is_string(v))
                        return "must be a string: a timestamp such as \"2030-01-01T12:00:00Z\"";
                *param = util_strdup(json_string_value(v));
                return NULL;
        case HTTP_TASK_PAYLOAD:
                if (!json_is_object(v))
                        return "must be a JSON object";
                *param = json_dumps(v, JSON_COMPACT);
                if (*param == NULL)
                        fatalx("%s: out of memory", __func__);
                return NULL;
        case HTTP_TASK_PRIORITY:
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 5)
                        return "must be an integer from 1 to 5";
                break;
        case HTTP_TASK_MAX_ATTEMPTS:
                if (!json_is_integer(v))
                        return "must be an integer";
                break;
        case HTTP_TASK_NFIELDS:
                break;
        }
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *param = util_strdup(num);
        return NULL;
}

/* What v is, for "must be ..., not X" messages. */
static const char *describe(const json_t *v, char *buf, size_t size)
{
        if (json_is_string(v) && json_string_length(v) == 0)
                return "an empty string";
        if (json_is_integer(v)) {
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        return util_json_kind(v);
}

static int field_index(const char *key)
{
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                if (strcmp(key, http_task_fields[f].key) == 0)
                        return f;
        return -1;
}

/* Reads the members of an object body; -1 at the first one that is wrong. */
static int read_members(json_t *body, char *params[HTTP_TASK_NFIELDS], char *err, size_t errsz)
{
        const char *key, *why;
        char what[32];
        json_t *v;
        int f;

        json_object_foreach (body, key, v) {
                if ((f = field_index(key)) < 0) {
                        snprintf(err, errsz,
                                 "unknown member \"%.*s\" (known: workflow, payload, "
                                 "priority, queue, run_at, max_attempts)",
                                 util_utf8_cut(key, 64), key);
                        return -1;
                }
                if ((why = task_field((enum http_task_field)f, v, &params[f])) != NULL) {
                        snprintf(err, errsz, "\"%s\" %s, not %s", key, why,
                                 describe(v, what, sizeof(what)));
                        return -1;
                }
        }
        if (params[HTTP_TASK_WORKFLOW] == NULL) {
                snprintf(err, errsz, "\"workflow\" is required: the name of a workflow");
                return -1;
        }
        return 0;
}

int http_task_parse(const char *body, size_t len, char *params[HTTP_TASK_NFIELDS], char *err,
                    size_t errsz)
{
        json_error_t jerr;
        json_t *doc;
        int rc = -1;

        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                params[f] = NULL;
        doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (doc == NULL) {
                snprintf(err, errsz, "the body is not JSON: %s", len ? jerr.text : "it is empty");
                goto out;
        }
        if (!json_is_object(doc)) {
                snprintf(err, errsz, "the body must be a JSON object, not %s", util_json_kind(doc));
                goto out;
        }
        rc = read_members(doc, params, err, errsz);
out:
        json_decref(doc);
        /* The answer is JSON, but jansson quotes the bytes near a syntax
         * error, which may end inside a character. */
        if (rc < 0 && errsz > 0)
                util_utf8_sanitize(err);
        if (rc < 0) {
                for (int f = 0; f < HTTP_TASK_NFIELDS; f++) {
                        free(params[f]);
                        params[f] = NULL;
                }
        }
        return rc;
}
