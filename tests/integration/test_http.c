/*
 * test_http.c - chimerad's HTTP server, driven with the real curl: health,
 * Prometheus metrics (checked by promtool when it is installed, and always
 * line by line here), the task API and its refusals, the bearer token,
 * body limits, and a client that leaves before the database answers.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "suites.h"

#define SUCCEEDED "SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'"

/* One HTTP exchange as curl saw it. */
struct resp {
        int curl;   /* curl's exit status: 0, or 28 for a timeout, 7 for refused... */
        int status; /* HTTP status, 0 when there was no answer */
        char *head; /* status line and headers */
        char *body;
        char raw[1 << 20];
};

static struct resp R;
static int port;
static pid_t chimerad;

/*
 * The inode of a TCP socket in /proc/net/tcp with 127.0.0.1:p as its local
 * (remote false) or remote address, in state (hex: "0A" listening, "01"
 * established); 0 if there is none.
 */
static unsigned long tcp_socket(bool remote, int p, const char *state)
{
        FILE *f = fopen("/proc/net/tcp", "r");
        char line[512], want[32];
        unsigned long inode = 0;

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "0100007F:%04X", (unsigned)p);
        while (fgets(line, sizeof(line), f) != NULL) {
                char local[64], rem[64], st[8];
                unsigned long ino;
                if (sscanf(line, " %*s %63s %63s %7s %*s %*s %*s %*s %*s %lu", local, rem, st,
                           &ino) == 4 &&
                    strcmp(remote ? rem : local, want) == 0 && strcmp(st, state) == 0)
                        inode = ino;
        }
        fclose(f);
        return inode;
}

/* Where curl is, from PATH (h_run does not search it); fails the test without one. */
static const char *curl_path(void)
{
        static char found[512];
        const char *path = getenv("PATH");
        char dirs[4096], *save = NULL;

        if (found[0] != '\0')
                return found;
        snprintf(dirs, sizeof(dirs), "%s", path != NULL ? path : "/usr/bin:/bin");
        for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
                snprintf(found, sizeof(found), "%s/curl", d);
                if (access(found, X_OK) == 0)
                        return found;
        }
        found[0] = '\0';
        ck_abort_msg("curl is not installed (Debian package curl; make deps installs it)");
        return NULL;
}

/*
 * Runs curl: method ("HEAD" uses -I), path under the server, body (text,
 * "@FILE" for a file, or NULL), up to two extra header lines (NULL for
 * none), extra options (a NULL-terminated list, may be NULL).  Fills R.
 */
static void http_opts(const char *method, const char *path, const char *body, const char *hdr1,
                      const char *hdr2, const char *const *opts)
{
        char url[300], *argv[32];
        int n = 0;
        char *sep;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
        argv[n++] = (char *)curl_path();
        argv[n++] = "-sS";
        argv[n++] = "-i";
        /* No "Expect: 100-continue" round trip unless a test asks for it. */
        argv[n++] = "-H";
        argv[n++] = "Expect:";
        if (strcmp(method, "HEAD") == 0) {
                argv[n++] = "-I";
        } else {
                argv[n++] = "-X";
                argv[n++] = (char *)method;
        }
        if (body != NULL) {
                argv[n++] = "--data-binary";
                argv[n++] = (char *)body;
        }
        if (hdr1 != NULL) {
                argv[n++] = "-H";
                argv[n++] = (char *)hdr1;
        }
        if (hdr2 != NULL) {
                argv[n++] = "-H";
                argv[n++] = (char *)hdr2;
        }
        for (int i = 0; opts != NULL && opts[i] != NULL && n < 30; i++)
                argv[n++] = (char *)opts[i];
        argv[n++] = url;
        argv[n] = NULL;
        R.curl = h_run(argv, R.raw, sizeof(R.raw));
        R.status = 0;
        R.head = R.raw;
        R.body = R.raw + strlen(R.raw);
        sscanf(R.raw, "HTTP/%*s %d", &R.status);
        sep = strstr(R.raw, "\r\n\r\n");
        if (sep != NULL) {
                *sep = '\0';
                R.body = sep + 4;
        }
}

static void http(const char *method, const char *path, const char *body, const char *hdr)
{
        http_opts(method, path, body, hdr, NULL, NULL);
}

/* The value of header name in R (in a static buffer), or NULL. */
static const char *header(const char *name)
{
        static char value[512];
        size_t n = strlen(name);

        for (const char *p = strstr(R.head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
                if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
                        const char *v = p + 3 + n, *end;
                        while (*v == ' ')
                                v++;
                        end = strstr(v, "\r\n");
                        snprintf(value, sizeof(value), "%.*s",
                                 (int)(end ? end - v : (long)strlen(v)), v);
                        return value;
                }
        }
        return NULL;
}

/* R's body as JSON (a new reference); fails the test if it is not. */
static json_t *body_json(void)
{
        json_error_t jerr;
        json_t *j = json_loads(R.body, 0, &jerr);

        ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, R.raw);
        return j;
}

