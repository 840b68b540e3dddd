/*
 * check_workflow.c - unit tests for the workflow model: defaults, every
 * class of definition error with its exact message, the graph checks and
 * the payload check.  Definitions are written with single quotes for
 * readability; wf() turns them into JSON.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "suites.h"
#include "workflow.h"

static char err[1024];

/* The agents a test config would define under "agents". */
static int agent_known_cb(const char *agent, void *ctx)
{
        (void)ctx;
        return strcmp(agent, "e2e-tester") == 0 || strcmp(agent, "coder") == 0;
}

static json_t *json_squote(const char *text)
{
        char *s = strdup(text);
        json_error_t jerr;
        json_t *v;

        ck_assert_ptr_nonnull(s);
        for (char *c = s; *c != '\0'; c++)
                if (*c == '\'')
                        *c = '"';
        v = json_loads(s, JSON_DECODE_ANY, &jerr);
        ck_assert_msg(v != NULL, "bad test JSON: %s", jerr.text);
        free(s);
        return v;
}

/* Parses a definition of workflow "w" as chimerad does, with agent checks. */
static struct workflow *wf(const char *text)
{
        json_t *def = json_squote(text);
        struct workflow *w;

        err[0] = '\0';
        w = workflow_parse("w", def, "workflows.w", agent_known_cb, NULL, err, sizeof(err));
        json_decref(def);
        return w;
}

static void assert_refused(const char *text, const char *message)
{
        struct workflow *w = wf(text);

        ck_assert_ptr_null(w);
        ck_assert_str_eq(err, message);
}

#define ONE_PHASE "{'initial': 'run', 'phases': {'run': {'agent': 'builtin:noop'}}}"

#define CHIMERA                                                                                    \
        "{'initial': 'gen', 'max_transitions': 10, 'required': ['feature', 'target_url'],"         \
        " 'phases': {"                                                                             \
        "  'gen': {'agent': 'e2e-tester', 'action': 'generate_test', 'timeout': '5m',"             \
        "          'on_success': 'code', 'on_failure': 'failed'},"                                 \
        "  'code': {'agent': 'coder', 'on_success': 'review', 'params': {'model': 'x'}},"          \
        "  'review': {'agent': 'builtin:noop', 'timeout': '30s', 'on_success': 'complete',"        \
        "             'on_failure': 'code'}}}"

START_TEST(one_phase_gets_defaults)
{
        struct workflow *w = wf(ONE_PHASE);

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_str_eq(w->name, "w");
        ck_assert_int_eq(w->nphases, 1);
        ck_assert_int_eq(w->initial, 0);
        ck_assert_int_eq(w->max_transitions, WORKFLOW_DEFAULT_MAX_TRANSITIONS);
        ck_assert_int_eq(w->nrequired, 0);
        ck_assert_str_eq(w->phases[0].action, "run");
        ck_assert_int_eq(w->phases[0].timeout_ms, WORKFLOW_DEFAULT_TIMEOUT_MS);
        ck_assert_int_eq(w->phases[0].on_success, WORKFLOW_COMPLETE);
        ck_assert_int_eq(w->phases[0].on_failure, WORKFLOW_FAILED);
        ck_assert_ptr_null(w->phases[0].params);
        workflow_free(w);
}
END_TEST

START_TEST(phases_keep_declaration_order_and_edges)
{
        struct workflow *w = wf(CHIMERA);

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_int_eq(w->nphases, 3);
        ck_assert_str_eq(w->phases[0].name, "gen");
        ck_assert_str_eq(w->phases[1].name, "code");
        ck_assert_str_eq(w->phases[2].name, "review");
        ck_assert_str_eq(w->phases[0].action, "generate_test");
        ck_assert_int_eq(w->phases[0].timeout_ms, 5 * 60 * 1000);
        ck_assert_int_eq(w->phases[0].on_success, 1);
        ck_assert_int_eq(w->phases[2].on_failure, 1);
        ck_assert_int_eq(w->max_transitions, 10);
        ck_assert_int_eq(w->nrequired, 2);
        ck_assert_str_eq(w->required[1], "target_url");
        ck_assert_int_eq(workflow_phase_index(w, "review"), 2);
        ck_assert_int_eq(workflow_phase_index(w, "nope"), -1);
        workflow_free(w);
}
END_TEST

START_TEST(definition_and_params_are_referenced)
{
        json_t *def = json_squote(CHIMERA);
        struct workflow *w =
            workflow_parse("w", def, "workflows.w", agent_known_cb, NULL, err, sizeof(err));

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_ptr_eq(w->definition, def);
        json_decref(def);
        /* Still valid: the workflow holds its own references. */
        ck_assert_str_eq(json_string_value(json_object_get(w->phases[1].params, "model")), "x");
        ck_assert(json_is_object(w->definition));
        workflow_free(w);
}
END_TEST

