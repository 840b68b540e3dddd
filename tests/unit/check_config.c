/*
 * check_config.c - unit tests for config loading: the defaults, the
 * DESIGN.md example, and each class of error with the key path its message
 * must name.  Configs are written with single quotes for readability; cfg()
 * turns them into JSON and parses them with origin "test.json".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "suites.h"

static char err[1024];

static struct config *cfg(const char *squoted)
{
        char *text = strdup(squoted);
        struct config *c;

        ck_assert_ptr_nonnull(text);
        for (char *s = text; *s != '\0'; s++)
                if (*s == '\'')
                        *s = '"';
        err[0] = '\0';
        c = config_parse_string(text, "test.json", err, sizeof(err));
        free(text);
        return c;
}

static void assert_refused(const char *squoted, const char *message)
{
        struct config *c = cfg(squoted);

        ck_assert_ptr_null(c);
        ck_assert_str_eq(err, message);
}

/* The small complete example of DESIGN.md, section "Configuration". */
#define DESIGN_EXAMPLE                                                                             \
        "{'database': 'postgresql://chimera@localhost/app',"                                       \
        " 'control_socket': '/run/chimera/ctl.sock',"                                              \
        " 'pool': {'size': 8},"                                                                    \
        " 'agents': {'e2e-tester': {'argv': ['/usr/lib/chimera/agents/e2e-tester'],"               \
        "                           'env': {'LANG': 'C.UTF-8'}, 'limits': {'memory': '512MB'}}},"  \
        " 'workflows': {'noop': {'initial': 'run', 'phases': {"                                    \
        "   'run': {'agent': 'builtin:noop', 'on_success': 'complete', 'on_failure': "             \
        "'failed'}}}}}"

START_TEST(empty_object_gives_defaults)
{
        struct config *c = cfg("{}");

        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->path, "test.json");
        ck_assert_ptr_null(c->database);
        ck_assert_str_eq(c->control_socket, CONFIG_DEFAULT_CONTROL_SOCKET);
        ck_assert_int_eq(c->pool_size, 4);
        ck_assert_int_eq(c->pool_max_tasks_per_worker, 0);
        ck_assert_int_eq(c->pool_max_frame_size, 16 * 1024 * 1024);
        ck_assert_int_eq(c->nqueues, 1);
        ck_assert_str_eq(c->queues[0], "default");
        ck_assert_int_eq(c->poll_interval_ms, 1000);
        ck_assert_int_eq(c->lease_ms, 30000);
        ck_assert_int_eq(c->shutdown_timeout_ms, 30000);
        ck_assert_int_eq(c->retry_base_ms, 1000);
        ck_assert_int_eq(c->retry_max_ms, 600000);
        ck_assert_int_eq(c->retention_ms, 7LL * 24 * 3600 * 1000);
        ck_assert_ptr_null(c->http_listen);
        ck_assert_ptr_null(c->http_token_file);
        ck_assert_int_eq(c->log_level, LOG_LEVEL_INFO);
        ck_assert_int_eq(c->log_format, LOG_FORMAT_TEXT);
        ck_assert_int_eq(c->nagents, 0);
        ck_assert_int_eq(c->nworkflows, 0);
        config_free(c);
}
END_TEST

START_TEST(design_example_is_valid)
{
        struct config *c = cfg(DESIGN_EXAMPLE);
        const struct agent_def *a;

        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->database, "postgresql://chimera@localhost/app");
        ck_assert_int_eq(c->pool_size, 8);
        a = config_agent(c, "e2e-tester");
        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(a->argc, 1);
        ck_assert_str_eq(a->argv[0], "/usr/lib/chimera/agents/e2e-tester");
        ck_assert_ptr_null(a->argv[1]);
        ck_assert_str_eq(json_string_value(json_object_get(a->env, "LANG")), "C.UTF-8");
        ck_assert_str_eq(json_string_value(json_object_get(a->limits, "memory")), "512MB");
        ck_assert_ptr_null(a->cwd);
        ck_assert_ptr_nonnull(config_workflow(c, "noop"));
        ck_assert_ptr_null(config_workflow(c, "nope"));
        ck_assert_ptr_null(config_agent(c, "nope"));
        config_free(c);
}
END_TEST

