/*
 * runner.c - walks one task's workflow, phase by phase.
 *
 * The checkpoint ("state") is {"phase": next phase to run, "transitions": n,
 * "results": {phase: result}, "usage": {...}}.  A task frame with a state
 * resumes at its phase, so a retried attempt does not run again what an
 * earlier attempt finished.  After every phase the runner sends a
 * "finished" progress frame carrying the phase's usage and end (how its
 * agent exited) and the new checkpoint, which chimerad stores before
 * anything else about the task.
 *
 * "usage" is the task's running total of what its agents used, over every
 * phase and attempt that reported (agent_usage_add()): it travels with the
 * checkpoint, so it needs no column of its own and survives retries.  A
 * phase whose worker died is not in it: nobody measured it.
 *
 * Frames are collected in the outbox (outbox.c) and written together
 * before anything that takes time (builtin:sleep; an agent program's once
 * it is spawned) and at the end of the task, so a quick task costs the
 * supervisor one wake-up, not one per frame.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_proto.h"
#include "frame.h"
#include "jdump.h"
#include "outbox.h"
#include "log.h"
#include "util.h"
#include "worker.h"

struct run {
        int fd;
        size_t max;
        const struct task_frame *task; /* borrowed */
        json_int_t id;
        json_int_t attempt;
        struct workflow *wf; /* borrowed from the cache */
        json_t *agents;      /* borrowed from the cache: the frame's agents */
        json_t *open;        /* owned: the agents chimerad has paused, or NULL */
        json_t *state;       /* owned checkpoint */
};

static void format_error(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Writes an error for a frame.  Names (phases, agents, workflows) can be
 * long, so the message may be cut to the buffer inside a character; JSON
 * would then refuse it, the frame could not be sent and the worker would
 * exit instead of reporting the failure.
 */
static void format_error(char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        util_utf8_sanitize(buf);
}

static int flush_frames(struct run *r)
{
        return outbox_flush(r->fd);
}

/*
 * Starts a frame about the task in the outbox: {"type":type,"id":..,
 * "attempt":.. and nothing after, for the caller to add members and close
 * with end_frame().
 */
static struct jbuf *begin_frame(const struct run *r, const char *type)
{
        struct jbuf *b = outbox_begin();

        jbuf_lit(b, "{\"type\":");
        jbuf_str(b, type);
        jbuf_lit(b, ",\"id\":");
        jbuf_int(b, r->id);
        jbuf_lit(b, ",\"attempt\":");
        jbuf_int(b, r->attempt);
        return b;
}

/* Closes the frame begin_frame() started and queues it; -1 if it cannot be sent. */
static int end_frame(const struct run *r, struct jbuf *b)
{
        jbuf_lit(b, "}");
        return outbox_end(r->max);
}

/* ,"key":"s" when s is not NULL, nothing when it is (key needs no escaping). */
static void opt_str(struct jbuf *b, const char *key, const char *s)
{
        if (s == NULL)
                return;
        jbuf_lit(b, ",\"");
        jbuf_raw(b, key, strlen(key));
        jbuf_lit(b, "\":");
        jbuf_str(b, s);
}

/*
 * Sends the result frame; result (borrowed) and error may be NULL, and are
 * then null.  The checkpoint goes with it unless the "finished" frame just
 * before carried the same one.
 */
static int send_result_state(struct run *r, const char *status, json_t *result, const char *error,
                             bool with_state)
{
        struct jbuf *b = begin_frame(r, "result");

        jbuf_lit(b, ",\"status\":");
        jbuf_str(b, status);
        jbuf_lit(b, ",\"result\":");
        jdump(b, result);
        jbuf_lit(b, ",\"error\":");
        jbuf_str(b, error);
        if (with_state && r->state != NULL) {
                jbuf_lit(b, ",\"state\":");
                jdump(b, r->state);
        }
        return end_frame(r, b);
}

static int send_result(struct run *r, const char *status, json_t *result, const char *error)
{
        return send_result_state(r, status, result, error, true);
}

static json_t *agent_request(struct run *r, const struct wf_phase *p)
{
        return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:O?, s:O, s:O}", "task_id",
                         (json_int_t)r->id, "attempt", (json_int_t)r->attempt, "trace_id",
                         r->task->trace_id, "workflow", r->wf->name, "phase", p->name, "action",
                         p->action, "params", p->params, "payload", r->task->payload, "results",
                         json_object_get(r->state, "results"));
}