START_TEST(target_names)
{
        struct workflow *w = wf(CHIMERA);

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_str_eq(workflow_target_name(w, WORKFLOW_COMPLETE), "complete");
        ck_assert_str_eq(workflow_target_name(w, WORKFLOW_FAILED), "failed");
        ck_assert_str_eq(workflow_target_name(w, 1), "code");
        workflow_free(w);
}
END_TEST

START_TEST(builtins_are_recognised)
{
        ck_assert(workflow_agent_is_builtin("builtin:noop"));
        ck_assert(workflow_agent_is_builtin("builtin:sleep"));
        ck_assert(workflow_agent_is_builtin("builtin:fail"));
        ck_assert(!workflow_agent_is_builtin("builtin:nope"));
        ck_assert(!workflow_agent_is_builtin("noop"));
}
END_TEST

START_TEST(worker_parse_accepts_any_agent)
{
        json_t *def = json_squote("{'initial': 'a', 'phases': {'a': {'agent': 'anything'}}}");
        struct workflow *w = workflow_parse("w", def, "definition", NULL, NULL, err, sizeof(err));

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_str_eq(w->phases[0].agent, "anything");
        workflow_free(w);
        json_decref(def);
}
END_TEST

START_TEST(edge_to_unknown_phase_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder', 'on_failure': 'x'}}}",
                       "workflows.w.phases.a.on_failure: unknown phase \"x\"");
}
END_TEST

START_TEST(unknown_agent_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'ghost'}}}",
                       "workflows.w.phases.a.agent: unknown agent \"ghost\" "
                       "(not defined under \"agents\")");
}
END_TEST

START_TEST(unknown_builtin_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'builtin:x'}}}",
                       "workflows.w.phases.a.agent: unknown built-in agent \"builtin:x\"");
}
END_TEST

START_TEST(unreachable_phase_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder'}, "
                       "'b': {'agent': 'coder'}}}",
                       "workflows.w.phases.b: cannot be reached from the initial phase \"a\"");
}
END_TEST

START_TEST(loop_without_terminal_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {"
                       "'a': {'agent': 'coder', 'on_success': 'b', 'on_failure': 'b'},"
                       "'b': {'agent': 'coder', 'on_success': 'a', 'on_failure': 'a'}}}",
                       "workflows.w.phases.a: no path from this phase to \"complete\" or "
                       "\"failed\"");
}
END_TEST

START_TEST(terminal_cannot_be_declared)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder'}, "
                       "'complete': {'agent': 'coder'}}}",
                       "workflows.w.phases.complete: \"complete\" is a terminal phase and "
                       "cannot be declared");
}
END_TEST

START_TEST(missing_initial_is_refused)
{
        assert_refused("{'phases': {'a': {'agent': 'coder'}}}",
                       "workflows.w.initial: required key is missing");
}
END_TEST

START_TEST(initial_cannot_be_terminal)
{
        assert_refused("{'initial': 'complete', 'phases': {'a': {'agent': 'coder'}}}",
                       "workflows.w.initial: must name a declared phase, not the terminal "
                       "phase \"complete\"");
}
END_TEST

START_TEST(empty_phases_are_refused)
{
        assert_refused("{'initial': 'a', 'phases': {}}",
                       "workflows.w.phases: expected at least one phase");
}
END_TEST

START_TEST(unknown_keys_are_refused)
{
        assert_refused("{'initial': 'a', 'retries': 5, 'phases': {'a': {'agent': 'coder'}}}",
                       "workflows.w.retries: unknown key (known keys: initial, phases, "
                       "max_transitions, required, timeout)");
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder', 'retries': 3}}}",
                       "workflows.w.phases.a.retries: unknown key (known keys: agent, action, "
                       "timeout, on_success, on_failure, params)");
}
END_TEST

START_TEST(workflow_timeout_bounds_the_whole_task)
{
        struct workflow *w =
            wf("{'initial': 'a', 'timeout': '90s', 'phases': {'a': {'agent': 'coder'}}}");

        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(w->timeout_ms, 90000);
        workflow_free(w);
        w = wf(ONE_PHASE);
        ck_assert_int_eq(w->timeout_ms, 0);
        workflow_free(w);
        assert_refused("{'initial': 'a', 'timeout': 5, 'phases': {'a': {'agent': 'coder'}}}",
                       "workflows.w.timeout: expected a duration such as \"30s\" or \"5m\", got "
                       "an integer");
}
END_TEST

START_TEST(bad_timeout_is_refused)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder', 'timeout': '30'}}}",
                       "workflows.w.phases.a.timeout: expected a duration such as \"30s\" or "
                       "\"5m\"");
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 'coder', 'timeout': '0s'}}}",
                       "workflows.w.phases.a.timeout: expected a duration greater than 0");
}
END_TEST