/* Asserts an answer with status and an {"error": ...} containing what. */
static void assert_error(int status, const char *what)
{
        json_t *j;
        const char *msg;

        ck_assert_msg(R.status == status, "expected %d with \"%s\", got: %s%s", status, what,
                      R.head, R.body);
        j = body_json();
        msg = json_string_value(json_object_get(j, "error"));
        ck_assert_msg(msg != NULL && strstr(msg, what) != NULL, "expected an error with \"%s\": %s",
                      what, R.body);
        ck_assert_str_eq(header("Content-Type"), "application/json");
        json_decref(j);
}

/* Polls path until it answers with want, or timeout_ms passes. */
static bool wait_status(const char *path, int want, int timeout_ms)
{
        long long deadline = h_now_ms() + timeout_ms;

        for (;;) {
                http("GET", path, NULL, NULL);
                if (R.status == want)
                        return true;
                if (h_now_ms() > deadline)
                        return false;
                h_sleep_ms(50);
        }
}

static const char *http_member(const char *extra)
{
        static char text[1024];

        snprintf(text, sizeof(text),
                 "\"log\": {\"level\": \"debug\"},\n  \"http\": {\"listen\": \"127.0.0.1:%d\"%s%s}",
                 port, extra ? ", " : "", extra ? extra : "");
        return text;
}

/*
 * Writes a small config of its own (one worker, the noop workflow, HTTP on
 * port): for the database URL and lease that h_write_config() fixes.
 */
static void write_small_config(const char *database, const char *lease)
{
        char text[2048];

        snprintf(text, sizeof(text),
                 "{\"database\": \"%s\", \"lease\": \"%s\",\n"
                 " \"control_socket\": \"%s\", \"pool\": {\"size\": 1},\n %s,\n"
                 " \"workflows\": {\"noop\": {\"initial\": \"run\", \"phases\": {\"run\": "
                 "{\"agent\": \"builtin:noop\"}}}}}\n",
                 database, lease, H.socket, http_member(NULL));
        h_write_config_text(text);
}

/* Starts chimerad with HTTP (extra: more members of "http") and waits for /health 200. */
static void start(int pool, const char *extra)
{
        port = h_free_port(AF_INET);
        ck_assert_int_gt(port, 0);
        h_write_config(pool, http_member(extra));
        chimerad = h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status("/health", 200, 30000), "no healthy /health: %s", R.raw);
}

START_TEST(health_is_200_when_up)
{
        char id[64];
        json_t *j;

        start(2, NULL);
        ck_assert_str_eq(header("Content-Type"), "application/json");
        j = body_json();
        /* Its registration may still be on the way when it reports ready. */
        ck_assert(h_wait_int("SELECT count(*) FROM chimera.supervisors", 1, 10000));
        h_text("SELECT id FROM chimera.supervisors", id, sizeof(id));
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
        ck_assert(json_is_true(json_object_get(json_object_get(j, "database"), "up")));
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "pool"), "size")),
                         2);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "pool"), "busy"));
        ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "pool"), "idle"));
        ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "pool"), "starting"));
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "supervisor"), "id")),
                         id);
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(j, "supervisor"), "state")),
            "running");
        json_decref(j);

        /* HEAD: the same status and length, no body. */
        http("HEAD", "/health", NULL, NULL);
        ck_assert_int_eq(R.status, 200);
        ck_assert_ptr_nonnull(header("Content-Length"));
        ck_assert_int_gt(atoi(header("Content-Length")), 0);
        ck_assert_str_eq(R.body, "");
}
END_TEST

START_TEST(health_is_503_when_the_database_is_down)
{
        char url[128];
        int dead = h_free_port(AF_INET);
        json_t *j;

        port = h_free_port(AF_INET);
        /* Nothing listens on dead: chimerad keeps trying, and stays up. */
        snprintf(url, sizeof(url), "postgresql://chimera@127.0.0.1:%d/none?connect_timeout=2",
                 dead);
        write_small_config(url, "30s");
        chimerad = h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status("/health", 503, 30000), "no 503 from /health: %s", R.raw);
        j = body_json();
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "unavailable");
        ck_assert(json_is_false(json_object_get(json_object_get(j, "database"), "up")));
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(j, "supervisor"), "state")),
            "starting");
        json_decref(j);

        /* What needs the database says so; /metrics answers without it. */
        http("POST", "/api/tasks", "{\"workflow\": \"noop\"}", NULL);
        assert_error(503, "the database is not available");
        http("GET", "/api/tasks/1", NULL, NULL);
        assert_error(503, "the database is not available");
        http("GET", "/metrics", NULL, NULL);
        ck_assert_int_eq(R.status, 200);
        ck_assert_msg(strstr(R.body, "\nchimera_database_up 0\n") != NULL, "%s", R.body);
        ck_assert_msg(strstr(R.body, "# TYPE chimera_queue_tasks gauge") != NULL, "%s", R.body);
        ck_assert_msg(strstr(R.body, "chimera_queue_tasks{") == NULL, "%s", R.body);
        ck_assert_int_eq(kill(chimerad, 0), 0);
}
END_TEST