/* Runs phase p's agent into *ar, with the request only an agent program reads. */
static void run_agent(struct run *r, const struct wf_phase *p, struct agent_result *ar)
{
        json_t *req;

        if (workflow_agent_is_builtin(p->agent)) {
                agent_run_builtin(p, r->task->payload, r->fd, ar);
                return;
        }
        req = agent_request(r, p);
        agent_run(p, json_object_get(r->agents, p->agent), req, r->fd, ar);
        json_decref(req);
}

/* Builds the first checkpoint, or checks the one the task carries. */
static bool is_terminal(const char *phase)
{
        return strcmp(phase, "complete") == 0 || strcmp(phase, "failed") == 0;
}

/*
 * The checkpoint already names a terminal phase: an earlier attempt
 * finished the workflow, but its outcome never reached the database (its
 * supervisor died between the two writes).  Report that outcome again
 * instead of running anything.
 */
static int finish_from_checkpoint(struct run *r)
{
        const char *phase = json_string_value(json_object_get(r->state, "phase"));
        const char *last = json_string_value(json_object_get(r->state, "last"));
        const char *error = json_string_value(json_object_get(r->state, "error"));
        json_t *result = last ? json_object_get(json_object_get(r->state, "results"), last) : NULL;

        if (strcmp(phase, "complete") == 0) {
                json_t *none = json_object();
                int rc = send_result(r, "succeeded", result ? result : none, NULL);

                json_decref(none);
                return rc;
        }
        return send_result(r, "failed", NULL,
                           error ? error : "the workflow had reached its failed phase");
}

static int start_state(struct run *r, char *err, size_t errsz)
{
        json_t *st = r->task->state;
        const char *phase;

        if (st == NULL) {
                if (workflow_check_payload(r->wf, r->task->payload, err, errsz) < 0)
                        return -1;
                r->state =
                    json_pack("{s:s, s:i, s:{}}", "phase", r->wf->phases[r->wf->initial].name,
                              "transitions", 0, "results");
                return 0;
        }
        phase = json_string_value(json_object_get(st, "phase"));
        if (phase == NULL || (workflow_phase_index(r->wf, phase) < 0 && !is_terminal(phase))) {
                format_error(err, errsz,
                             "the checkpoint names phase \"%.*s\", which workflow %s "
                             "does not have",
                             phase ? util_utf8_cut(phase, 100) : 6, phase ? phase : "(none)",
                             r->wf->name);
                return -1;
        }
        r->state = json_deep_copy(st);
        if (!json_is_object(json_object_get(r->state, "results")))
                json_object_set_new(r->state, "results", json_object());
        if (!json_is_integer(json_object_get(r->state, "transitions")))
                json_object_set_new(r->state, "transitions", json_integer(0));
        if (!json_is_object(json_object_get(r->state, "usage")))
                json_object_del(r->state, "usage");
        return 0;
}

/* Starts a progress frame about phase p: the caller adds the rest and ends it. */
static struct jbuf *begin_progress(const struct run *r, const struct wf_phase *p, const char *event)
{
        struct jbuf *b = begin_frame(r, "progress");

        jbuf_lit(b, ",\"phase\":");
        jbuf_str(b, p->name);
        jbuf_lit(b, ",\"event\":");
        jbuf_str(b, event);
        return b;
}

static int send_started(struct run *r, const struct wf_phase *p)
{
        return end_frame(r, begin_progress(r, p, "started"));
}

/*
 * The "finished" frame.  For an instant built-in agent no "started" frame
 * went before it: "started": true tells the supervisor to record both.
 */
static int send_finished(struct run *r, const struct wf_phase *p, const char *outcome,
                         const char *next, int64_t ms, const struct agent_result *ar)
{
        struct jbuf *b = begin_progress(r, p, "finished");
        json_t *usage = agent_usage_json(ar), *end = agent_end_json(ar);

        jbuf_lit(b, ",\"outcome\":");
        jbuf_str(b, outcome);
        jbuf_lit(b, ",\"next\":");
        jbuf_str(b, next);
        jbuf_lit(b, ",\"duration_ms\":");
        jbuf_int(b, ms);
        opt_str(b, "error", ar->outcome == AGENT_SUCCESS ? NULL : ar->error);
        opt_str(b, "stderr", ar->stderr_tail[0] != '\0' ? ar->stderr_tail : NULL);
        jbuf_lit(b, ",\"agent\":");
        jbuf_str(b, p->agent);
        jbuf_lit(b, ",\"fault\":");
        jbuf_bool(b, ar->fault);
        jbuf_lit(b, ",\"state\":");
        jdump(b, r->state);
        jbuf_lit(b, ",\"usage\":");
        jdump(b, usage);
        if (end != NULL) {
                jbuf_lit(b, ",\"end\":");
                jdump(b, end);
        }
        if (workflow_agent_is_instant(p->agent))
                jbuf_lit(b, ",\"started\":true");
        json_decref(usage);
        json_decref(end);
        return end_frame(r, b);
}

