/*
 * agent.c - what a phase calls.
 *
 * Built-in agents run inside the worker, for tests and benchmarks:
 *   builtin:noop   succeeds at once with {}
 *   builtin:sleep  sleeps params.ms, else payload.ms, milliseconds; succeeds
 *   builtin:fail   fails the phase (params.message says why); with
 *                  params.transient true it is a transient error instead
 * While sleeping the worker watches its socket, so it exits at once when
 * chimerad goes away rather than finishing work nobody will record.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "worker.h"

/* Waits ms milliseconds, or exits the worker if the supervisor hangs up. */
static void sleep_watching(int ctl_fd, int64_t ms)
{
        int64_t deadline = util_now_ms() + ms;

        for (;;) {
                int64_t left = deadline - util_now_ms();
                struct pollfd pfd = {.fd = ctl_fd, .events = POLLIN};
                int n;

                if (left <= 0)
                        return;
                n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
                if (n < 0 && errno != EINTR)
                        return;
                /* The supervisor sends nothing while a task runs: input means EOF or
                 * an error, and either way nobody is listening any more. */
                if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
                        log_warnx("supervisor went away during a task: exiting");
                        exit(1);
                }
        }
}

static int64_t sleep_ms(json_t *request)
{
        json_t *v = json_object_get(json_object_get(request, "params"), "ms");

        if (!json_is_integer(v))
                v = json_object_get(json_object_get(request, "payload"), "ms");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return 0;
        return json_integer_value(v);
}

static void run_builtin(const char *name, json_t *request, int ctl_fd, struct agent_result *out)
{
        json_t *params = json_object_get(request, "params");

        if (strcmp(name, "builtin:noop") == 0) {
                out->outcome = AGENT_SUCCESS;
                out->result = json_object();
        } else if (strcmp(name, "builtin:sleep") == 0) {
                int64_t ms = sleep_ms(request);
                sleep_watching(ctl_fd, ms);
                out->outcome = AGENT_SUCCESS;
                out->result = json_pack("{s:I}", "slept_ms", (json_int_t)ms);
        } else if (strcmp(name, "builtin:fail") == 0) {
                const char *msg = json_string_value(json_object_get(params, "message"));
                out->outcome = json_is_true(json_object_get(params, "transient")) ? AGENT_TRANSIENT
                                                                                  : AGENT_FAILURE;
                snprintf(out->error, sizeof(out->error), "%s",
                         msg ? msg : "builtin:fail always fails");
        } else {
                out->outcome = AGENT_FAILURE;
                snprintf(out->error, sizeof(out->error), "unknown built-in agent \"%s\"", name);
        }
}

void agent_run(const struct wf_phase *phase, json_t *request, int ctl_fd, struct agent_result *out)
{
        out->result = NULL;
        out->error[0] = '\0';
        if (workflow_agent_is_builtin(phase->agent)) {
                run_builtin(phase->agent, request, ctl_fd, out);
                return;
        }
        out->outcome = AGENT_FAILURE;
        snprintf(out->error, sizeof(out->error),
                 "agent \"%s\" cannot run: this worker only runs built-in agents so far",
                 phase->agent);
}