/* ---- the Prometheus text format ---- */

static bool is_name_char(char c, bool first)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
               (!first && c >= '0' && c <= '9');
}

/* Length of the metric or label name at p (0 when there is none). */
static size_t name_len(const char *p)
{
        size_t n = 0;

        while (is_name_char(p[n], n == 0))
                n++;
        return n;
}

/* Skips {name="value",...} at p; returns what follows, or NULL when malformed. */
static const char *skip_labels(const char *p)
{
        if (*p != '{')
                return p;
        p++;
        while (*p != '}') {
                size_t n = name_len(p);
                if (n == 0 || p[n] != '=' || p[n + 1] != '"')
                        return NULL;
                for (p += n + 2; *p != '"'; p++) {
                        if (*p == '\0' || *p == '\n')
                                return NULL;
                        if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
                                p++;
                        else if (*p == '\\')
                                return NULL;
                }
                p++;
                if (*p == ',')
                        p++;
                else if (*p != '}')
                        return NULL;
        }
        return p + 1;
}

/* The family a sample belongs to: its name, less a histogram's suffix if typed so. */
static void family_of(const char *name, size_t n, const char *types, char *out, size_t size)
{
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        char want[200];

        snprintf(out, size, "%.*s", (int)n, name);
        for (size_t i = 0; i < 3; i++) {
                size_t s = strlen(suffixes[i]);
                if (n > s && strncmp(name + n - s, suffixes[i], s) == 0) {
                        snprintf(want, sizeof(want), "\n%.*s histogram\n", (int)(n - s), name);
                        if (strstr(types, want) != NULL) {
                                snprintf(out, size, "%.*s", (int)(n - s), name);
                                return;
                        }
                }
        }
}

/*
 * Checks the text exposition format 0.0.4 as chimerad writes it: lines end
 * in \n; each family has # HELP then # TYPE (a known type) before its
 * samples; sample names and labels are well formed, values are numbers;
 * every name starts with chimera_.  Fails the test naming the line.
 */
static void check_exposition(const char *text)
{
        static char types[1 << 16], helps[1 << 16];
        char line[1024], fam[200];
        const char *p = text, *nl;

        types[0] = helps[0] = '\0';
        strcat(types, "\n");
        strcat(helps, "\n");
        ck_assert_msg(*text != '\0' && text[strlen(text) - 1] == '\n', "no final newline");
        for (; *p != '\0'; p = nl + 1) {
                nl = strchr(p, '\n');
                snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
                if (strncmp(line, "# HELP ", 7) == 0) {
                        size_t n = name_len(line + 7);
                        ck_assert_msg(n > 0 && line[7 + n] == ' ' && line[8 + n] != '\0',
                                      "bad HELP: %s", line);
                        snprintf(helps + strlen(helps), sizeof(helps) - strlen(helps), "%.*s\n",
                                 (int)n, line + 7);
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        size_t n = name_len(line + 7);
                        const char *type = line + 8 + n;
                        char want[200];
                        ck_assert_msg(n > 0 && line[7 + n] == ' ', "bad TYPE: %s", line);
                        ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                                          strcmp(type, "histogram") == 0,
                                      "unknown type: %s", line);
                        snprintf(want, sizeof(want), "\n%.*s\n", (int)n, line + 7);
                        ck_assert_msg(strstr(helps, want) != NULL, "TYPE before HELP: %s", line);
                        snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s\n",
                                 line + 7);
                        continue;
                }
                ck_assert_msg(line[0] != '#' && line[0] != '\0', "unexpected line: \"%s\"", line);
                size_t n = name_len(line);
                const char *rest = n > 0 ? skip_labels(line + n) : NULL;
                char *end, want[220];
                ck_assert_msg(n > 0 && rest != NULL && *rest == ' ', "bad sample: %s", line);
                ck_assert_msg(strncmp(line, "chimera_", 8) == 0, "not chimera_: %s", line);
                if (strcmp(rest + 1, "+Inf") != 0) {
                        strtod(rest + 1, &end);
                        ck_assert_msg(end != rest + 1 && *end == '\0', "bad value: %s", line);
                }
                family_of(line, n, types, fam, sizeof(fam));
                snprintf(want, sizeof(want), "\n%s ", fam);
                ck_assert_msg(strstr(types, want) != NULL, "sample without TYPE: %s", line);
        }
}

/* The value of the sample series ("name" or "name{labels}") in text; fails if absent. */
static double sample(const char *text, const char *series)
{
        char want[256];
        const char *p;

        snprintf(want, sizeof(want), "\n%s ", series);
        p = strstr(text, want);
        ck_assert_msg(p != NULL, "no sample %s in:\n%s", series, text);
        return strtod(p + strlen(want), NULL);
}

