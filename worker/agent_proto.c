/*
 * agent_proto.c - from an agent's exit to a phase outcome (agent_proto.h).
 *
 * Messages are written for the person reading last_error or the timeline:
 * they name the agent and say what it did, and carry the last line of its
 * stderr when it failed, since that is usually where an agent says why.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "agent_proto.h"
#include "util.h"

/* The last non-empty line of the stderr tail, at most 300 bytes, in buf. */
static const char *last_line(const char *tail, char *buf, size_t size)
{
        size_t n = strlen(tail);
        const char *start;

        while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' '))
                n--;
        start = tail + n;
        while (start > tail && start[-1] != '\n')
                start--;
        snprintf(buf, size, "%.*s", (int)(tail + n - start > 300 ? 300 : tail + n - start), start);
        return buf;
}

static void set(struct agent_result *out, enum agent_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set(struct agent_result *out, enum agent_outcome o, const char *fmt, ...)
{
        va_list ap;

        out->outcome = o;
        va_start(ap, fmt);
        vsnprintf(out->error, sizeof(out->error), fmt, ap);
        va_end(ap);
}

/* Exit 0: the answer must be one JSON object, whose status (if any) decides. */
static void interpret_answer(const struct agent_exit *x, struct agent_result *out)
{
        json_error_t jerr;
        json_t *answer, *status;
        const char *st, *why;

        if (x->outlen == 0) {
                out->fault = true;
                set(out, AGENT_FAILURE,
                    "agent %s exited 0 but printed nothing (expected one "
                    "JSON object on stdout)",
                    x->agent);
                return;
        }
        answer = json_loadb(x->out, x->outlen, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(answer)) {
                out->fault = true;
                set(out, AGENT_FAILURE, "agent %s did not answer one JSON object on stdout: %s",
                    x->agent, answer ? "the answer is not an object" : jerr.text);
                json_decref(answer);
                return;
        }
        out->result = answer;
        status = json_object_get(answer, "status");
        st = json_string_value(status);
        if (status == NULL ||
            (st != NULL && (strcmp(st, "success") == 0 || strcmp(st, "passed") == 0))) {
                out->outcome = AGENT_SUCCESS;
                return;
        }
        why = json_string_value(json_object_get(answer, "error"));
        if (why == NULL)
                why = json_string_value(json_object_get(answer, "reason"));
        if (why != NULL)
                set(out, AGENT_FAILURE, "%s: %s", st ? st : "failed", why);
        else
                set(out, AGENT_FAILURE, "agent %s answered status %s", x->agent,
                    st ? st : "(not a string)");
}

void agent_interpret(const struct agent_exit *x, struct agent_result *out)
{
        char line[320], n[32], when[32];

        out->result = NULL;
        out->error[0] = '\0';
        /* Everything but an answer, good or bad, is the agent's fault. */
        out->fault = x->exec_errno != 0 || x->timed_out || x->overflow ||
                     WIFSIGNALED(x->wait_status) ||
                     WEXITSTATUS(x->wait_status) == AGENT_EXIT_TRANSIENT;
        last_line(x->err_tail ? x->err_tail : "", line, sizeof(line));
        if (x->exec_errno != 0) {
                set(out, AGENT_FAILURE, "agent %s cannot be started: %s", x->agent,
                    strerror(x->exec_errno));
        } else if (x->timed_out) {
                util_format_ms(x->timeout_ms, when, sizeof(when));
                set(out, AGENT_TRANSIENT, "agent %s timed out after %s and was killed", x->agent,
                    when);
        } else if (x->overflow) {
                snprintf(n, sizeof(n), "%zu", x->max_output);
                set(out, AGENT_FAILURE, "agent %s printed more than %s bytes on stdout", x->agent,
                    n);
        } else if (WIFSIGNALED(x->wait_status)) {
                snprintf(n, sizeof(n), "%d (%s)", WTERMSIG(x->wait_status),
                         strsignal(WTERMSIG(x->wait_status)));
                set(out, AGENT_TRANSIENT, "agent %s was killed by signal %s", x->agent, n);
        } else if (WEXITSTATUS(x->wait_status) == AGENT_EXIT_TRANSIENT) {
                set(out, AGENT_TRANSIENT, "agent %s asked to be retried (exit 75)", x->agent);
        } else if (WEXITSTATUS(x->wait_status) != 0) {
                snprintf(n, sizeof(n), "%d", WEXITSTATUS(x->wait_status));
                set(out, AGENT_FAILURE, "agent %s exited with status %s", x->agent, n);
        } else {
                interpret_answer(x, out);
                return;
        }
        if (line[0] != '\0' && out->outcome != AGENT_SUCCESS && x->exec_errno == 0) {
                size_t len = strlen(out->error);
                snprintf(out->error + len, sizeof(out->error) - len, ": %s", line);
        }
}