START_TEST(every_key_is_stored)
{
        struct config *c = cfg("{'pool': {'size': 2, 'max_tasks_per_worker': 100,"
                               "          'max_frame_size': '1MB'},"
                               " 'queues': ['a', 'b'], 'poll_interval': '200ms', 'lease': '1m',"
                               " 'shutdown_timeout': '0', 'retry': {'base': '2s', 'max': '1h'},"
                               " 'retention': '2d',"
                               " 'http': {'listen': '127.0.0.1:8080', 'token_file': '/t'},"
                               " 'log': {'level': 'debug', 'format': 'json'},"
                               " 'user': 'chimera', 'group': 'staff',"
                               " 'control_socket_group': 'ops'}");

        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->user, "chimera");
        ck_assert_str_eq(c->group, "staff");
        ck_assert_str_eq(c->control_socket_group, "ops");
        ck_assert_int_eq(c->pool_size, 2);
        ck_assert_int_eq(c->pool_max_tasks_per_worker, 100);
        ck_assert_int_eq(c->pool_max_frame_size, 1024 * 1024);
        ck_assert_int_eq(c->nqueues, 2);
        ck_assert_str_eq(c->queues[1], "b");
        ck_assert_int_eq(c->poll_interval_ms, 200);
        ck_assert_int_eq(c->lease_ms, 60000);
        ck_assert_int_eq(c->shutdown_timeout_ms, 0);
        ck_assert_int_eq(c->retry_base_ms, 2000);
        ck_assert_int_eq(c->retry_max_ms, 3600000);
        ck_assert_int_eq(c->retention_ms, 2LL * 24 * 3600 * 1000);
        ck_assert_str_eq(c->http_listen, "127.0.0.1:8080");
        ck_assert_str_eq(c->http_token_file, "/t");
        ck_assert_int_eq(c->log_level, LOG_LEVEL_DEBUG);
        ck_assert_int_eq(c->log_format, LOG_FORMAT_JSON);
        config_free(c);
}
END_TEST

START_TEST(unknown_top_level_key_is_refused)
{
        assert_refused("{'pool_size': 4}",
                       "test.json: pool_size: unknown key (known keys: database, control_socket, "
                       "control_socket_group, user, group, pool, queues, poll_interval, lease, "
                       "shutdown_timeout, retry, circuit_breaker, "
                       "retention, http, log, agents, workflows)");
}
END_TEST

START_TEST(unknown_nested_key_is_refused)
{
        assert_refused("{'pool': {'sise': 4}}",
                       "test.json: pool.sise: unknown key (known keys: size, "
                       "max_tasks_per_worker, max_frame_size, max_worker_rss, prefetch)");
}
END_TEST

START_TEST(wrong_type_names_what_was_found)
{
        assert_refused("{'pool': {'size': '8'}}",
                       "test.json: pool.size: expected an integer from 1 to 1024, got a string");
        assert_refused("{'pool': 8}", "test.json: pool: expected an object, got an integer");
        assert_refused("{'database': null}", "test.json: database: expected a string, got null");
}
END_TEST

START_TEST(bad_duration_is_refused)
{
        assert_refused("{'poll_interval': '30'}",
                       "test.json: poll_interval: expected a duration such as \"30s\" or \"5m\"");
        assert_refused("{'lease': 30}", "test.json: lease: expected a duration such as \"30s\" or "
                                        "\"5m\", got an integer");
}
END_TEST

START_TEST(duration_below_minimum_is_refused)
{
        assert_refused("{'lease': '500ms'}",
                       "test.json: lease: expected a duration of at least 1s");
        assert_refused("{'poll_interval': '0s'}",
                       "test.json: poll_interval: expected a duration greater than 0");
}
END_TEST

START_TEST(bad_size_is_refused)
{
        assert_refused("{'pool': {'max_frame_size': '16 MB'}}",
                       "test.json: pool.max_frame_size: expected a size such as \"64MB\"");
}
END_TEST