/* promtool check metrics, when installed: 1 passed, 0 skipped; fails the test otherwise. */
static int promtool_check(const char *text)
{
        char path[400], cmd[600], out[8192];
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        FILE *f;
        int st;

        snprintf(cmd, sizeof(cmd), "command -v promtool");
        if (h_run(argv, out, sizeof(out)) != 0) {
                fprintf(stderr, "test_http: promtool not installed (Debian package prometheus): "
                                "the exposition format is checked by this test only\n");
                return 0;
        }
        snprintf(path, sizeof(path), "%s/metrics.txt", H.dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
        st = h_run(argv, out, sizeof(out));
        ck_assert_msg(st == 0, "promtool check metrics: exit %d: %s", st, out);
        return 1;
}

START_TEST(metrics_parse_and_match_status)
{
        char out[1 << 16], *text;
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "status", "--json", NULL};
        json_t *st;
        json_error_t jerr;

        start(2, NULL);
        h_exec("INSERT INTO chimera.tasks (workflow) SELECT 'noop' FROM generate_series(1, 5)");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('fail')");
        ck_assert(h_wait_int(SUCCEEDED, 5, 30000));
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'failed'", 1, 30000));

        http("GET", "/metrics", NULL, NULL);
        ck_assert_int_eq(R.status, 200);
        ck_assert_str_eq(header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
        text = strdup(R.body);
        check_exposition(text);
        promtool_check(text);

        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        st = json_loads(out, 0, &jerr);
        ck_assert_msg(st != NULL, "not JSON: %s", out);
        ck_assert_int_eq(sample(text, "chimera_pool_size"),
                         json_integer_value(json_object_get(json_object_get(st, "pool"), "size")));
        ck_assert_int_eq(sample(text, "chimera_pool_size"), 2);
        ck_assert_int_eq(sample(text, "chimera_pool_busy_workers") +
                             sample(text, "chimera_pool_idle_workers") +
                             sample(text, "chimera_pool_starting_workers"),
                         2);
        ck_assert_int_eq(
            sample(text, "chimera_tasks_processed_total{outcome=\"succeeded\"}"),
            json_integer_value(json_object_get(
                json_object_get(json_object_get(st, "supervisor"), "counters"), "succeeded")));
        ck_assert_int_eq(sample(text, "chimera_tasks_processed_total{outcome=\"succeeded\"}"), 5);
        ck_assert_int_eq(sample(text, "chimera_tasks_processed_total{outcome=\"failed\"}"), 1);
        ck_assert_int_eq(
            sample(text, "chimera_queue_tasks{status=\"succeeded\"}"),
            json_integer_value(json_object_get(json_object_get(st, "tasks"), "succeeded")));
        ck_assert_int_eq(sample(text, "chimera_queue_tasks{status=\"queued\"}"), 0);
        ck_assert_int_eq(sample(text, "chimera_tasks_claimed_total"), 6);
        ck_assert_int_eq(sample(text, "chimera_task_duration_seconds_count"), 6);
        ck_assert_int_eq(sample(text, "chimera_task_duration_seconds_bucket{le=\"+Inf\"}"), 6);
        ck_assert_int_eq(sample(text, "chimera_task_duration_seconds_bucket{le=\"300\"}"), 6);
        ck_assert_int_eq(sample(text, "chimera_database_up"), 1);
        ck_assert(sample(text, "chimera_supervisor_uptime_seconds") > 0);
        ck_assert_int_eq(sample(text, "chimera_worker_restarts_total"), 0);
        json_decref(st);
        free(text);
}
END_TEST

START_TEST(post_creates_a_task_that_runs)
{
        char path[64], want[64], sql[256];
        long long id;
        json_t *j;

        start(2, NULL);
        http("POST", "/api/tasks",
             "{\"workflow\": \"twophase\", \"payload\": {\"ms\": 10}, \"priority\": 4,"
             " \"queue\": \"default\", \"max_attempts\": 2}",
             "Content-Type: application/json");
        ck_assert_msg(R.status == 201, "%s%s", R.head, R.body);
        j = body_json();
        id = json_integer_value(json_object_get(j, "id"));
        ck_assert_int_gt(id, 0);
        snprintf(want, sizeof(want), "/api/tasks/%lld", id);
        ck_assert_str_eq(header("Location"), want);
        ck_assert_str_eq(json_string_value(json_object_get(j, "workflow")), "twophase");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "priority")), 4);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_attempts")), 2);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "payload"), "ms")),
                         10);
        json_decref(j);

        /* It runs: GET follows it to the end. */
        snprintf(path, sizeof(path), "/api/tasks/%lld", id);
        for (long long deadline = h_now_ms() + 30000;; h_sleep_ms(50)) {
                http("GET", path, NULL, NULL);
                ck_assert_int_eq(R.status, 200);
                if (strstr(R.body, "\"status\": \"succeeded\"") != NULL)
                        break;
                ck_assert_msg(h_now_ms() < deadline, "task did not succeed: %s", R.body);
        }
        j = body_json();
        ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), id);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 1);
        json_decref(j);

        /* Left out: the table's defaults, as with a plain INSERT; and a
         * later run_at is kept. */
        http("POST", "/api/tasks",
             "{\"workflow\": \"noop\", \"run_at\": \"2999-01-01T00:00:00Z\", \"queue\": null}",
             NULL);
        ck_assert_msg(R.status == 201, "%s%s", R.head, R.body);
        j = body_json();
        id = json_integer_value(json_object_get(j, "id"));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "priority")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_attempts")), 3);
        ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "default");
        ck_assert_int_eq(json_object_size(json_object_get(j, "payload")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "queued");
        json_decref(j);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM chimera.tasks WHERE id = %lld AND run_at = '2999-01-01Z'"
                 " AND status = 'queued'",
                 id);
        ck_assert_int_eq(h_int(sql), 1);
}
END_TEST

