/*
 * workflow.h - the workflow model: a state machine of phases, as declared
 * under "workflows" in the config.  The same code parses a definition in
 * chimerad (when the config is loaded, with every check) and in the worker
 * (from the "definition" a task frame carries), so both sides agree on what
 * a workflow means.
 *
 * A phase calls one agent; its outcome picks the next phase through
 * on_success / on_failure.  "complete" and "failed" are the terminal phases:
 * they are never declared, only named as edges.
 */
#ifndef CHIMERA_WORKFLOW_H
#define CHIMERA_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Edge targets that are not declared phases. */
#define WORKFLOW_COMPLETE (-1)
#define WORKFLOW_FAILED   (-2)

#define WORKFLOW_DEFAULT_MAX_TRANSITIONS 100
#define WORKFLOW_DEFAULT_TIMEOUT_MS      (5 * 60 * 1000)

struct wf_phase {
        char *name;
        char *agent;        /* "builtin:noop" or a name under config "agents" */
        char *action;       /* defaults to the phase name */
        int64_t timeout_ms; /* default WORKFLOW_DEFAULT_TIMEOUT_MS */
        int on_success;     /* phase index, WORKFLOW_COMPLETE or WORKFLOW_FAILED */
        int on_failure;     /* likewise; default WORKFLOW_FAILED */
        json_t *params;     /* owned reference, or NULL */
};

struct workflow {
        char *name;
        int initial; /* index into phases */
        int max_transitions;
        int64_t timeout_ms; /* "timeout" of the whole task, enforced by chimerad; 0 = none */
        char **required;    /* payload fields that must be present */
        size_t nrequired;
        struct wf_phase *phases;
        size_t nphases;
        json_t *definition; /* owned: the definition as given, sent to workers */
};

/*
 * Tells whether an agent name (not a builtin) exists; ctx is passed through.
 * workflow_parse() with a NULL callback accepts any agent name.
 */
typedef int (*workflow_agent_known_fn)(const char *agent, void *ctx);

/*
 * Parses and validates one workflow definition `def` (borrowed) named
 * `name`.  `path` prefixes error messages ("workflows.chimera").  Checks:
 * known keys and types, "initial" and every edge naming a declared phase or
 * a terminal, known agents (builtin:noop, builtin:sleep, builtin:fail, or
 * what agent_known accepts), every phase reachable from "initial", and a
 * path to a terminal phase from every phase.  Returns a new workflow the
 * caller frees with workflow_free(), or NULL with "path.key: reason" in err
 * (valid UTF-8: it may end up in a task's last_error).
 */
struct workflow *workflow_parse(const char *name, json_t *def, const char *path,
                                workflow_agent_known_fn agent_known, void *ctx, char *err,
                                size_t errsz) __attribute__((warn_unused_result));

/* Frees wf and everything it owns; NULL is fine. */
void workflow_free(struct workflow *wf);

/* Index of the phase called name, or -1. */
int workflow_phase_index(const struct workflow *wf, const char *name);

/*
 * Name of an edge target: a phase name, "complete" or "failed".  The result
 * is borrowed from wf.
 */
const char *workflow_target_name(const struct workflow *wf, int target);

/*
 * Checks a task payload (borrowed) before the first phase: it must be a JSON
 * object holding every required field.  Returns 0, or -1 with a sentence a
 * person understands in err (valid UTF-8), e.g. `payload is missing
 * required field "target_url"` or `payload must be a JSON object, not an
 * array`.
 */
int workflow_check_payload(const struct workflow *wf, json_t *payload, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/* Nonzero when agent is one of the built-in agents ("builtin:noop", ...). */
int workflow_agent_is_builtin(const char *agent);

/* True for the built-in agents that return at once (builtin:noop, builtin:fail). */
bool workflow_agent_is_instant(const char *agent);

#endif