/* Adds a run's usage to the checkpoint's total, which starts with the first phase. */
static void add_usage(struct run *r, const struct agent_result *ar)
{
        json_t *total = json_object_get(r->state, "usage");

        if (total == NULL) {
                total = json_object();
                json_object_set_new(r->state, "usage", total);
        }
        agent_usage_add(total, ar);
}

/* True when chimerad's circuit breaker has paused the agent of phase p. */
static bool agent_paused(struct run *r, const struct wf_phase *p)
{
        json_t *v;
        size_t i;

        json_array_foreach (r->open, i, v) {
                if (json_is_string(v) && strcmp(json_string_value(v), p->agent) == 0)
                        return true;
        }
        return false;
}

/*
 * Runs phases until a terminal one, a transient error or max_transitions.
 * Returns what send_* returned: -1 only when the socket failed.
 */
static int run_phases(struct run *r)
{
        int cur =
            workflow_phase_index(r->wf, json_string_value(json_object_get(r->state, "phase")));
        char err[1200];

        for (;;) {
                const struct wf_phase *p = &r->wf->phases[cur];
                json_int_t transitions =
                    json_integer_value(json_object_get(r->state, "transitions"));
                struct agent_result ar = {0};
                int64_t t0;
                int next;

                if (transitions >= r->wf->max_transitions) {
                        format_error(err, sizeof(err),
                                     "workflow %s exceeded max_transitions (%d) "
                                     "before reaching a terminal phase",
                                     r->wf->name, r->wf->max_transitions);
                        return send_result(r, "failed", NULL, err);
                }
                if (agent_paused(r, p)) {
                        /* Not an attempt's failure: the task waits for the agent, uncharged. */
                        format_error(err, sizeof(err), "agent %s is paused by its circuit breaker",
                                     p->agent);
                        return send_result(r, "defer", NULL, err);
                }
                /* The supervisor hears of the start before anything slow runs: of
                 * an agent program's, with the "spawned" frame agent.c sends (and
                 * flushes) once it runs; of an instant one's, with its end. */
                if (!workflow_agent_is_instant(p->agent) && send_started(r, p) < 0)
                        return -1;
                if (workflow_agent_is_builtin(p->agent) && !workflow_agent_is_instant(p->agent) &&
                    flush_frames(r) < 0)
                        return -1;
                t0 = util_now_ms();
                run_agent(r, p, &ar);
                add_usage(r, &ar);
                if (ar.outcome == AGENT_TRANSIENT) {
                        /* The checkpoint stays at this phase: the retry runs it again. */
                        format_error(err, sizeof(err), "phase %s: %s", p->name, ar.error);
                        json_decref(ar.result);
                        if (send_finished(r, p, "transient", p->name, util_now_ms() - t0, &ar) < 0)
                                return -1;
                        return send_result_state(r, "retry", NULL, err, false);
                }
                next = ar.outcome == AGENT_SUCCESS ? p->on_success : p->on_failure;
                json_object_set_new(json_object_get(r->state, "results"), p->name,
                                    ar.result ? json_incref(ar.result) : json_object());
                json_object_set_new(r->state, "transitions", json_integer(transitions + 1));
                json_object_set_new(r->state, "phase",
                                    json_string(workflow_target_name(r->wf, next)));
                json_object_set_new(r->state, "last", json_string(p->name));
                if (next == WORKFLOW_FAILED) {
                        format_error(err, sizeof(err), "phase %s failed: %s", p->name,
                                     ar.outcome == AGENT_SUCCESS
                                         ? "its success edge leads to failed"
                                         : ar.error);
                        json_object_set_new(r->state, "error", json_string(err));
                }
                if (send_finished(r, p, ar.outcome == AGENT_SUCCESS ? "success" : "failure",
                                  workflow_target_name(r->wf, next), util_now_ms() - t0, &ar) < 0) {
                        json_decref(ar.result);
                        return -1;
                }
                if (next == WORKFLOW_COMPLETE || next == WORKFLOW_FAILED) {
                        int rc = next == WORKFLOW_COMPLETE
                                     ? send_result_state(r, "succeeded", ar.result, NULL, false)
                                     : send_result_state(r, "failed", NULL, err, false);

                        json_decref(ar.result);
                        return rc;
                }
                json_decref(ar.result);
                cur = next;
        }
}