START_TEST(post_rejects_bad_input_with_400)
{
        static const struct {
                const char *body, *error;
        } cases[] = {
            {"workflow=noop", "the body is not JSON"},
            {"", "the body is not JSON: it is empty"},
            {"[\"noop\"]", "the body must be a JSON object, not an array"},
            {"{}", "\"workflow\" is required"},
            {"{\"workflow\": \"\"}",
             "\"workflow\" must be a non-empty string, not an empty string"},
            {"{\"workflow\": 7}", "\"workflow\" must be a non-empty string, not 7"},
            {"{\"workflow\": \"noop\", \"colour\": \"red\"}", "unknown member \"colour\""},
            /* A long name, quoted cut short: never inside a character. */
            {"{\"workflow\": \"noop\", "
             "\"x\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
             "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
             "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
             "\u00e9\u00e9\": 1}",
             "unknown member \"x\xc3\xa9\xc3\xa9"},
            {"{\"workflow\": \"noop\", \"payload\": [1]}",
             "\"payload\" must be a JSON object, not an array"},
            {"{\"workflow\": \"noop\", \"payload\": \"{}\"}",
             "\"payload\" must be a JSON object, not a string"},
            {"{\"workflow\": \"noop\", \"priority\": 9}",
             "\"priority\" must be an integer from 1 to 5, not 9"},
            {"{\"workflow\": \"noop\", \"priority\": \"high\"}",
             "\"priority\" must be an integer from 1 to 5, not a string"},
            {"{\"workflow\": \"noop\", \"max_attempts\": 2.5}",
             "\"max_attempts\" must be an integer"},
            {"{\"workflow\": \"noop\", \"workflow\": \"fail\"}", "duplicate object key"},
            /* Refused by the database itself, with its own words. */
            {"{\"workflow\": \"noop\", \"max_attempts\": 0}",
             "violates check constraint \"max_attempts must be at least 1\""},
            {"{\"workflow\": \"noop\", \"run_at\": \"next tuesday-ish\"}",
             "invalid input syntax for type timestamp with time zone"},
            {"{\"workflow\": \"noop\", \"max_attempts\": 99999999999}",
             "out of range for type integer"},
        };

        start(1, NULL);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                http("POST", "/api/tasks", cases[i].body, NULL);
                assert_error(400, cases[i].error);
        }
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);
}
END_TEST

START_TEST(post_requires_the_bearer_token_when_configured)
{
        char token_file[400], extra[512], path[400], log[1 << 16];
        const char *task = "{\"workflow\": \"noop\"}";
        FILE *f;
        pid_t pid;
        int st;

        /* A token file that cannot be read, or is empty, stops start-up. */
        snprintf(token_file, sizeof(token_file), "%s/token", H.dir);
        snprintf(extra, sizeof(extra), "\"token_file\": \"%s\"", token_file);
        port = h_free_port(AF_INET);
        h_write_config(1, http_member(extra));
        pid = h_start_chimerad(H.config, "missing");
        st = h_wait_exit(pid, 30000);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
        snprintf(path, sizeof(path), "%s/missing.log", H.dir);
        h_read_file(path, log, sizeof(log));
        ck_assert_msg(strstr(log, "http.token_file") != NULL && strstr(log, token_file) != NULL,
                      "%s", log);
        f = fopen(token_file, "w");
        ck_assert_ptr_nonnull(f);
        fputs("\n", f);
        fclose(f);
        pid = h_start_chimerad(H.config, "empty");
        st = h_wait_exit(pid, 30000);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);

        /* The token, with the trailing newline an editor leaves. */
        f = fopen(token_file, "w");
        ck_assert_ptr_nonnull(f);
        fputs("s3cret-Token_42\n", f);
        fclose(f);
        start(1, extra);

        http("POST", "/api/tasks", task, NULL);
        assert_error(401, "a bearer token is required");
        ck_assert_str_eq(header("WWW-Authenticate"), "Bearer realm=\"chimera\"");
        http("POST", "/api/tasks", task, "Authorization: Bearer s3cret-Token_4");
        assert_error(401, "wrong bearer token");
        ck_assert_msg(strstr(header("WWW-Authenticate"), "error=\"invalid_token\"") != NULL, "%s",
                      R.head);
        http("POST", "/api/tasks", task, "Authorization: Bearer s3cret-Token_420");
        assert_error(401, "wrong bearer token");
        http("POST", "/api/tasks", task, "Authorization: Basic czNjcmV0LVRva2VuXzQy");
        assert_error(401, "a bearer token is required");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);

        http("POST", "/api/tasks", task, "Authorization: Bearer s3cret-Token_42");
        ck_assert_msg(R.status == 201, "%s%s", R.head, R.body);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 1);
        /* Reading needs no token. */
        ck_assert(wait_status("/health", 200, 1000));
}
END_TEST

