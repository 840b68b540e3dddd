/*
 * workflow.c - parsing and validating workflow definitions.
 *
 * A definition is checked in full when chimerad loads its config: keys and
 * types, agents, edges, and the shape of the graph (every phase reachable
 * from "initial", every phase able to end).  The worker parses the same JSON
 * again from the task frame with this same code, so a workflow cannot mean
 * one thing to the supervisor and another to the worker.  Edges become
 * phase indexes here, so running a workflow needs no name lookups.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "workflow.h"

/* Long enough for any sensible key path; a longer one is only truncated in messages. */
#define WF_PATH_MAX 512

#define WF_DURATION_HINT "expected a duration such as \"30s\" or \"5m\""

static const char *const builtin_agents[] = {"builtin:noop", "builtin:sleep", "builtin:fail", NULL};
static const char *const definition_keys[] = {"initial",  "phases",  "max_transitions",
                                              "required", "timeout", NULL};
static const char *const phase_keys[] = {"agent",      "action", "timeout", "on_success",
                                         "on_failure", "params", NULL};

/* One workflow_parse() call: the workflow being built and where errors go. */
struct wf_parser {
        struct workflow *wf;
        const char *path; /* prefix of every error, e.g. "workflows.chimera" */
        workflow_agent_known_fn agent_known;
        void *ctx;
        char *err;
        size_t errsz;
};