/*
 * A text of the task frame and what the worker made of it.  Tasks of one
 * workflow follow each other, each frame carrying the same definition and
 * agents texts: what was made of the last text is used again while the
 * text is the same, so a definition is parsed once, not once per task.
 */
struct text_cache {
        char *text;
        size_t len;
};

static bool cache_hit(const struct text_cache *c, struct jtext t)
{
        return c->text != NULL && c->len == t.n && memcmp(c->text, t.p, t.n) == 0;
}

static void cache_forget(struct text_cache *c)
{
        free(c->text);
        c->text = NULL;
        c->len = 0;
}

static void cache_keep(struct text_cache *c, struct jtext t)
{
        c->text = util_calloc(1, t.n + 1);
        memcpy(c->text, t.p, t.n);
        c->len = t.n;
}

/*
 * The span's JSON as a tree (the frame decoder checked its syntax), with no
 * repeated key; NULL with jansson's reason in err.
 */
static json_t *parse_span(struct jtext t, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *v = json_loadb(t.p, t.n, JSON_REJECT_DUPLICATES, &jerr);

        if (v == NULL)
                format_error(err, errsz, "%s", jerr.text);
        return v;
}

/* The workflow of a task frame.  Borrowed: valid until the next call. */
static struct workflow *cached_workflow(const char *name, struct jtext def, char *err, size_t errsz)
{
        static struct text_cache text;
        static struct workflow *wf;
        static char *wf_name;
        json_t *tree;

        if (wf != NULL && strcmp(name, wf_name) == 0 && cache_hit(&text, def))
                return wf;
        workflow_free(wf);
        free(wf_name);
        wf = NULL;
        wf_name = NULL;
        cache_forget(&text);
        tree = parse_span(def, err, errsz);
        if (tree == NULL)
                return NULL;
        wf = workflow_parse(name, tree, "workflow", NULL, NULL, err, errsz);
        json_decref(tree); /* the workflow keeps what it needs */
        if (wf == NULL)
                return NULL;
        wf_name = util_strdup(name);
        cache_keep(&text, def);
        return wf;
}

/* The agents of a task frame ({name: definition}).  Borrowed: valid until the next call. */
static json_t *cached_agents(struct jtext agents, char *err, size_t errsz)
{
        static struct text_cache text;
        static json_t *tree;

        if (tree != NULL && cache_hit(&text, agents))
                return tree;
        json_decref(tree);
        cache_forget(&text);
        tree = parse_span(agents, err, errsz);
        if (tree != NULL)
                cache_keep(&text, agents);
        return tree;
}

/*
 * Looks up what the task needs besides its checkpoint: workflow, agents and
 * the paused agents.  Returns 0, or -1 with the reason in err.
 */
static int prepare(struct run *r, char *err, size_t errsz)
{
        const struct task_frame *t = r->task;
        char why[1024];

        r->wf = cached_workflow(t->workflow, t->definition, why, sizeof(why));
        if (r->wf == NULL) {
                format_error(err, errsz, "invalid workflow definition: %s", why);
                return -1;
        }
        r->agents = cached_agents(t->agents, why, sizeof(why));
        if (r->agents == NULL) {
                format_error(err, errsz, "invalid agent definitions: %s", why);
                return -1;
        }
        /* Usually none: "[]" needs no parsing. */
        if (t->open_agents.p != NULL && !(t->open_agents.n == 2 && t->open_agents.p[1] == ']')) {
                r->open = parse_span(t->open_agents, why, sizeof(why));
                if (r->open == NULL) {
                        format_error(err, errsz, "invalid list of paused agents: %s", why);
                        return -1;
                }
        }
        return 0;
}

int runner_run(int fd, size_t max_frame, const struct task_frame *task)
{
        struct run r = {.fd = fd, .max = max_frame, .task = task};
        char err[1100];
        int rc;

        r.id = task->id;
        r.attempt = task->attempt;
        if (prepare(&r, err, sizeof(err)) < 0)
                rc = send_result(&r, "failed", NULL, err);
        else if (start_state(&r, err, sizeof(err)) < 0)
                rc = send_result(&r, "failed", NULL, err);
        else if (is_terminal(json_string_value(json_object_get(r.state, "phase"))))
                rc = finish_from_checkpoint(&r);
        else
                rc = run_phases(&r);
        if (rc == 0 && flush_frames(&r) < 0)
                rc = -1;
        json_decref(r.state);
        json_decref(r.open);
        return rc;
}