START_TEST(get_of_a_missing_task_is_404)
{
        start(1, NULL);
        http("GET", "/api/tasks/424242", NULL, NULL);
        assert_error(404, "no task 424242");
        http("GET", "/api/tasks/12abc", NULL, NULL);
        assert_error(400, "bad task id \"12abc\"");
        http("GET", "/api/tasks/", NULL, NULL);
        assert_error(400, "bad task id");
        http("GET", "/api/tasks/99999999999999999999", NULL, NULL);
        assert_error(400, "bad task id");
        http("GET", "/api/tasks/9999999999999999999", NULL, NULL);
        assert_error(400, "out of range for type bigint");
}
END_TEST

/* Sends request (raw bytes) on a new connection; the answer, up to size - 1 bytes, into out. */
static void raw_http(const char *request, char *out, size_t size)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        size_t got = 0;
        ssize_t n;

        sin.sin_port = htons((unsigned short)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
        while (got < size - 1 && (n = read(fd, out + got, size - 1 - got)) > 0)
                got += (size_t)n;
        out[got] = '\0';
        close(fd);
}

START_TEST(unknown_path_is_404_and_wrong_method_405)
{
        char out[4096];

        start(1, NULL);
        /* Bytes that are not UTF-8 in the path still get a JSON answer. */
        raw_http("GET /caf\xff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof(out));
        ck_assert_msg(strncmp(out, "HTTP/1.1 404 ", 13) == 0, "%s", out);
        ck_assert_msg(strstr(out, "{\"error\":\"no such endpoint: /caf") != NULL, "%s", out);
        http("GET", "/nothing/here", NULL, NULL);
        assert_error(404, "no such endpoint: /nothing/here");
        http("GET", "/health/", NULL, NULL);
        assert_error(404, "no such endpoint");
        http("DELETE", "/health", NULL, NULL);
        assert_error(405, "/health takes GET, HEAD");
        ck_assert_str_eq(header("Allow"), "GET, HEAD");
        http("POST", "/metrics", "{}", NULL);
        assert_error(405, "/metrics takes GET, HEAD");
        http("GET", "/api/tasks", NULL, NULL);
        assert_error(405, "/api/tasks takes POST");
        ck_assert_str_eq(header("Allow"), "POST");
        http("PUT", "/api/tasks/1", "{}", NULL);
        assert_error(405, "takes GET, HEAD");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);
}
END_TEST

/* Writes a POST body of about size bytes: a task whose payload holds a long string. */
static void write_body(const char *path, size_t size)
{
        FILE *f = fopen(path, "w");

        ck_assert_ptr_nonnull(f);
        fputs("{\"workflow\": \"noop\", \"payload\": {\"blob\": \"", f);
        for (size_t i = 0; i < size; i++)
                fputc('x', f);
        fputs("\"}}", f);
        ck_assert_int_eq(fclose(f), 0);
}

START_TEST(oversized_body_is_413)
{
        char big[400], fits[400], arg[410];
        static const char *const expect[] = {"-H", "Expect: 100-continue", NULL};

        start(1, NULL);
        snprintf(big, sizeof(big), "%s/big.json", H.dir);
        snprintf(fits, sizeof(fits), "%s/fits.json", H.dir);
        write_body(big, 2 << 20);
        write_body(fits, 1000 * 1000);

        /* Sent whole, and announced first with Expect: 100-continue. */
        snprintf(arg, sizeof(arg), "@%s", big);
        http("POST", "/api/tasks", arg, NULL);
        ck_assert_msg(R.status == 413, "%.2000s", R.raw);
        http_opts("POST", "/api/tasks", arg, NULL, NULL, expect);
        ck_assert_msg(R.status == 413, "%.2000s", R.raw);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 0);

        /* Just under the limit is fine, and the server is still well. */
        snprintf(arg, sizeof(arg), "@%s", fits);
        http("POST", "/api/tasks", arg, NULL);
        ck_assert_msg(R.status == 201, "%.300s", R.raw);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks"), 1);
        ck_assert(wait_status("/health", 200, 5000));
}
END_TEST

/*
 * The database is held up (a lock on chimera.tasks) while clients give up
 * and close their connections; when it answers, chimerad answers the
 * requests of clients that are gone without harm (the sanitizer build
 * checks that), and the task that was asked for exists.
 */
