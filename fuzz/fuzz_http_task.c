/*
 * fuzz_http_task.c - libFuzzer target for http_task_parse(), the decoder
 * of a POST /api/tasks body, fed what any HTTP client could post.
 *
 * An accepted body must give parameters PostgreSQL can take as they are
 * cast: a non-empty workflow, a payload that is a JSON object, a priority
 * from 1 to 5, integers in decimal.  A refusal leaves no parameter behind
 * and is a sentence for a JSON error body, so valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_proto.h"

static int is_decimal(const char *s)
{
        if (*s == '-')
                s++;
        return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

static void check_params(char *params[HTTP_TASK_NFIELDS])
{
        const char *prio = params[HTTP_TASK_PRIORITY], *max = params[HTTP_TASK_MAX_ATTEMPTS];
        json_t *payload;

        FUZZ_CHECK(params[HTTP_TASK_WORKFLOW] != NULL && params[HTTP_TASK_WORKFLOW][0] != '\0',
                   "no workflow");
        FUZZ_CHECK(params[HTTP_TASK_QUEUE] == NULL || params[HTTP_TASK_QUEUE][0] != '\0',
                   "empty queue");
        FUZZ_CHECK(prio == NULL || (strlen(prio) == 1 && prio[0] >= '1' && prio[0] <= '5'),
                   "priority %s", prio);
        FUZZ_CHECK(max == NULL || is_decimal(max), "max_attempts %s", max);
        if (params[HTTP_TASK_PAYLOAD] != NULL) {
                payload = json_loads(params[HTTP_TASK_PAYLOAD], 0, NULL);
                FUZZ_CHECK(json_is_object(payload), "payload %s", params[HTTP_TASK_PAYLOAD]);
                json_decref(payload);
        }
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                FUZZ_CHECK(params[f] == NULL || fuzz_is_json_text(params[f]), "%s is not UTF-8",
                           http_task_fields[f].key);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        char *params[HTTP_TASK_NFIELDS], err[1024];

        err[0] = '\0';
        if (http_task_parse((const char *)data, size, params, err, sizeof(err)) < 0) {
                for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                        FUZZ_CHECK(params[f] == NULL, "%s left behind", http_task_fields[f].key);
                FUZZ_CHECK(fuzz_is_json_text(err), "refusal is not UTF-8: %s", err);
                return 0;
        }
        check_params(params);
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                free(params[f]);
        return 0;
}