START_TEST(size_out_of_range_is_refused)
{
        assert_refused("{'pool': {'max_frame_size': '2GB'}}",
                       "test.json: pool.max_frame_size: expected a size from 4KB to 1GB");
}
END_TEST

START_TEST(pool_size_out_of_range_is_refused)
{
        assert_refused("{'pool': {'size': 0}}",
                       "test.json: pool.size: expected an integer from 1 to 1024");
        assert_refused("{'pool': {'size': 1025}}",
                       "test.json: pool.size: expected an integer from 1 to 1024");
}
END_TEST

START_TEST(empty_queues_are_refused)
{
        assert_refused("{'queues': []}",
                       "test.json: queues: expected a non-empty array of queue names");
        assert_refused("{'queues': ['a', '']}",
                       "test.json: queues[1]: expected a non-empty string, got an empty one");
        assert_refused("{'queues': ['a', 'a']}", "test.json: queues[1]: duplicate queue \"a\"");
}
END_TEST

START_TEST(retry_max_below_base_is_refused)
{
        assert_refused("{'retry': {'base': '20m'}}",
                       "test.json: retry.max: expected a duration of at least retry.base (20m)");
}
END_TEST

START_TEST(accounts_are_checked)
{
        struct config *c = cfg("{}");

        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_ptr_null(c->user);
        ck_assert_ptr_null(c->group);
        ck_assert_ptr_null(c->control_socket_group);
        config_free(c);
        assert_refused("{'user': ''}", "test.json: user: expected a non-empty string");
        assert_refused("{'user': 0}", "test.json: user: expected a string, got an integer");
        assert_refused("{'control_socket_group': ''}",
                       "test.json: control_socket_group: expected a non-empty string");
        assert_refused("{'group': 'chimera'}",
                       "test.json: group: needs \"user\" as well: chimerad changes its group "
                       "only when it changes its user");
}
END_TEST

START_TEST(bad_log_and_http_values_are_refused)
{
        assert_refused("{'log': {'level': 'verbose'}}",
                       "test.json: log.level: expected one of \"debug\", \"info\", \"warn\", "
                       "\"error\"");
        assert_refused("{'log': {'format': 'xml'}}",
                       "test.json: log.format: expected \"text\" or \"json\"");
        assert_refused("{'http': {'listen': '8080'}}",
                       "test.json: http.listen: expected \"HOST:PORT\" such as \"127.0.0.1:8080\"");
}
END_TEST

START_TEST(duplicate_key_is_refused)
{
        struct config *c = cfg("{'pool': {'size': 2, 'size': 3}}");

        ck_assert_ptr_null(c);
        ck_assert_msg(strncmp(err, "test.json:1:", 12) == 0, "%s", err);
        ck_assert_msg(strstr(err, "duplicate object key") != NULL, "%s", err);
}
END_TEST

START_TEST(syntax_error_names_the_line)
{
        struct config *c = cfg("{\n  'pool': {'size': 2},\n  'lease': '30s'\n  'queues': []\n}");

        ck_assert_ptr_null(c);
        ck_assert_msg(strncmp(err, "test.json:4:", 12) == 0, "%s", err);
}
END_TEST

START_TEST(root_must_be_an_object)
{
        assert_refused("[]", "test.json: expected a JSON object at the top level, got an array");
}
END_TEST

START_TEST(agent_without_argv_is_refused)
{
        assert_refused("{'agents': {'a': {'env': {}}}}",
                       "test.json: agents.a.argv: required key is missing");
        assert_refused("{'agents': {'a': {'argv': []}}}",
                       "test.json: agents.a.argv: expected a non-empty array of strings (the "
                       "command and its arguments)");
}
END_TEST

START_TEST(agent_env_must_hold_strings)
{
        assert_refused("{'agents': {'a': {'argv': ['x'], 'env': {'N': 1}}}}",
                       "test.json: agents.a.env.N: expected a string, got an integer");
}
END_TEST