START_TEST(a_client_that_leaves_before_the_database_answers_is_harmless)
{
        static const char *const quick[] = {"--max-time", "1", NULL};

        start(1, NULL);
        h_exec("INSERT INTO chimera.tasks (workflow, run_at) VALUES ('noop', 'infinity')");
        h_exec("BEGIN");
        h_exec("LOCK TABLE chimera.tasks IN ACCESS EXCLUSIVE MODE");
        http_opts("POST", "/api/tasks", "{\"workflow\": \"noop\"}", NULL, NULL, quick);
        ck_assert_msg(R.curl == 28 && R.status == 0, "curl %d: %s", R.curl, R.raw);
        http_opts("GET", "/api/tasks/1", NULL, NULL, NULL, quick);
        ck_assert_msg(R.curl == 28 && R.status == 0, "curl %d: %s", R.curl, R.raw);
        http_opts("GET", "/metrics", NULL, NULL, NULL, quick);
        ck_assert_msg(R.curl == 28 && R.status == 0, "curl %d: %s", R.curl, R.raw);
        h_exec("COMMIT");

        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks", 2, 30000));
        ck_assert(h_wait_int(SUCCEEDED, 1, 30000));
        ck_assert(wait_status("/health", 200, 10000));
        http("GET", "/api/tasks/1", NULL, NULL);
        ck_assert_int_eq(R.status, 200);
        ck_assert_int_eq(kill(chimerad, 0), 0);
}
END_TEST

/*
 * SIGTERM while a request waits for a database that does not answer: the
 * supervisor still exits 0 once its grace for the database is over,
 * dropping the request (its client sees the connection close), and in the
 * sanitizer build leaves nothing leaked or freed twice.
 */
START_TEST(stopping_with_a_request_waiting_for_the_database_is_clean)
{
        char url[128], out[400], text[4096];
        long long deadline;
        pid_t curl;
        int st;

        /* A lease (the database's answer timeout) longer than the drain's
         * wait for the database, so that the request is still waiting when
         * the supervisor exits. */
        port = h_free_port(AF_INET);
        write_small_config(H.url, "60s");
        chimerad = h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status("/health", 200, 30000), "no healthy /health: %s", R.raw);
        h_exec("BEGIN");
        h_exec("LOCK TABLE chimera.tasks IN ACCESS EXCLUSIVE MODE");
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/tasks", port);
        snprintf(out, sizeof(out), "%s/curl.out", H.dir);
        curl = fork();
        ck_assert_int_ge(curl, 0);
        if (curl == 0) {
                int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                dup2(fd, 1);
                dup2(fd, 2);
                execl(curl_path(), "curl", "-sS", "--max-time", "60", "--data-binary",
                      "{\"workflow\": \"noop\"}", url, (char *)NULL);
                _exit(127);
        }
        /* Once connected, its request reaches chimerad at once: the loop is free. */
        for (deadline = h_now_ms() + 10000; tcp_socket(true, port, "01") == 0; h_sleep_ms(20))
                ck_assert_msg(h_now_ms() < deadline, "curl did not connect");
        ck_assert_int_eq(kill(chimerad, SIGTERM), 0);
        st = h_wait_exit(chimerad, 60000);
        h_exec("COMMIT");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chimerad: status %d", st);
        ck_assert_int_eq(waitpid(curl, &st, 0), curl);
        h_read_file(out, text, sizeof(text));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 52, "curl: status %d: %s", st, text);
}
END_TEST

/*
 * A database that holds a statement up (here a lock, with a lease long
 * enough that chimerad does not give up the connection first): /metrics
 * answers after its wait without the queue depth, the API with 503 after
 * its own; an INSERT that completes afterwards is logged as such.
 */
START_TEST(a_database_that_does_not_answer_gets_an_answer_in_time)
{
        static const char *const slow[] = {"--max-time", "60", NULL};
        char path[400], log[1 << 16];
        long long t0;

        port = h_free_port(AF_INET);
        write_small_config(H.url, "60s");
        chimerad = h_start_chimerad(H.config, "chimerad");
        ck_assert_msg(wait_status("/health", 200, 30000), "no healthy /health: %s", R.raw);
        h_exec("BEGIN");
        h_exec("LOCK TABLE chimera.tasks IN ACCESS EXCLUSIVE MODE");

        t0 = h_now_ms();
        http_opts("GET", "/metrics", NULL, NULL, NULL, slow);
        ck_assert_msg(R.status == 200, "%s", R.raw);
        ck_assert_int_ge(h_now_ms() - t0, 4000);
        ck_assert_msg(strstr(R.body, "\nchimera_database_up 1\n") != NULL, "%s", R.body);
        ck_assert_msg(strstr(R.body, "chimera_queue_tasks{") == NULL, "%s", R.body);

        t0 = h_now_ms();
        http_opts("POST", "/api/tasks", "{\"workflow\": \"noop\"}", NULL, NULL, slow);
        assert_error(503, "the database did not answer within 10 s");
        ck_assert_int_ge(h_now_ms() - t0, 9000);
        h_exec("COMMIT");

        ck_assert(h_wait_int("SELECT count(*) FROM chimera.tasks", 1, 30000));
        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        for (long long deadline = h_now_ms() + 30000;; h_sleep_ms(50)) {
                h_read_file(path, log, sizeof(log));
                if (strstr(log, "was created after its request had been answered 503") != NULL)
                        break;
                ck_assert_msg(h_now_ms() < deadline, "no log line on the late task: %s", log);
        }
        ck_assert(wait_status("/health", 200, 10000));
}
END_TEST

