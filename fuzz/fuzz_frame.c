/*
 * fuzz_frame.c - libFuzzer target for frame_decode(), the one decode point
 * of the socketpair protocol, fed what a misbehaving worker (or, for task
 * frames, a confused supervisor) could send as a frame body.
 *
 * Beyond not crashing, a decoded frame must keep frame.h's promise: each
 * field its type requires is there with the right JSON type, so receivers
 * read them unchecked.  A task frame, decoded in place, must be one that
 * jansson takes whole, with the same values (and one that jansson takes
 * must not be refused: check_task); it then goes where the worker takes
 * it (workflow_parse() of its definition, workflow_check_payload(), each
 * agent's limits through agent_limits_parse()).  Any other decoded frame
 * must encode and decode again to the same type.  Refusals must be valid
 * UTF-8: they end up in log lines and last_error.  frame_decode_report(),
 * chimerad's decoder of the frames a worker sends, is held to jansson's
 * verdict and values (check_report).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent_proto.h"
#include "frame.h"
#include "fuzz.h"
#include "jscan.h"
#include "workflow.h"

#define FUZZ_MAX_FRAME (1u << 20)

static void check_string(json_t *msg, const char *key)
{
        FUZZ_CHECK(json_is_string(json_object_get(msg, key)), "\"%s\" is not a string", key);
}

static void check_integer(json_t *msg, const char *key)
{
        FUZZ_CHECK(json_is_integer(json_object_get(msg, key)), "\"%s\" is not an integer", key);
}

static void check_progress(json_t *msg)
{
        const char *event;

        check_integer(msg, "id");
        check_integer(msg, "attempt");
        check_string(msg, "phase");
        check_string(msg, "event");
        event = json_string_value(json_object_get(msg, "event"));
        if (strcmp(event, "spawned") == 0) {
                json_int_t pgid;

                check_integer(msg, "pgid");
                /* chimerad casts it to a pid_t and kills that group. */
                pgid = json_integer_value(json_object_get(msg, "pgid"));
                FUZZ_CHECK(pgid > 1 && pgid <= INT_MAX, "pgid %lld", (long long)pgid);
        } else if (strcmp(event, "finished") == 0) {
                check_string(msg, "outcome");
                FUZZ_CHECK(json_is_object(json_object_get(msg, "state")), "state");
        } else {
                FUZZ_CHECK(strcmp(event, "started") == 0, "event \"%s\" accepted", event);
        }
}

/* The limits an agent program will run under, as agent.c reads them. */
static void read_limits(json_t *agents)
{
        struct run_limits lim;
        const char *name;
        json_t *def;

        json_object_foreach (agents, name, def) {
                agent_limits_parse(json_object_get(def, "limits"), &lim);
                FUZZ_CHECK(lim.memory >= 0 && lim.cpu_ms >= 0 && lim.output >= 0 &&
                               lim.files >= 0 && lim.processes >= 0,
                           "agent %s: a negative limit", name);
        }
}

/*
 * A span the decoder kept as text, parsed as the runner parses it: only a
 * repeated key may stop jansson (the decoder checked the rest).  NULL then.
 */
static json_t *parse_span(struct jtext t, const char *what)
{
        json_error_t jerr;
        json_t *v = json_loadb(t.p, t.n, JSON_REJECT_DUPLICATES, &jerr);

        if (v == NULL)
                FUZZ_CHECK(strstr(jerr.text, "duplicate") != NULL, "%s: %s", what, jerr.text);
        return v;
}

/* What chimera-worker does with a task frame before it runs any agent. */
static void run_task_frame(const struct task_frame *t)
{
        char err[1024];
        struct workflow *wf;
        json_t *def, *agents, *open;

        FUZZ_CHECK(t->workflow != NULL && t->trace_id != NULL, "strings");
        FUZZ_CHECK(t->payload != NULL, "payload");
        FUZZ_CHECK(t->state == NULL || json_is_object(t->state), "state");
        agents = parse_span(t->agents, "agents");
        FUZZ_CHECK(agents == NULL || json_is_object(agents), "agents");
        read_limits(agents);
        json_decref(agents);
        if (t->open_agents.p != NULL) {
                open = parse_span(t->open_agents, "open_agents");
                FUZZ_CHECK(open == NULL || json_is_array(open), "open_agents");
                json_decref(open);
        }
        def = parse_span(t->definition, "definition");
        if (def == NULL)
                return;
        FUZZ_CHECK(json_is_object(def), "definition");
        wf = workflow_parse(t->workflow, def, "workflow", NULL, NULL, err, sizeof(err));
        json_decref(def);
        if (wf == NULL) {
                FUZZ_CHECK(fuzz_is_json_text(err), "workflow error is not UTF-8: %s", err);
                return;
        }
        FUZZ_CHECK(wf->nphases > 0 && wf->initial >= 0 && (size_t)wf->initial < wf->nphases,
                   "initial %d of %zu phases", wf->initial, wf->nphases);
        for (size_t i = 0; i < wf->nphases; i++) {
                const struct wf_phase *p = &wf->phases[i];
                FUZZ_CHECK(p->on_success < (int)wf->nphases && p->on_failure < (int)wf->nphases,
                           "edge out of range");
                FUZZ_CHECK(p->agent != NULL && p->action != NULL, "phase %s", p->name);
        }
        if (workflow_check_payload(wf, t->payload, err, sizeof(err)) < 0)
                FUZZ_CHECK(fuzz_is_json_text(err), "payload error is not UTF-8: %s", err);
        workflow_free(wf);
}

