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

void agent_limits_parse(json_t *limits, struct run_limits *out)
{
        json_t *v;

        *out = (struct run_limits){0};
        if (!json_is_object(limits))
                return;
        v = json_object_get(limits, "memory");
        if (json_is_string(v) && util_parse_size(json_string_value(v), &out->memory) < 0)
                out->memory = 0;
        v = json_object_get(limits, "cpu");
        if (json_is_string(v) && util_parse_duration(json_string_value(v), &out->cpu_ms) < 0)
                out->cpu_ms = 0;
        v = json_object_get(limits, "output");
        if (json_is_string(v) && util_parse_size(json_string_value(v), &out->output) < 0)
                out->output = 0;
        v = json_object_get(limits, "files");
        if (json_is_integer(v) && json_integer_value(v) > 0)
                out->files = json_integer_value(v);
        v = json_object_get(limits, "processes");
        if (json_is_integer(v) && json_integer_value(v) > 0)
                out->processes = json_integer_value(v);
}

enum agent_cause agent_cause_of(const struct agent_exit *x)
{
        int sig = WIFSIGNALED(x->wait_status) ? WTERMSIG(x->wait_status) : 0;
        int code = WIFEXITED(x->wait_status) ? WEXITSTATUS(x->wait_status) : -1;
        bool failed = sig != 0 || (code != 0 && code != AGENT_EXIT_TRANSIENT);
        int64_t cpu_ms = x->usage.cpu_user_ms + x->usage.cpu_sys_ms;

        if (x->exec_errno != 0)
                return CAUSE_START_FAILED;
        if (x->timed_out)
                return CAUSE_TIMEOUT;
        if (x->overflow)
                return CAUSE_OUTPUT_LIMIT;
        if (x->oom_killed)
                return CAUSE_MEMORY_LIMIT;
        /* SIGXCPU at the soft limit; SIGKILL at the hard one, a second later, when
         * the agent caught or ignored SIGXCPU.  Nothing else of ours sends SIGKILL
         * without setting timed_out or overflow. */
        if (x->limits.cpu_ms > 0 &&
            (sig == SIGXCPU || (sig == SIGKILL && cpu_ms >= x->limits.cpu_ms)))
                return CAUSE_CPU_LIMIT;
        /* RLIMIT_AS makes allocations fail; what the program does then (exit 1,
         * abort, a segfault on NULL) is its own, so the resident peak decides. */
        if (x->limits.memory > 0 && failed && x->usage.max_rss_kb * 1024 >= x->limits.memory / 2)
                return CAUSE_MEMORY_LIMIT;
        if (x->fork_refused && failed)
                return CAUSE_PROCESS_LIMIT;
        return sig != 0 ? CAUSE_SIGNAL : CAUSE_EXIT;
}

const char *agent_cause_name(enum agent_cause cause)
{
        static const char *const names[] = {
            [CAUSE_NONE] = "builtin",
            [CAUSE_EXIT] = "exit",
            [CAUSE_SIGNAL] = "signal",
            [CAUSE_START_FAILED] = "start_failed",
            [CAUSE_TIMEOUT] = "timeout",
            [CAUSE_OUTPUT_LIMIT] = "output_limit",
            [CAUSE_MEMORY_LIMIT] = "memory_limit",
            [CAUSE_CPU_LIMIT] = "cpu_limit",
            [CAUSE_PROCESS_LIMIT] = "process_limit",
        };

        if ((size_t)cause >= sizeof(names) / sizeof(names[0]) || names[cause] == NULL)
                return "unknown";
        return names[cause];
}

/* "exited with status 1", "signal SIGSEGV": how the process itself ended. */
static void describe_end(const struct agent_exit *x, char *buf, size_t size)
{
        if (WIFSIGNALED(x->wait_status)) {
                const char *abbrev = sigabbrev_np(WTERMSIG(x->wait_status));
                if (abbrev != NULL)
                        snprintf(buf, size, "signal SIG%s", abbrev);
                else
                        snprintf(buf, size, "signal %d", WTERMSIG(x->wait_status));
        } else {
                snprintf(buf, size, "exited with status %d", WEXITSTATUS(x->wait_status));
        }
}

/* The phase outcome of a run that a limit ended (memory, CPU, processes). */
static void interpret_limit(const struct agent_exit *x, enum agent_cause cause,
                            struct agent_result *out)
{
        char end[64], lim[32], used[32];

        describe_end(x, end, sizeof(end));
        if (cause == CAUSE_MEMORY_LIMIT) {
                util_format_size(x->limits.memory, lim, sizeof(lim));
                util_format_size(x->usage.max_rss_kb * 1024, used, sizeof(used));
                set(out, AGENT_FAILURE, "agent %s killed: memory limit (%s; peak RSS %s; %s)",
                    x->agent, lim, used, x->oom_killed ? "OOM kill" : end);
        } else if (cause == CAUSE_CPU_LIMIT) {
                util_format_ms(x->limits.cpu_ms, lim, sizeof(lim));
                util_format_ms(x->usage.cpu_user_ms + x->usage.cpu_sys_ms, used, sizeof(used));
                set(out, AGENT_FAILURE, "agent %s killed: CPU limit (%s; used %s; %s)", x->agent,
                    lim, used, end);
        } else {
                set(out, AGENT_FAILURE, "agent %s failed at its process limit (%lld): %s", x->agent,
                    (long long)x->limits.processes, end);
        }
}