/* The descriptor of pid that is the socket inode, or -1. */
static int socket_fd(pid_t pid, unsigned long inode)
{
        char dir[64], path[400], target[128], want[64];
        struct dirent *e;
        int fd = -1;
        DIR *d;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        snprintf(want, sizeof(want), "socket:[%lu]", inode);
        d = opendir(dir);
        if (d == NULL)
                return -1;
        while ((e = readdir(d)) != NULL) {
                ssize_t n;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                n = readlink(path, target, sizeof(target) - 1);
                if (n > 0) {
                        target[n] = '\0';
                        if (strcmp(target, want) == 0)
                                fd = atoi(e->d_name);
                }
        }
        closedir(d);
        return fd;
}

/* The open flags of pid's fd, from /proc/PID/fdinfo/FD (octal there). */
static long fd_flags(pid_t pid, int fd)
{
        char path[128], text[1024];
        const char *flags;

        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
        h_read_file(path, text, sizeof(text));
        flags = strstr(text, "flags:");
        ck_assert_msg(flags != NULL, "%s: %s", path, text);
        return strtol(flags + 6, NULL, 8);
}

START_TEST(the_http_socket_is_close_on_exec)
{
        pid_t workers[4];
        unsigned long inode;
        int n, fd;

        start(2, NULL);
        inode = tcp_socket(false, port, "0A");
        ck_assert_msg(inode != 0, "no listening socket on port %d", port);
        fd = socket_fd(chimerad, inode);
        ck_assert_int_ge(fd, 0);
        ck_assert_msg(fd_flags(chimerad, fd) & O_CLOEXEC, "fd %d of chimerad lacks O_CLOEXEC", fd);
        /* Nor do the workers hold it (pool.c closes what they inherit, too). */
        n = h_children(chimerad, "chimera-worker", workers, 4);
        ck_assert_int_eq(n, 2);
        for (int i = 0; i < n; i++)
                ck_assert_msg(socket_fd(workers[i], inode) < 0, "worker %d holds the listener",
                              (int)workers[i]);
}
END_TEST

START_TEST(listens_on_an_ipv6_address)
{
        char extra[128];
        json_t *j;

        port = h_free_port(AF_INET6);
        if (port < 0) {
                fprintf(stderr,
                        "test_http: no IPv6 loopback here; skipping the IPv6 listener test\n");
                return;
        }
        snprintf(extra, sizeof(extra), "\"http\": {\"listen\": \"[::1]:%d\"}", port);
        h_write_config(1, extra);
        chimerad = h_start_chimerad(H.config, "chimerad");
        snprintf(extra, sizeof(extra), "http://[::1]:%d/health", port);
        for (long long deadline = h_now_ms() + 30000;; h_sleep_ms(50)) {
                char *argv[] = {(char *)curl_path(), "-sS", "-g", extra, NULL};
                if (h_run(argv, R.raw, sizeof(R.raw)) == 0 && strstr(R.raw, "\"ok\"") != NULL)
                        break;
                ck_assert_msg(h_now_ms() < deadline, "no answer on [::1]:%d: %s", port, R.raw);
        }
        j = json_loads(R.raw, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
        json_decref(j);
}
END_TEST

Suite *http_suite(void)
{
        Suite *s = suite_create("http");
        TCase *tc = h_tcase("http");

        tcase_add_test(tc, health_is_200_when_up);
        tcase_add_test(tc, health_is_503_when_the_database_is_down);
        tcase_add_test(tc, metrics_parse_and_match_status);
        tcase_add_test(tc, post_creates_a_task_that_runs);
        tcase_add_test(tc, post_rejects_bad_input_with_400);
        tcase_add_test(tc, post_requires_the_bearer_token_when_configured);
        tcase_add_test(tc, get_of_a_missing_task_is_404);
        tcase_add_test(tc, unknown_path_is_404_and_wrong_method_405);
        tcase_add_test(tc, oversized_body_is_413);
        tcase_add_test(tc, a_client_that_leaves_before_the_database_answers_is_harmless);
        tcase_add_test(tc, stopping_with_a_request_waiting_for_the_database_is_clean);
        tcase_add_test(tc, a_database_that_does_not_answer_gets_an_answer_in_time);
        tcase_add_test(tc, the_http_socket_is_close_on_exec);
        tcase_add_test(tc, listens_on_an_ipv6_address);
        suite_add_tcase(s, tc);
        return s;
}