static int wf_error(struct wf_parser *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "path: reason" to the caller's buffer; returns -1 so callers can return it. */
static int wf_error(struct wf_parser *p, const char *path, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (p->err == NULL || p->errsz == 0)
                return -1;
        n = snprintf(p->err, p->errsz, "%s: ", path);
        if (n >= 0 && (size_t)n < p->errsz) {
                va_start(ap, fmt);
                vsnprintf(p->err + n, p->errsz - (size_t)n, fmt, ap);
                va_end(ap);
        }
        /* A path or message cut to size may end inside a character; it goes into JSON. */
        util_utf8_sanitize(p->err);
        return -1;
}

static int payload_error(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Payload messages stand alone (no key path): they end up in a task's last_error. */
static int payload_error(char *err, size_t errsz, const char *fmt, ...)
{
        va_list ap;

        if (err == NULL || errsz == 0)
                return -1;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
        util_utf8_sanitize(err);
        return -1;
}

static void path_format(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fills a WF_PATH_MAX buffer; a path too long still reads as one, ending in "...". */
static void path_format(char *buf, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, WF_PATH_MAX, fmt, ap);
        va_end(ap);
        if (n >= WF_PATH_MAX)
                memcpy(buf + WF_PATH_MAX - 4, "...", 4);
}

static void join_path(char *buf, const char *parent, const char *key)
{
        path_format(buf, "%s.%s", parent, key);
}

static int in_list(const char *s, const char *const *list)
{
        for (; *list != NULL; list++)
                if (strcmp(s, *list) == 0)
                        return 1;
        return 0;
}

/* "a, b, c": the known keys, listed in an unknown-key message. */
static void join_names(const char *const *names, char *buf, size_t size)
{
        size_t n = 0;

        buf[0] = '\0';
        for (; *names != NULL && n < size; names++) {
                int w = snprintf(buf + n, size - n, "%s%s", n > 0 ? ", " : "", *names);
                if (w < 0)
                        return;
                n += (size_t)w;
        }
}

static int check_keys(struct wf_parser *p, json_t *obj, const char *path, const char *const *known)
{
        char where[WF_PATH_MAX], names[256];
        const char *key;
        json_t *v;

        json_object_foreach (obj, key, v) {
                (void)v;
                if (in_list(key, known))
                        continue;
                join_path(where, path, key);
                join_names(known, names, sizeof(names));
                return wf_error(p, where, "unknown key (known keys: %s)", names);
        }
        return 0;
}

/*
 * Looks up the string member obj.key.  *out is borrowed from obj, or NULL
 * when the key is absent and not required.  Empty strings are refused: no
 * key of a definition has a meaningful empty value.
 */
static int get_string(struct wf_parser *p, json_t *obj, const char *path, const char *key,
                      int required, const char **out)
{
        json_t *v = json_object_get(obj, key);
        char where[WF_PATH_MAX];

        *out = NULL;
        join_path(where, path, key);
        if (v == NULL)
                return required ? wf_error(p, where, "required key is missing") : 0;
        if (!json_is_string(v))
                return wf_error(p, where, "expected a string, got %s", util_json_kind(v));
        if (json_string_length(v) == 0)
                return wf_error(p, where, "expected a non-empty string");
        *out = json_string_value(v);
        return 0;
}

static int terminal_target(const char *name)
{
        if (strcmp(name, "complete") == 0)
                return WORKFLOW_COMPLETE;
        if (strcmp(name, "failed") == 0)
                return WORKFLOW_FAILED;
        return 0;
}

/* Reads edge `key` of a phase; the phases' names must already be known. */
static int parse_edge(struct wf_parser *p, json_t *obj, const char *path, const char *key, int dflt,
                      int *out)
{
        char where[WF_PATH_MAX];
        const char *name;

        *out = dflt;
        if (get_string(p, obj, path, key, 0, &name) < 0)
                return -1;
        if (name == NULL)
                return 0;
        if ((*out = terminal_target(name)) != 0)
                return 0;
        if ((*out = workflow_phase_index(p->wf, name)) >= 0)
                return 0;
        join_path(where, path, key);
        return wf_error(p, where, "unknown phase \"%s\"", name);
}

static int parse_agent(struct wf_parser *p, struct wf_phase *ph, json_t *obj, const char *path)
{
        char where[WF_PATH_MAX];
        const char *agent;

        if (get_string(p, obj, path, "agent", 1, &agent) < 0)
                return -1;
        join_path(where, path, "agent");
        if (strncmp(agent, "builtin:", 8) == 0) {
                if (!workflow_agent_is_builtin(agent))
                        return wf_error(p, where, "unknown built-in agent \"%s\"", agent);
        } else if (p->agent_known != NULL && !p->agent_known(agent, p->ctx)) {
                return wf_error(p, where, "unknown agent \"%s\" (not defined under \"agents\")",
                                agent);
        }
        ph->agent = util_strdup(agent);
        return 0;
}

static int parse_timeout(struct wf_parser *p, struct wf_phase *ph, json_t *obj, const char *path)
{
        json_t *v = json_object_get(obj, "timeout");
        char where[WF_PATH_MAX];

        ph->timeout_ms = WORKFLOW_DEFAULT_TIMEOUT_MS;
        if (v == NULL)
                return 0;
        join_path(where, path, "timeout");
        if (!json_is_string(v))
                return wf_error(p, where, WF_DURATION_HINT ", got %s", util_json_kind(v));
        if (util_parse_duration(json_string_value(v), &ph->timeout_ms) < 0)
                return wf_error(p, where, WF_DURATION_HINT);
        /* A zero timeout would kill every agent at once: surely a mistake. */
        if (ph->timeout_ms <= 0)
                return wf_error(p, where, "expected a duration greater than 0");
        return 0;
}

static int parse_params(struct wf_parser *p, struct wf_phase *ph, json_t *obj, const char *path)
{
        json_t *v = json_object_get(obj, "params");
        char where[WF_PATH_MAX];

        if (v == NULL)
                return 0;
        join_path(where, path, "params");
        if (!json_is_object(v))
                return wf_error(p, where, "expected an object, got %s", util_json_kind(v));
        ph->params = json_incref(v);
        return 0;
}

static int parse_phase(struct wf_parser *p, size_t i, json_t *obj)
{
        struct wf_phase *ph = &p->wf->phases[i];
        char path[WF_PATH_MAX];
        const char *action;

        path_format(path, "%s.phases.%s", p->path, ph->name);
        if (!json_is_object(obj))
                return wf_error(p, path, "expected an object, got %s", util_json_kind(obj));
        if (check_keys(p, obj, path, phase_keys) < 0 || parse_agent(p, ph, obj, path) < 0 ||
            get_string(p, obj, path, "action", 0, &action) < 0 ||
            parse_timeout(p, ph, obj, path) < 0 ||
            parse_edge(p, obj, path, "on_success", WORKFLOW_COMPLETE, &ph->on_success) < 0 ||
            parse_edge(p, obj, path, "on_failure", WORKFLOW_FAILED, &ph->on_failure) < 0 ||
            parse_params(p, ph, obj, path) < 0)
                return -1;
        ph->action = util_strdup(action != NULL ? action : ph->name);
        return 0;
}

/*
 * Takes every phase name before any phase body is parsed, so that edges may
 * point forward.  nphases grows with each name so that workflow_free()
 * releases exactly what was set if a later name is refused.
 */
static int name_phases(struct wf_parser *p, json_t *phases, const char *path)
{
        char where[WF_PATH_MAX];
        const char *key;
        json_t *v;

        json_object_foreach (phases, key, v) {
                (void)v;
                join_path(where, path, key);
                if (terminal_target(key) != 0)
                        return wf_error(p, where,
                                        "\"%s\" is a terminal phase and cannot be declared", key);
                if (key[0] == '\0')
                        return wf_error(p, where, "phase names must not be empty");
                p->wf->phases[p->wf->nphases++].name = util_strdup(key);
        }
        return 0;
}

static int parse_phases(struct wf_parser *p, json_t *def)
{
        json_t *phases = json_object_get(def, "phases");
        char path[WF_PATH_MAX];
        const char *key;
        json_t *v;
        size_t i = 0;

        join_path(path, p->path, "phases");
        if (phases == NULL)
                return wf_error(p, path, "required key is missing");
        if (!json_is_object(phases))
                return wf_error(p, path, "expected an object of phases, got %s",
                                util_json_kind(phases));
        if (json_object_size(phases) == 0)
                return wf_error(p, path, "expected at least one phase");
        p->wf->phases = util_calloc(json_object_size(phases), sizeof(*p->wf->phases));
        if (name_phases(p, phases, path) < 0)
                return -1;
        json_object_foreach (phases, key, v) {
                (void)key;
                if (parse_phase(p, i++, v) < 0)
                        return -1;
        }
        return 0;
}

static int parse_initial(struct wf_parser *p, json_t *def)
{
        char where[WF_PATH_MAX];
        const char *name;

        if (get_string(p, def, p->path, "initial", 1, &name) < 0)
                return -1;
        join_path(where, p->path, "initial");
        if (terminal_target(name) != 0)
                return wf_error(p, where,
                                "must name a declared phase, not the terminal phase \"%s\"", name);
        p->wf->initial = workflow_phase_index(p->wf, name);
        if (p->wf->initial < 0)
                return wf_error(p, where, "unknown phase \"%s\"", name);
        return 0;
}

static int parse_max_transitions(struct wf_parser *p, json_t *def)
{
        json_t *v = json_object_get(def, "max_transitions");
        char where[WF_PATH_MAX];
        json_int_t n;

        p->wf->max_transitions = WORKFLOW_DEFAULT_MAX_TRANSITIONS;
        if (v == NULL)
                return 0;
        join_path(where, p->path, "max_transitions");
        if (!json_is_integer(v))
                return wf_error(p, where, "expected an integer of at least 1, got %s",
                                util_json_kind(v));
        n = json_integer_value(v);
        if (n < 1)
                return wf_error(p, where, "expected an integer of at least 1");
        if (n > INT_MAX)
                return wf_error(p, where, "expected an integer from 1 to %d", INT_MAX);
        p->wf->max_transitions = (int)n;
        return 0;
}

/* The whole task's timeout: optional, and then greater than 0. */
static int parse_task_timeout(struct wf_parser *p, json_t *def)
{
        json_t *v = json_object_get(def, "timeout");
        char where[WF_PATH_MAX];

        p->wf->timeout_ms = 0;
        if (v == NULL)
                return 0;
        join_path(where, p->path, "timeout");
        if (!json_is_string(v))
                return wf_error(p, where, WF_DURATION_HINT ", got %s", util_json_kind(v));
        if (util_parse_duration(json_string_value(v), &p->wf->timeout_ms) < 0)
                return wf_error(p, where, WF_DURATION_HINT);
        if (p->wf->timeout_ms <= 0)
                return wf_error(p, where, "expected a duration greater than 0");
        return 0;
}

static int parse_required(struct wf_parser *p, json_t *def)
{
        json_t *v = json_object_get(def, "required");
        struct workflow *wf = p->wf;
        char where[WF_PATH_MAX];
        json_t *field;
        size_t i;

        if (v == NULL)
                return 0;
        join_path(where, p->path, "required");
        if (!json_is_array(v))
                return wf_error(p, where, "expected an array of field names, got %s",
                                util_json_kind(v));
        wf->required = util_calloc(json_array_size(v), sizeof(*wf->required));
        json_array_foreach (v, i, field) {
                path_format(where, "%s.required[%zu]", p->path, i);
                if (!json_is_string(field))
                        return wf_error(p, where, "expected a string, got %s",
                                        util_json_kind(field));
                if (json_string_length(field) == 0)
                        return wf_error(p, where, "expected a non-empty string");
                wf->required[wf->nrequired++] = util_strdup(json_string_value(field));
        }
        return 0;
}

/* Depth-first walk from initial; no phase is pushed twice, so nphases slots suffice. */
static void mark_reachable(const struct workflow *wf, char *seen)
{
        int *stack = util_calloc(wf->nphases, sizeof(*stack));
        size_t top = 0;

        stack[top++] = wf->initial;
        seen[wf->initial] = 1;
        while (top > 0) {
                const struct wf_phase *ph = &wf->phases[stack[--top]];
                int next[2] = {ph->on_success, ph->on_failure};

                for (int j = 0; j < 2; j++) {
                        if (next[j] < 0 || seen[next[j]])
                                continue;
                        seen[next[j]] = 1;
                        stack[top++] = next[j];
                }
        }
        free(stack);
}

static int edge_ends(const char *ends, int target)
{
        return target < 0 || ends[target];
}

/*
 * A phase can end when one of its edges is terminal or leads to a phase
 * that can end.  Each pass settles at least one more phase or stops, so
 * this is at most nphases passes over a small array.
 */
static void mark_can_end(const struct workflow *wf, char *ends)
{
        int changed = 1;

        while (changed) {
                changed = 0;
                for (size_t i = 0; i < wf->nphases; i++) {
                        const struct wf_phase *ph = &wf->phases[i];

                        if (ends[i] ||
                            !(edge_ends(ends, ph->on_success) || edge_ends(ends, ph->on_failure)))
                                continue;
                        ends[i] = 1;
                        changed = 1;
                }
        }
}

/* Returns the first phase, in declaration order, not marked; or -1. */
static int first_unmarked(const struct workflow *wf, const char *mark)
{
        for (size_t i = 0; i < wf->nphases; i++)
                if (!mark[i])
                        return (int)i;
        return -1;
}

static int check_graph(struct wf_parser *p)
{
        const struct workflow *wf = p->wf;
        char *mark = util_calloc(wf->nphases, 1);
        char where[WF_PATH_MAX];
        int rc = 0, bad;

        mark_reachable(wf, mark);
        if ((bad = first_unmarked(wf, mark)) >= 0) {
                path_format(where, "%s.phases.%s", p->path, wf->phases[bad].name);
                rc = wf_error(p, where, "cannot be reached from the initial phase \"%s\"",
                              wf->phases[wf->initial].name);
                goto out;
        }
        memset(mark, 0, wf->nphases);
        mark_can_end(wf, mark);
        if ((bad = first_unmarked(wf, mark)) >= 0) {
                path_format(where, "%s.phases.%s", p->path, wf->phases[bad].name);
                rc = wf_error(p, where, "no path from this phase to \"complete\" or \"failed\"");
        }
out:
        free(mark);
        return rc;
}

struct workflow *workflow_parse(const char *name, json_t *def, const char *path,
                                workflow_agent_known_fn agent_known, void *ctx, char *err,
                                size_t errsz)
{
        struct workflow *wf = util_calloc(1, sizeof(*wf));
        struct wf_parser p = {wf, path, agent_known, ctx, err, errsz};

        if (p.path == NULL)
                p.path = name != NULL ? name : "workflow";
        wf->name = util_strdup(name);
        wf->definition = json_incref(def);
        if (!json_is_object(def)) {
                wf_error(&p, p.path, "expected an object, got %s",
                         def != NULL ? util_json_kind(def) : "nothing");
                goto fail;
        }
        if (check_keys(&p, def, p.path, definition_keys) < 0 || parse_phases(&p, def) < 0 ||
            parse_initial(&p, def) < 0 || parse_max_transitions(&p, def) < 0 ||
            parse_task_timeout(&p, def) < 0 || parse_required(&p, def) < 0 || check_graph(&p) < 0)
                goto fail;
        return wf;
fail:
        workflow_free(wf);
        return NULL;
}

void workflow_free(struct workflow *wf)
{
        if (wf == NULL)
                return;
        for (size_t i = 0; i < wf->nphases; i++) {
                free(wf->phases[i].name);
                free(wf->phases[i].agent);
                free(wf->phases[i].action);
                json_decref(wf->phases[i].params);
        }
        free(wf->phases);
        for (size_t i = 0; i < wf->nrequired; i++)
                free(wf->required[i]);
        free(wf->required);
        json_decref(wf->definition);
        free(wf->name);
        free(wf);
}

int workflow_phase_index(const struct workflow *wf, const char *name)
{
        if (wf == NULL || name == NULL)
                return -1;
        for (size_t i = 0; i < wf->nphases; i++)
                if (strcmp(wf->phases[i].name, name) == 0)
                        return (int)i;
        return -1;
}

const char *workflow_target_name(const struct workflow *wf, int target)
{
        if (target == WORKFLOW_COMPLETE)
                return "complete";
        if (target == WORKFLOW_FAILED)
                return "failed";
        /* Never NULL: the result usually goes straight into a log line. */
        if (wf == NULL || target < 0 || (size_t)target >= wf->nphases)
                return "(unknown)";
        return wf->phases[target].name;
}

int workflow_check_payload(const struct workflow *wf, json_t *payload, char *err, size_t errsz)
{
        if (payload == NULL)
                return payload_error(err, errsz, "payload is missing");
        if (!json_is_object(payload))
                return payload_error(err, errsz, "payload must be a JSON object, not %s",
                                     util_json_kind(payload));
        for (size_t i = 0; i < wf->nrequired; i++) {
                json_t *v = json_object_get(payload, wf->required[i]);

                /* An explicit null carries no value an agent could use: treat it as missing. */
                if (v == NULL || json_is_null(v))
                        return payload_error(err, errsz, "payload is missing required field \"%s\"",
                                             wf->required[i]);
        }
        return 0;
}

int workflow_agent_is_builtin(const char *agent)
{
        return agent != NULL && in_list(agent, builtin_agents);
}

bool workflow_agent_is_instant(const char *agent)
{
        return agent != NULL &&
               (strcmp(agent, "builtin:noop") == 0 || strcmp(agent, "builtin:fail") == 0);
}