/* The exit, signal and usage of a run that happened, for the result. */
static void record_end(const struct agent_exit *x, enum agent_cause cause, struct agent_result *out)
{
        out->cause = cause;
        out->usage = x->usage;
        out->oom_killed = x->oom_killed;
        out->exit_status = -1;
        out->signal = 0;
        if (cause == CAUSE_START_FAILED)
                return;
        if (WIFSIGNALED(x->wait_status))
                out->signal = WTERMSIG(x->wait_status);
        else
                out->exit_status = WEXITSTATUS(x->wait_status);
}

void agent_interpret(const struct agent_exit *x, struct agent_result *out)
{
        enum agent_cause cause = agent_cause_of(x);
        char line[320], n[32], when[32];
        bool answered = false;

        out->result = NULL;
        out->error[0] = '\0';
        record_end(x, cause, out);
        /* Everything but an answer, good or bad, is the agent's fault. */
        out->fault = cause != CAUSE_EXIT || WEXITSTATUS(x->wait_status) == AGENT_EXIT_TRANSIENT;
        last_line(x->err_tail ? x->err_tail : "", line, sizeof(line));
        if (cause == CAUSE_START_FAILED) {
                set(out, AGENT_FAILURE, "agent %s cannot be started: %s", x->agent,
                    strerror(x->exec_errno));
        } else if (cause == CAUSE_TIMEOUT) {
                util_format_ms(x->timeout_ms, when, sizeof(when));
                set(out, AGENT_TRANSIENT, "agent %s timed out after %s and was killed%s", x->agent,
                    when,
                    WIFSIGNALED(x->wait_status) && WTERMSIG(x->wait_status) == SIGKILL
                        ? " (with SIGKILL: it outlived SIGTERM)"
                        : "");
        } else if (cause == CAUSE_OUTPUT_LIMIT) {
                snprintf(n, sizeof(n), "%zu", x->max_output);
                set(out, AGENT_FAILURE, "agent %s printed more than %s bytes on stdout", x->agent,
                    n);
        } else if (cause == CAUSE_MEMORY_LIMIT || cause == CAUSE_CPU_LIMIT ||
                   cause == CAUSE_PROCESS_LIMIT) {
                interpret_limit(x, cause, out);
        } else if (cause == CAUSE_SIGNAL) {
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
                answered = true;
        }
        /* An answer gives its own reason; the other failures add the agent's last words. */
        if (!answered && line[0] != '\0' && out->outcome != AGENT_SUCCESS && x->exec_errno == 0) {
                size_t len = strlen(out->error);
                snprintf(out->error + len, sizeof(out->error) - len, ": %s", line);
        }
        /* The error travels in JSON frames, and JSON takes only UTF-8: the
         * stderr line holds whatever bytes the agent wrote, and a reason cut
         * to the size of the buffer may end inside a character. */
        util_utf8_sanitize(out->error);
}

json_t *agent_usage_json(const struct agent_result *r)
{
        if (r->cause == CAUSE_NONE)
                return json_pack("{s:I}", "wall_ms", (json_int_t)r->usage.wall_ms);
        return json_pack("{s:I, s:I, s:I, s:I}", "cpu_user_ms", (json_int_t)r->usage.cpu_user_ms,
                         "cpu_sys_ms", (json_int_t)r->usage.cpu_sys_ms, "max_rss_kb",
                         (json_int_t)r->usage.max_rss_kb, "wall_ms", (json_int_t)r->usage.wall_ms);
}

json_t *agent_end_json(const struct agent_result *r)
{
        json_t *end;
        const char *abbrev;
        char sig[32];

        if (r->cause == CAUSE_NONE)
                return NULL;
        end = json_pack("{s:s}", "cause", agent_cause_name(r->cause));
        if (end == NULL)
                return NULL;
        if (r->exit_status >= 0)
                json_object_set_new(end, "exit", json_integer(r->exit_status));
        if (r->signal > 0) {
                abbrev = sigabbrev_np(r->signal);
                if (abbrev != NULL)
                        snprintf(sig, sizeof(sig), "SIG%s", abbrev);
                else
                        snprintf(sig, sizeof(sig), "%d", r->signal);
                json_object_set_new(end, "signal", json_string(sig));
        }
        if (r->oom_killed)
                json_object_set_new(end, "oom_kill", json_true());
        return end;
}

static json_int_t member(json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);

        return json_is_integer(v) ? json_integer_value(v) : 0;
}

void agent_usage_add(json_t *total, const struct agent_result *r)
{
        const struct agent_usage *u = &r->usage;
        json_int_t rss = member(total, "max_rss_kb");

        json_object_set_new(total, "phases", json_integer(member(total, "phases") + 1));
        json_object_set_new(total, "cpu_user_ms",
                            json_integer(member(total, "cpu_user_ms") + u->cpu_user_ms));
        json_object_set_new(total, "cpu_sys_ms",
                            json_integer(member(total, "cpu_sys_ms") + u->cpu_sys_ms));
        json_object_set_new(total, "max_rss_kb",
                            json_integer(rss > u->max_rss_kb ? rss : u->max_rss_kb));
        json_object_set_new(total, "wall_ms", json_integer(member(total, "wall_ms") + u->wall_ms));
}