/*
 * Whether jansson's tree of a body is a task frame the worker must take:
 * each field of the right type (what the decoder checked before it read
 * task frames in place).
 */
static bool task_tree_ok(json_t *msg)
{
        json_t *state = json_object_get(msg, "state"), *open = json_object_get(msg, "open_agents");

        return json_is_object(msg) && json_is_string(json_object_get(msg, "type")) &&
               strcmp(json_string_value(json_object_get(msg, "type")), "task") == 0 &&
               json_is_integer(json_object_get(msg, "id")) &&
               json_is_integer(json_object_get(msg, "attempt")) &&
               json_is_string(json_object_get(msg, "workflow")) &&
               json_is_string(json_object_get(msg, "trace_id")) &&
               json_object_get(msg, "payload") != NULL &&
               (json_is_object(state) || json_is_null(state)) &&
               json_is_object(json_object_get(msg, "definition")) &&
               json_is_object(json_object_get(msg, "agents")) &&
               (open == NULL || json_is_array(open));
}

/* Whether the span holds the JSON of v (read as jansson reads the whole body: last key wins). */
static bool span_is(struct jtext t, json_t *v)
{
        json_t *w = json_loadb(t.p, t.n, 0, NULL);
        bool same = w != NULL && json_equal(w, v);

        json_decref(w);
        return same;
}

/* A task frame against jansson's verdict on the whole body. */
static void check_task(const unsigned char *data, size_t size, const struct frame *f)
{
        json_t *v;

        if (memchr(data, '\0', size) != NULL)
                return; /* jansson's reader skips NUL bytes; JSON has none */
        v = json_loadb((const char *)data, size, f != NULL ? 0 : JSON_REJECT_DUPLICATES, NULL);
        if (f != NULL)
                FUZZ_CHECK(v != NULL && task_tree_ok(v), "a task frame jansson refuses");
        else
                FUZZ_CHECK(v == NULL || !task_tree_ok(v), "a task frame jansson takes was refused");
        if (f != NULL) {
                FUZZ_CHECK(json_integer_value(json_object_get(v, "id")) == f->task.id, "id");
                FUZZ_CHECK(json_integer_value(json_object_get(v, "attempt")) == f->task.attempt,
                           "attempt");
                FUZZ_CHECK(strcmp(json_string_value(json_object_get(v, "workflow")),
                                  f->task.workflow) == 0,
                           "workflow");
                FUZZ_CHECK(json_equal(json_object_get(v, "payload"), f->task.payload), "payload");
                FUZZ_CHECK(span_is(f->task.definition, json_object_get(v, "definition")),
                           "definition");
                FUZZ_CHECK(span_is(f->task.agents, json_object_get(v, "agents")), "agents");
                FUZZ_CHECK(f->task.open_agents.p == NULL
                               ? json_object_get(v, "open_agents") == NULL
                               : span_is(f->task.open_agents, json_object_get(v, "open_agents")),
                           "open_agents");
        }
        json_decref(v);
}

static void check_round_trip(const struct frame *f)
{
        struct frame again;
        char err[256];
        size_t len;
        char *buf = frame_encode(f->msg, FUZZ_MAX_FRAME * 8, &len, err, sizeof(err));

        FUZZ_CHECK(buf != NULL, "a decoded frame does not encode: %s", err);
        FUZZ_CHECK(frame_decode(buf + FRAME_HEADER_SIZE, len - FRAME_HEADER_SIZE, &again, err,
                                sizeof(err)) == 0,
                   "an encoded frame does not decode: %s", err);
        FUZZ_CHECK(again.type == f->type, "type %d became %d", f->type, again.type);
        frame_clear(&again);
        free(buf);
}

/* Whether the JSON string span holds what s holds. */
static bool same_string(struct jtext t, const char *s)
{
        char *d = jtext_strdup(t);
        bool same = strcmp(d, s) == 0;

        free(d);
        return same;
}