START_TEST(agent_limits_are_checked)
{
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'memory': 'lots'}}}}",
                       "test.json: agents.a.limits.memory: expected a size such as \"64MB\"");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'files': 0}}}}",
                       "test.json: agents.a.limits.files: expected an integer of at least 1");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'memory': '512KB'}}}}",
                       "test.json: agents.a.limits.memory: expected a size of at least 1MB");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'cpu': '500ms'}}}}",
                       "test.json: agents.a.limits.cpu: expected a duration of at least 1s");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'cpu': '1500ms'}}}}",
                       "test.json: agents.a.limits.cpu: expected whole seconds (the kernel "
                       "counts CPU time in seconds), such as \"2s\"");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'processes': -1}}}}",
                       "test.json: agents.a.limits.processes: expected an integer of at "
                       "least 1");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'output': '0B'}}}}",
                       "test.json: agents.a.limits.output: expected a size greater than 0");
        assert_refused("{'agents': {'a': {'argv': ['x'], 'limits': {'stack': '8MB'}}}}",
                       "test.json: agents.a.limits.stack: unknown key (known keys: memory, cpu, "
                       "files, processes, output)");
}
END_TEST

START_TEST(builtin_agent_names_are_reserved)
{
        assert_refused("{'agents': {'builtin:x': {'argv': ['x']}}}",
                       "test.json: agents.builtin:x: names starting with \"builtin:\" are "
                       "reserved for built-in agents");
}
END_TEST

START_TEST(workflow_errors_carry_origin_and_path)
{
        assert_refused("{'workflows': {'chimera': {'initial': 'a', 'phases': {"
                       "'a': {'agent': 'builtin:noop', 'timeout': 'soon'}}}}}",
                       "test.json: workflows.chimera.phases.a.timeout: expected a duration such "
                       "as \"30s\" or \"5m\"");
}
END_TEST

START_TEST(workflow_agent_must_be_defined)
{
        assert_refused(
            "{'workflows': {'w': {'initial': 'a', 'phases': {'a': {'agent': 'coder'}}}}}",
            "test.json: workflows.w.phases.a.agent: unknown agent \"coder\" (not "
            "defined under \"agents\")");
}
END_TEST

START_TEST(workflow_may_name_an_agent_defined_later)
{
        struct config *c = cfg("{'workflows': {'w': {'initial': 'a', 'phases': {"
                               "  'a': {'agent': 'coder'}}}},"
                               " 'agents': {'coder': {'argv': ['/bin/true']}}}");

        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(config_workflow(c, "w")->phases[0].agent, "coder");
        config_free(c);
}
END_TEST

START_TEST(load_of_missing_file_says_why)
{
        struct config *c = config_load("/nonexistent/chimerad.json", err, sizeof(err));

        ck_assert_ptr_null(c);
        ck_assert_str_eq(err, "/nonexistent/chimerad.json: cannot read: No such file or directory");
}
END_TEST

/* Writes text to a new temporary file and returns its path (static storage). */
static const char *write_temp(const char *text)
{
        static char path[] = "/tmp/check_config_XXXXXX";
        int fd;

        strcpy(path + sizeof(path) - 7, "XXXXXX");
        fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        return path;
}

START_TEST(load_reads_a_real_file)
{
        const char *path = write_temp("{\"pool\": {\"size\": 3}, \"queues\": [\"mail\"]}\n");
        struct config *c = config_load(path, err, sizeof(err));

        unlink(path);
        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->path, path);
        ck_assert_int_eq(c->pool_size, 3);
        ck_assert_str_eq(c->queues[0], "mail");
        config_free(c);
}
END_TEST

START_TEST(load_errors_name_the_file)
{
        const char *path = write_temp("{\"lease\": \"forever\"}");
        struct config *c = config_load(path, err, sizeof(err));
        char expected[256];

        unlink(path);
        ck_assert_ptr_null(c);
        snprintf(expected, sizeof(expected),
                 "%s: lease: expected a duration such as \"30s\" or \"5m\"", path);
        ck_assert_str_eq(err, expected);
}
END_TEST