START_TEST(max_transitions_below_one_is_refused)
{
        assert_refused(
            "{'initial': 'a', 'max_transitions': 0, 'phases': {'a': {'agent': 'coder'}}}",
            "workflows.w.max_transitions: expected an integer of at least 1");
}
END_TEST

START_TEST(wrong_type_names_what_was_found)
{
        assert_refused("{'initial': 'a', 'phases': {'a': {'agent': 5}}}",
                       "workflows.w.phases.a.agent: expected a string, got an integer");
        assert_refused(
            "{'initial': 'a', 'required': ['x', 1], 'phases': {'a': {'agent': 'coder'}}}",
            "workflows.w.required[1]: expected a string, got an integer");
        assert_refused("[]", "workflows.w: expected an object, got an array");
}
END_TEST

START_TEST(payload_object_with_required_fields_passes)
{
        struct workflow *w = wf(CHIMERA);
        json_t *payload = json_squote("{'feature': 'login', 'target_url': 'http://x'}");

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_int_eq(workflow_check_payload(w, payload, err, sizeof(err)), 0);
        json_decref(payload);
        workflow_free(w);
}
END_TEST

START_TEST(payload_that_is_not_an_object_is_refused)
{
        struct workflow *w = wf(ONE_PHASE);
        json_t *payload = json_squote("[1, 2]");

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_int_eq(workflow_check_payload(w, payload, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "payload must be a JSON object, not an array");
        ck_assert_int_eq(workflow_check_payload(w, NULL, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "payload is missing");
        json_decref(payload);
        workflow_free(w);
}
END_TEST

START_TEST(payload_missing_required_field_is_refused)
{
        struct workflow *w = wf(CHIMERA);
        json_t *payload = json_squote("{'feature': 'login'}");

        ck_assert_msg(w != NULL, "%s", err);
        ck_assert_int_eq(workflow_check_payload(w, payload, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "payload is missing required field \"target_url\"");
        json_decref(payload);
        workflow_free(w);
}
END_TEST

/*
 * A path too long for its buffer is cut, here inside a character; found by
 * fuzz/fuzz_config.c for config keys.
 */
START_TEST(errors_with_long_names_stay_utf8)
{
        char text[1600] = "{'initial': 'xy";
        struct workflow *w;

        for (int i = 0; i < 300; i++)
                strcat(text, "\xc3\xa9");
        strcat(text, "', 'phases': {'xy");
        for (int i = 0; i < 300; i++)
                strcat(text, "\xc3\xa9");
        strcat(text, "': {'agent': 'builtin:noop', 'timeout': 'soon'}}}");
        w = wf(text);
        ck_assert_ptr_null(w);
        ck_assert_msg(strstr(err, "...: expected a duration") != NULL, "%s", err);
        ck_assert_msg(is_json_text(err), "not UTF-8: %s", err);
}
END_TEST

Suite *workflow_suite(void)
{
        Suite *s = suite_create("workflow");
        TCase *tc = tcase_create("workflow");

        tcase_add_test(tc, one_phase_gets_defaults);
        tcase_add_test(tc, phases_keep_declaration_order_and_edges);
        tcase_add_test(tc, definition_and_params_are_referenced);
        tcase_add_test(tc, target_names);
        tcase_add_test(tc, builtins_are_recognised);
        tcase_add_test(tc, errors_with_long_names_stay_utf8);
        tcase_add_test(tc, worker_parse_accepts_any_agent);
        tcase_add_test(tc, edge_to_unknown_phase_is_refused);
        tcase_add_test(tc, unknown_agent_is_refused);
        tcase_add_test(tc, unknown_builtin_is_refused);
        tcase_add_test(tc, unreachable_phase_is_refused);
        tcase_add_test(tc, loop_without_terminal_is_refused);
        tcase_add_test(tc, terminal_cannot_be_declared);
        tcase_add_test(tc, missing_initial_is_refused);
        tcase_add_test(tc, initial_cannot_be_terminal);
        tcase_add_test(tc, empty_phases_are_refused);
        tcase_add_test(tc, unknown_keys_are_refused);
        tcase_add_test(tc, workflow_timeout_bounds_the_whole_task);
        tcase_add_test(tc, bad_timeout_is_refused);
        tcase_add_test(tc, max_transitions_below_one_is_refused);
        tcase_add_test(tc, wrong_type_names_what_was_found);
        tcase_add_test(tc, payload_object_with_required_fields_passes);
        tcase_add_test(tc, payload_that_is_not_an_object_is_refused);
        tcase_add_test(tc, payload_missing_required_field_is_refused);
        suite_add_tcase(s, tc);
        return s;
}