/* Whether the span parses to v. */
static bool same_json(struct jtext t, json_t *v)
{
        json_t *w = json_loadb(t.p, t.n, JSON_DECODE_ANY, NULL);
        bool same = w != NULL && json_equal(w, v);

        json_decref(w);
        return same;
}

/*
 * chimerad's decoder against frame_decode(): what jansson takes, the report
 * decoder takes with the same fields; what the report decoder takes, jansson
 * takes (repeated keys aside, which jscan leaves to its callers).
 */
static void check_report(const unsigned char *data, size_t size, const struct frame *f)
{
        struct report r;
        char err[256];
        int rc = frame_decode_report((const char *)data, size, &r, err, sizeof(err));
        json_t *v;

        if (rc < 0) {
                /* jansson's reader skips NUL bytes (its buffer's end marker); JSON has none. */
                FUZZ_CHECK(f == NULL || memchr(data, '\0', size) != NULL,
                           "frame_decode took it, frame_decode_report: %s", err);
                FUZZ_CHECK(fuzz_is_json_text(err), "refusal is not UTF-8: %s", err);
                return;
        }
        v = json_loadb((const char *)data, size, 0, NULL);
        FUZZ_CHECK(v != NULL && json_is_object(v), "frame_decode_report took what jansson refuses");
        json_decref(v);
        if (f == NULL || memchr(data, '\0', size) != NULL)
                return;
        FUZZ_CHECK(r.type == f->type, "type %d, jansson %d", r.type, f->type);
        if (f->type == FRAME_PROGRESS || f->type == FRAME_RESULT) {
                FUZZ_CHECK(r.id == json_integer_value(json_object_get(f->msg, "id")), "id");
                FUZZ_CHECK(r.attempt == json_integer_value(json_object_get(f->msg, "attempt")),
                           "attempt");
        }
        if (f->type == FRAME_HEARTBEAT)
                FUZZ_CHECK(r.pid == json_integer_value(json_object_get(f->msg, "pid")), "pid");
        if (f->type == FRAME_PROGRESS) {
                FUZZ_CHECK(
                    same_string(r.phase, json_string_value(json_object_get(f->msg, "phase"))),
                    "phase");
                if (r.event == REPORT_FINISHED)
                        FUZZ_CHECK(same_json(r.state, json_object_get(f->msg, "state")), "state");
        }
        if (f->type == FRAME_RESULT) {
                FUZZ_CHECK(
                    same_string(r.status, json_string_value(json_object_get(f->msg, "status"))),
                    "status");
                if (json_object_get(f->msg, "result") != NULL)
                        FUZZ_CHECK(same_json(r.result, json_object_get(f->msg, "result")),
                                   "result");
        }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        struct frame f;
        char err[256];
        size_t len;

        /* The header in front of a body, read as the supervisor reads it. */
        if (size >= FRAME_HEADER_SIZE && frame_header_length(data, FUZZ_MAX_FRAME, &len) == 0)
                FUZZ_CHECK(len > 0 && len <= FUZZ_MAX_FRAME, "length %zu", len);
        if (size > FUZZ_MAX_FRAME)
                return 0;
        if (frame_decode((const char *)data, size, &f, err, sizeof(err)) < 0) {
                FUZZ_CHECK(f.msg == NULL && f.texts == NULL && f.task.payload == NULL,
                           "a refused frame keeps its message");
                FUZZ_CHECK(fuzz_is_json_text(err), "refusal is not UTF-8: %s", err);
                check_report(data, size, NULL);
                check_task(data, size, NULL);
                return 0;
        }
        check_report(data, size, &f);
        FUZZ_CHECK(strcmp(frame_type_name(f.type), "unknown") != 0, "type %d", f.type);
        if (f.type == FRAME_TASK) {
                FUZZ_CHECK(f.msg == NULL && f.texts != NULL, "a task frame as a tree");
                check_task(data, size, &f);
                run_task_frame(&f.task);
                frame_clear(&f);
                return 0;
        }
        FUZZ_CHECK(json_is_object(f.msg), "not an object");
        switch (f.type) {
        case FRAME_TASK:
                break;
        case FRAME_PROGRESS:
                check_progress(f.msg);
                break;
        case FRAME_RESULT:
                check_integer(f.msg, "id");
                check_integer(f.msg, "attempt");
                check_string(f.msg, "status");
                break;
        case FRAME_HEARTBEAT:
                check_integer(f.msg, "pid");
                break;
        case FRAME_SHUTDOWN:
                break;
        }
        check_round_trip(&f);
        frame_clear(&f);
        return 0;
}