START_TEST(free_and_lookups_accept_null)
{
        config_free(NULL);
        ck_assert_ptr_null(config_workflow(NULL, "w"));
        ck_assert_ptr_null(config_agent(NULL, "a"));
}
END_TEST

START_TEST(parse_buffer_reads_only_len_bytes)
{
        const char text[] = "{\"pool\": {\"size\": 2}}trailing garbage";
        char why[512];
        struct config *c = config_parse_buffer(text, 21, NULL, why, sizeof(why));

        ck_assert_msg(c != NULL, "%s", why);
        ck_assert_int_eq(c->pool_size, 2);
        config_free(c);
        ck_assert_ptr_null(config_parse_buffer(text, sizeof(text) - 1, NULL, why, sizeof(why)));
        ck_assert_msg(strncmp(why, "<string>:1:", 11) == 0, "%s", why);
}
END_TEST

/*
 * Found by fuzz/fuzz_config.c: a key path too long for its buffer was cut
 * inside a character, and so was jansson's quote of a syntax error; the
 * message must reach chimera-ctl reload inside a JSON reply.
 */
START_TEST(errors_are_utf8_whatever_the_file_holds)
{
        char text[1024] = "{\"agents\": {\"", why[1024];
        struct config *c;

        for (int i = 0; i < 300; i++)
                strcat(text, "\xc3\xa9");
        strcat(text, "\": {\"argv\": [\"\"]}}}");
        c = config_parse_string(text, NULL, why, sizeof(why));
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(why, "...: expected a non-empty string") != NULL, "%s", why);
        ck_assert_msg(is_json_text(why), "not UTF-8: %s", why);

        ck_assert_ptr_null(config_parse_string("{\"c\\u\xc3\xa9\": 1}", NULL, why, sizeof(why)));
        ck_assert_msg(is_json_text(why), "not UTF-8: %s", why);
}
END_TEST

Suite *config_suite(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("config");

        tcase_add_test(tc, empty_object_gives_defaults);
        tcase_add_test(tc, design_example_is_valid);
        tcase_add_test(tc, every_key_is_stored);
        tcase_add_test(tc, unknown_top_level_key_is_refused);
        tcase_add_test(tc, unknown_nested_key_is_refused);
        tcase_add_test(tc, wrong_type_names_what_was_found);
        tcase_add_test(tc, bad_duration_is_refused);
        tcase_add_test(tc, duration_below_minimum_is_refused);
        tcase_add_test(tc, bad_size_is_refused);
        tcase_add_test(tc, size_out_of_range_is_refused);
        tcase_add_test(tc, pool_size_out_of_range_is_refused);
        tcase_add_test(tc, empty_queues_are_refused);
        tcase_add_test(tc, retry_max_below_base_is_refused);
        tcase_add_test(tc, accounts_are_checked);
        tcase_add_test(tc, bad_log_and_http_values_are_refused);
        tcase_add_test(tc, duplicate_key_is_refused);
        tcase_add_test(tc, syntax_error_names_the_line);
        tcase_add_test(tc, root_must_be_an_object);
        tcase_add_test(tc, agent_without_argv_is_refused);
        tcase_add_test(tc, agent_env_must_hold_strings);
        tcase_add_test(tc, agent_limits_are_checked);
        tcase_add_test(tc, builtin_agent_names_are_reserved);
        tcase_add_test(tc, workflow_errors_carry_origin_and_path);
        tcase_add_test(tc, workflow_agent_must_be_defined);
        tcase_add_test(tc, workflow_may_name_an_agent_defined_later);
        tcase_add_test(tc, load_of_missing_file_says_why);
        tcase_add_test(tc, load_reads_a_real_file);
        tcase_add_test(tc, load_errors_name_the_file);
        tcase_add_test(tc, free_and_lookups_accept_null);
        tcase_add_test(tc, parse_buffer_reads_only_len_bytes);
        tcase_add_test(tc, errors_are_utf8_whatever_the_file_holds);
        suite_add_tcase(s, tc);
        return s;
}
