/*
 * config.c - loading and validating chimerad's JSON configuration.
 *
 * Validation is table-driven: each fixed-shape JSON object has one table of
 * key specs (name, kind, where the value goes, allowed range), and one
 * walker, parse_object(), refuses unknown keys, checks types and ranges and
 * stores the values.  Adding a key is a struct field plus one table line.
 * Members that are not fixed (agents, workflows, env) and values with rules
 * of their own (queues, log.level, http.listen) have small custom parsers.
 * The first error stops the load and names the origin and the key path: a
 * config is either wholly valid or refused, never half-applied.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/* Long enough for any sensible key path; a longer one is only truncated in messages. */
#define CFG_PATH_MAX 512

#define KB (1024LL)
#define MB (1024LL * KB)
#define GB (1024LL * MB)

#define DURATION_HINT "expected a duration such as \"30s\" or \"5m\""
#define SIZE_HINT     "expected a size such as \"64MB\""

/* One config_parse: the config being built and where errors go. */
struct cfg_parser {
        struct config *cfg;
        const char *origin; /* file path, or the origin given to config_parse_string() */
        char *err;
        size_t errsz;
};

/* A custom parser for the value v at path; base is the struct the key's table fills. */
typedef int (*key_parse_fn)(struct cfg_parser *p, json_t *v, const char *path, void *base);

enum key_kind {
        KEY_STRING,   /* char *, replaced */
        KEY_INT,      /* int within [min, max] */
        KEY_DURATION, /* int64_t milliseconds within [min, max] */
        KEY_SIZE,     /* int64_t bytes within [min, max] */
        KEY_OBJECT,   /* nested keys `sub`, stored into the same base */
        KEY_CUSTOM,   /* `parse` does it all */
};

struct key_spec {
        const char *name;
        enum key_kind kind;
        size_t offset;              /* of the field in the base struct */
        int64_t min, max;           /* inclusive; KEY_STRING: min 1 = must not be empty */
        const struct key_spec *sub; /* KEY_OBJECT */
        key_parse_fn parse;         /* KEY_CUSTOM */
        int required;
};

/* One table line per key; clang-format would spread each over four lines. */
/* clang-format off */
#define STRING_KEY(n, off, nonempty) {.name = n, .kind = KEY_STRING, .offset = off, .min = nonempty}
#define INT_KEY(n, off, lo, hi)  {.name = n, .kind = KEY_INT, .offset = off, .min = lo, .max = hi}
#define SIZE_KEY(n, off, lo, hi) {.name = n, .kind = KEY_SIZE, .offset = off, .min = lo, .max = hi}
#define DURATION_KEY(n, off, lo) \
        {.name = n, .kind = KEY_DURATION, .offset = off, .min = lo, .max = INT64_MAX}
#define OBJECT_KEY(n, keys)      {.name = n, .kind = KEY_OBJECT, .sub = keys}
#define CUSTOM_KEY(n, fn, req)   {.name = n, .kind = KEY_CUSTOM, .parse = fn, .required = req}
#define END_KEYS                 {.name = NULL}
/* clang-format on */

#define CFG(field)   offsetof(struct config, field)
#define AGENT(field) offsetof(struct agent_def, field)
#define LIMIT(field) offsetof(struct agent_limits, field)

/*
 * Agent limits are only validated here; the worker reads them from the JSON
 * (worker/confine.c).  Below 1MB of address space no program even starts.
 */
struct agent_limits {
        int64_t memory, cpu_ms, output;
        int files, processes;
};

static int parse_queues(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_listen(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_log_level(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_log_format(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_agents(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_argv(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_env(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_limits(struct cfg_parser *p, json_t *v, const char *path, void *base);
static int parse_workflows(struct cfg_parser *p, json_t *v, const char *path, void *base);

static const struct key_spec pool_keys[] = {
    INT_KEY("size", CFG(pool_size), 1, 1024),
    INT_KEY("max_tasks_per_worker", CFG(pool_max_tasks_per_worker), 0, INT_MAX),
    SIZE_KEY("max_frame_size", CFG(pool_max_frame_size), 4 * KB, GB),
    SIZE_KEY("max_worker_rss", CFG(pool_max_worker_rss), 0, 1024 * GB),
    INT_KEY("prefetch", CFG(pool_prefetch), 0, 100000),
    END_KEYS,
};

static const struct key_spec retry_keys[] = {
    DURATION_KEY("base", CFG(retry_base_ms), 1),
    DURATION_KEY("max", CFG(retry_max_ms), 1),
    INT_KEY("max_attempts", CFG(retry_max_attempts), 0, 1000000),
    END_KEYS,
};

static const struct key_spec breaker_keys[] = {
    INT_KEY("failures", CFG(breaker_failures), 0, 1000000),
    DURATION_KEY("cooldown", CFG(breaker_cooldown_ms), 1),
    END_KEYS,
};

static const struct key_spec http_keys[] = {
    CUSTOM_KEY("listen", parse_listen, 0),
    STRING_KEY("token_file", CFG(http_token_file), 1),
    END_KEYS,
};

static const struct key_spec log_keys[] = {
    CUSTOM_KEY("level", parse_log_level, 0),
    CUSTOM_KEY("format", parse_log_format, 0),
    END_KEYS,
};

/* Keys are handled in table order: "agents" before "workflows", which name agents. */
static const struct key_spec top_keys[] = {
    STRING_KEY("database", CFG(database), 0),
    STRING_KEY("control_socket", CFG(control_socket), 1),
    STRING_KEY("control_socket_group", CFG(control_socket_group), 1),
    STRING_KEY("user", CFG(user), 1),
    STRING_KEY("group", CFG(group), 1),
    OBJECT_KEY("pool", pool_keys),
    CUSTOM_KEY("queues", parse_queues, 0),
    DURATION_KEY("poll_interval", CFG(poll_interval_ms), 1),
    DURATION_KEY("lease", CFG(lease_ms), 1000),
    DURATION_KEY("shutdown_timeout", CFG(shutdown_timeout_ms), 0),
    OBJECT_KEY("retry", retry_keys),
    OBJECT_KEY("circuit_breaker", breaker_keys),
    DURATION_KEY("retention", CFG(retention_ms), 0),
    OBJECT_KEY("http", http_keys),
    OBJECT_KEY("log", log_keys),
    CUSTOM_KEY("agents", parse_agents, 0),
    CUSTOM_KEY("workflows", parse_workflows, 0),
    END_KEYS,
};

static const struct key_spec agent_keys[] = {
    CUSTOM_KEY("argv", parse_argv, 1),
    CUSTOM_KEY("env", parse_env, 0),
    STRING_KEY("cwd", AGENT(cwd), 1),
    CUSTOM_KEY("limits", parse_limits, 0),
    END_KEYS,
};

static const struct key_spec limit_keys[] = {
    SIZE_KEY("memory", LIMIT(memory), MB, INT64_MAX),
    DURATION_KEY("cpu", LIMIT(cpu_ms), 1000),
    INT_KEY("files", LIMIT(files), 1, INT_MAX),
    INT_KEY("processes", LIMIT(processes), 1, INT_MAX),
    SIZE_KEY("output", LIMIT(output), 1, INT64_MAX),
    END_KEYS,
};

static int cfg_error(struct cfg_parser *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Every message is made valid UTF-8, since `chimera-ctl reload` gets it in
 * a JSON reply: jansson quotes the bytes near a syntax error, and a key
 * path or a message cut to size may end inside a character.
 */

/* For messages that come before any key path: the file or the JSON syntax. */
static void set_error(char *err, size_t errsz, const char *fmt, ...)
{
        va_list ap;

        if (err == NULL || errsz == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
        util_utf8_sanitize(err);
}

/* Writes "origin: path: reason" (no path at the top level); returns -1. */
static int cfg_error(struct cfg_parser *p, const char *path, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (p->err == NULL || p->errsz == 0)
                return -1;
        n = snprintf(p->err, p->errsz, "%s: %s%s", p->origin, path, path[0] != '\0' ? ": " : "");
        if (n >= 0 && (size_t)n < p->errsz) {
                va_start(ap, fmt);
                vsnprintf(p->err + n, p->errsz - (size_t)n, fmt, ap);
                va_end(ap);
        }
        util_utf8_sanitize(p->err);
        return -1;
}

static void path_format(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fills a CFG_PATH_MAX buffer; a path too long still reads as one, ending in "...". */
static void path_format(char *buf, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, CFG_PATH_MAX, fmt, ap);
        va_end(ap);
        if (n >= CFG_PATH_MAX)
                memcpy(buf + CFG_PATH_MAX - 4, "...", 4);
}

static void join_path(char *buf, const char *parent, const char *key)
{
        path_format(buf, "%s%s%s", parent, parent[0] != '\0' ? "." : "", key);
}

static void index_path(char *buf, const char *parent, size_t i)
{
        path_format(buf, "%s[%zu]", parent, i);
}

/* Prints a number of the given kind as a person would write it in the config. */
static void format_amount(enum key_kind kind, int64_t n, char *buf, size_t size)
{
        static const struct {
                const char *unit;
                int64_t factor;
        } durations[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}},
          sizes[] = {{"GB", GB}, {"MB", MB}, {"KB", KB}, {"B", 1}};
        size_t i = 0;

        if (kind == KEY_INT || n == 0) {
                snprintf(buf, size, "%lld", (long long)n);
        } else if (kind == KEY_DURATION) {
                while (n % durations[i].factor != 0)
                        i++;
                snprintf(buf, size, "%lld%s", (long long)(n / durations[i].factor),
                         durations[i].unit);
        } else {
                while (n % sizes[i].factor != 0)
                        i++;
                snprintf(buf, size, "%lld%s", (long long)(n / sizes[i].factor), sizes[i].unit);
        }
}

/* The allowed range as a phrase: "from 1 to 1024", "of at least 1s", "greater than 0". */
static void range_phrase(const struct key_spec *k, char *buf, size_t size)
{
        int64_t top = k->kind == KEY_INT ? INT_MAX : INT64_MAX;
        char lo[32], hi[32];

        format_amount(k->kind, k->min, lo, sizeof(lo));
        format_amount(k->kind, k->max, hi, sizeof(hi));
        if (k->max != top)
                snprintf(buf, size, "from %s to %s", lo, hi);
        else if (k->min == 1 && k->kind != KEY_INT)
                snprintf(buf, size, "greater than 0");
        else
                snprintf(buf, size, "of at least %s", lo);
}

static void *field_at(void *base, const struct key_spec *k)
{
        return (char *)base + k->offset;
}

static int parse_string_key(struct cfg_parser *p, const struct key_spec *k, json_t *v,
                            const char *path, void *base)
{
        char **field = field_at(base, k);

        if (!json_is_string(v))
                return cfg_error(p, path, "expected a string, got %s", util_json_kind(v));
        if (k->min > 0 && json_string_length(v) == 0)
                return cfg_error(p, path, "expected a non-empty string");
        free(*field);
        *field = util_strdup(json_string_value(v));
        return 0;
}

static int parse_int_key(struct cfg_parser *p, const struct key_spec *k, json_t *v,
                         const char *path, void *base)
{
        char range[80];
        json_int_t n;

        range_phrase(k, range, sizeof(range));
        if (!json_is_integer(v))
                return cfg_error(p, path, "expected an integer %s, got %s", range,
                                 util_json_kind(v));
        n = json_integer_value(v);
        if (n < k->min || n > k->max)
                return cfg_error(p, path, "expected an integer %s", range);
        *(int *)field_at(base, k) = (int)n;
        return 0;
}

/* Durations and sizes: a string with a unit, then a range check. */
static int parse_amount_key(struct cfg_parser *p, const struct key_spec *k, json_t *v,
                            const char *path, void *base)
{
        int is_duration = k->kind == KEY_DURATION;
        const char *hint = is_duration ? DURATION_HINT : SIZE_HINT;
        char range[80];
        int64_t n;
        int rc;

        if (!json_is_string(v))
                return cfg_error(p, path, "%s, got %s", hint, util_json_kind(v));
        rc = is_duration ? util_parse_duration(json_string_value(v), &n)
                         : util_parse_size(json_string_value(v), &n);
        if (rc < 0)
                return cfg_error(p, path, "%s", hint);
        if (n < k->min || n > k->max) {
                range_phrase(k, range, sizeof(range));
                return cfg_error(p, path, "expected %s %s", is_duration ? "a duration" : "a size",
                                 range);
        }
        *(int64_t *)field_at(base, k) = n;
        return 0;
}

static int find_key(const struct key_spec *keys, const char *name)
{
        for (; keys->name != NULL; keys++)
                if (strcmp(keys->name, name) == 0)
                        return 1;
        return 0;
}

static void known_keys(const struct key_spec *keys, char *buf, size_t size)
{
        size_t n = 0;

        buf[0] = '\0';
        for (; keys->name != NULL && n < size; keys++) {
                int w = snprintf(buf + n, size - n, "%s%s", n > 0 ? ", " : "", keys->name);
                if (w < 0)
                        return;
                n += (size_t)w;
        }
}

static int check_unknown_keys(struct cfg_parser *p, json_t *obj, const char *path,
                              const struct key_spec *keys)
{
        char where[CFG_PATH_MAX], names[512];
        const char *key;
        json_t *v;

        json_object_foreach (obj, key, v) {
                (void)v;
                if (find_key(keys, key))
                        continue;
                join_path(where, path, key);
                known_keys(keys, names, sizeof(names));
                return cfg_error(p, where, "unknown key (known keys: %s)", names);
        }
        return 0;
}

static int parse_object(struct cfg_parser *p, json_t *obj, const char *path,
                        const struct key_spec *keys, void *base);

static int parse_key(struct cfg_parser *p, const struct key_spec *k, json_t *v, const char *path,
                     void *base)
{
        switch (k->kind) {
        case KEY_STRING:
                return parse_string_key(p, k, v, path, base);
        case KEY_INT:
                return parse_int_key(p, k, v, path, base);
        case KEY_DURATION:
        case KEY_SIZE:
                return parse_amount_key(p, k, v, path, base);
        case KEY_OBJECT:
                return parse_object(p, v, path, k->sub, base);
        case KEY_CUSTOM:
                return k->parse(p, v, path, base);
        }
        return cfg_error(p, path, "internal error: bad key kind");
}

/*
 * Checks that obj is an object holding only keys from the table, then
 * parses the keys present, in table order, into base.
 */
static int parse_object(struct cfg_parser *p, json_t *obj, const char *path,
                        const struct key_spec *keys, void *base)
{
        char where[CFG_PATH_MAX];

        if (!json_is_object(obj))
                return cfg_error(p, path, "expected an object, got %s", util_json_kind(obj));
        if (check_unknown_keys(p, obj, path, keys) < 0)
                return -1;
        for (const struct key_spec *k = keys; k->name != NULL; k++) {
                json_t *v = json_object_get(obj, k->name);

                join_path(where, path, k->name);
                if (v == NULL && k->required)
                        return cfg_error(p, where, "required key is missing");
                if (v != NULL && parse_key(p, k, v, where, base) < 0)
                        return -1;
        }
        return 0;
}

static void free_strv(char **v, size_t n)
{
        if (v == NULL)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int strv_contains(char **v, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i], s) == 0)
                        return 1;
        return 0;
}

/*
 * Copies a JSON array of non-empty strings into a NULL-terminated vector.
 * what names the elements in messages ("queue names").  Returns 0 and
 * stores the vector and its length, or -1.
 */
static int parse_strv(struct cfg_parser *p, json_t *v, const char *path, const char *what,
                      char ***out, size_t *count)
{
        char where[CFG_PATH_MAX];
        char **strv;
        json_t *s;
        size_t i, n = 0;

        if (!json_is_array(v))
                return cfg_error(p, path, "expected an array of %s, got %s", what,
                                 util_json_kind(v));
        if (json_array_size(v) == 0)
                return cfg_error(p, path, "expected a non-empty array of %s", what);
        strv = util_calloc(json_array_size(v) + 1, sizeof(*strv));
        json_array_foreach (v, i, s) {
                index_path(where, path, i);
                if (!json_is_string(s) || json_string_length(s) == 0) {
                        free_strv(strv, n);
                        return cfg_error(p, where, "expected a non-empty string, got %s",
                                         json_is_string(s) ? "an empty one" : util_json_kind(s));
                }
                strv[n++] = util_strdup(json_string_value(s));
        }
        *out = strv;
        *count = n;
        return 0;
}

static int parse_queues(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;
        char where[CFG_PATH_MAX];
        char **queues;
        size_t n;

        if (parse_strv(p, v, path, "queue names", &queues, &n) < 0)
                return -1;
        /* A queue listed twice would be polled twice as often: surely a typo. */
        for (size_t i = 1; i < n; i++) {
                if (strv_contains(queues, i, queues[i])) {
                        index_path(where, path, i);
                        cfg_error(p, where, "duplicate queue \"%s\"", queues[i]);
                        free_strv(queues, n);
                        return -1;
                }
        }
        free_strv(cfg->queues, cfg->nqueues);
        cfg->queues = queues;
        cfg->nqueues = n;
        return 0;
}

/* "HOST:PORT" with a non-empty host and a port from 1 to 65535; "[::1]:8080" works too. */
static int valid_listen(const char *s)
{
        const char *colon = strrchr(s, ':');
        char *end;
        long port;

        if (colon == NULL || colon == s || colon[1] < '0' || colon[1] > '9')
                return 0;
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
}

static int parse_listen(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;

        if (!json_is_string(v) || !valid_listen(json_string_value(v)))
                return cfg_error(p, path, "expected \"HOST:PORT\" such as \"127.0.0.1:8080\"%s%s",
                                 json_is_string(v) ? "" : ", got ",
                                 json_is_string(v) ? "" : util_json_kind(v));
        free(cfg->http_listen);
        cfg->http_listen = util_strdup(json_string_value(v));
        return 0;
}

static int parse_log_level(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;

        if (!json_is_string(v) || log_level_parse(json_string_value(v), &cfg->log_level) < 0)
                return cfg_error(p, path,
                                 "expected one of \"debug\", \"info\", \"warn\", \"error\"");
        return 0;
}

static int parse_log_format(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;
        const char *s = json_string_value(v); /* NULL when v is not a string */

        if (s != NULL && strcmp(s, "text") == 0)
                cfg->log_format = LOG_FORMAT_TEXT;
        else if (s != NULL && strcmp(s, "json") == 0)
                cfg->log_format = LOG_FORMAT_JSON;
        else
                return cfg_error(p, path, "expected \"text\" or \"json\"");
        return 0;
}

static int parse_argv(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct agent_def *agent = base;

        return parse_strv(p, v, path, "strings (the command and its arguments)", &agent->argv,
                          &agent->argc);
}

static int parse_env(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct agent_def *agent = base;
        char where[CFG_PATH_MAX];
        const char *name;
        json_t *value;

        if (!json_is_object(v))
                return cfg_error(p, path, "expected an object of strings, got %s",
                                 util_json_kind(v));
        json_object_foreach (v, name, value) {
                join_path(where, path, name);
                if (name[0] == '\0' || strchr(name, '=') != NULL)
                        return cfg_error(p, where,
                                         "variable names must be non-empty and without \"=\"");
                if (!json_is_string(value))
                        return cfg_error(p, where, "expected a string, got %s",
                                         util_json_kind(value));
        }
        agent->env = json_incref(v);
        return 0;
}

static int parse_limits(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct agent_def *agent = base;
        struct agent_limits scratch;
        char where[CFG_PATH_MAX];

        if (parse_object(p, v, path, limit_keys, &scratch) < 0)
                return -1;
        /* RLIMIT_CPU counts whole seconds: "1500ms" would silently mean 2s. */
        if (json_object_get(v, "cpu") != NULL && scratch.cpu_ms % 1000 != 0) {
                join_path(where, path, "cpu");
                return cfg_error(p, where,
                                 "expected whole seconds (the kernel counts CPU "
                                 "time in seconds), such as \"2s\"");
        }
        agent->limits = json_incref(v);
        return 0;
}

/* Builtins live in their own namespace so that a workflow always means the same agent. */
static int check_agent_name(struct cfg_parser *p, const char *name, const char *path)
{
        if (name[0] == '\0')
                return cfg_error(p, path, "agent names must not be empty");
        if (strncmp(name, "builtin:", 8) == 0)
                return cfg_error(
                    p, path, "names starting with \"builtin:\" are reserved for built-in agents");
        return 0;
}

static int parse_agents(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;
        char where[CFG_PATH_MAX];
        const char *name;
        json_t *def;

        if (!json_is_object(v))
                return cfg_error(p, path, "expected an object of agents, got %s",
                                 util_json_kind(v));
        cfg->agents = util_calloc(json_object_size(v), sizeof(*cfg->agents));
        json_object_foreach (v, name, def) {
                /* nagents counts the entry first so config_free() releases a partial one. */
                struct agent_def *agent = &cfg->agents[cfg->nagents++];

                join_path(where, path, name);
                agent->name = util_strdup(name);
                if (check_agent_name(p, name, where) < 0 ||
                    parse_object(p, def, where, agent_keys, agent) < 0)
                        return -1;
        }
        return 0;
}

static int agent_known_cb(const char *agent, void *ctx)
{
        return config_agent(ctx, agent) != NULL;
}

static int parse_workflows(struct cfg_parser *p, json_t *v, const char *path, void *base)
{
        struct config *cfg = base;
        char where[CFG_PATH_MAX], why[1024];
        const char *name;
        json_t *def;

        if (!json_is_object(v))
                return cfg_error(p, path, "expected an object of workflows, got %s",
                                 util_json_kind(v));
        cfg->workflows = util_calloc(json_object_size(v), sizeof(*cfg->workflows));
        json_object_foreach (v, name, def) {
                join_path(where, path, name);
                if (name[0] == '\0')
                        return cfg_error(p, where, "workflow names must not be empty");
                cfg->workflows[cfg->nworkflows] =
                    workflow_parse(name, def, where, agent_known_cb, cfg, why, sizeof(why));
                if (cfg->workflows[cfg->nworkflows] == NULL)
                        return cfg_error(p, "", "%s", why);
                cfg->nworkflows++;
        }
        return 0;
}

/* Checks between keys, once every key is read. */
static int check_consistency(struct cfg_parser *p)
{
        const struct config *cfg = p->cfg;
        char base[32];

        /* Changing only the group would leave chimerad root, which can change it back. */
        if (cfg->group != NULL && cfg->user == NULL)
                return cfg_error(p, "group",
                                 "needs \"user\" as well: chimerad changes its group "
                                 "only when it changes its user");
        if (cfg->retry_max_ms < cfg->retry_base_ms) {
                format_amount(KEY_DURATION, cfg->retry_base_ms, base, sizeof(base));
                return cfg_error(p, "retry.max", "expected a duration of at least retry.base (%s)",
                                 base);
        }
        return 0;
}

static struct config *config_new(const char *origin)
{
        struct config *cfg = util_calloc(1, sizeof(*cfg));

        cfg->path = util_strdup(origin);
        cfg->control_socket = util_strdup(CONFIG_DEFAULT_CONTROL_SOCKET);
        cfg->pool_size = 4;
        cfg->pool_max_tasks_per_worker = 0;
        cfg->pool_max_frame_size = 16 * MB;
        cfg->queues = util_calloc(2, sizeof(*cfg->queues));
        cfg->queues[0] = util_strdup("default");
        cfg->nqueues = 1;
        cfg->poll_interval_ms = 1000;
        cfg->lease_ms = 30 * 1000;
        cfg->shutdown_timeout_ms = 30 * 1000;
        cfg->retry_base_ms = 1000;
        cfg->retry_max_ms = 10 * 60 * 1000;
        cfg->breaker_failures = 5;
        cfg->breaker_cooldown_ms = 30 * 1000;
        cfg->retention_ms = 7LL * 24 * 3600 * 1000;
        cfg->log_level = LOG_LEVEL_INFO;
        cfg->log_format = LOG_FORMAT_TEXT;
        return cfg;
}

/* Turns a parsed document (borrowed) into a config, or NULL with the reason in err. */
static struct config *config_from_json(json_t *root, const char *origin, char *err, size_t errsz)
{
        struct config *cfg = config_new(origin);
        struct cfg_parser p = {cfg, origin, err, errsz};

        if (!json_is_object(root)) {
                cfg_error(&p, "", "expected a JSON object at the top level, got %s",
                          util_json_kind(root));
                goto fail;
        }
        if (parse_object(&p, root, "", top_keys, cfg) < 0 || check_consistency(&p) < 0)
                goto fail;
        return cfg;
fail:
        config_free(cfg);
        return NULL;
}

/* Duplicate keys are refused: with them, which value wins is a guess. */
static struct config *config_from_text(const char *text, size_t len, const char *origin, char *err,
                                       size_t errsz)
{
        struct config *cfg;
        json_error_t jerr;
        json_t *root;

        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL) {
                if (jerr.line > 0)
                        set_error(err, errsz, "%s:%d:%d: %s", origin, jerr.line, jerr.column,
                                  jerr.text);
                else
                        set_error(err, errsz, "%s: %s", origin, jerr.text);
                return NULL;
        }
        cfg = config_from_json(root, origin, err, errsz);
        json_decref(root);
        return cfg;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees; NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
        FILE *fp = fopen(path, "re");
        size_t cap = 0, n = 0, got;
        char *buf = NULL, *grown;
        int saved = 0;

        if (fp == NULL)
                return NULL;
        errno = 0;
        do {
                if (cap - n < 2) {
                        cap = cap != 0 ? cap * 2 : 8192;
                        /* Out of memory is fatal everywhere (see util_calloc). */
                        if ((grown = realloc(buf, cap)) == NULL)
                                fatal("%s: realloc", __func__);
                        buf = grown;
                }
                got = fread(buf + n, 1, cap - n - 1, fp);
                n += got;
        } while (got > 0);
        if (ferror(fp))
                saved = errno != 0 ? errno : EIO;
        fclose(fp);
        if (saved != 0) {
                free(buf);
                errno = saved;
                return NULL;
        }
        buf[n] = '\0';
        *len = n;
        return buf;
}

struct config *config_load(const char *path, char *err, size_t errsz)
{
        struct config *cfg;
        size_t len;
        char *text;

        if (path == NULL)
                path = CONFIG_DEFAULT_PATH;
        text = read_file(path, &len);
        if (text == NULL) {
                set_error(err, errsz, "%s: cannot read: %s", path, strerror(errno));
                return NULL;
        }
        cfg = config_from_text(text, len, path, err, errsz);
        free(text);
        return cfg;
}

struct config *config_parse_string(const char *text, const char *origin, char *err, size_t errsz)
{
        return config_parse_buffer(text, text != NULL ? strlen(text) : 0, origin, err, errsz);
}

struct config *config_parse_buffer(const char *text, size_t len, const char *origin, char *err,
                                   size_t errsz)
{
        if (origin == NULL)
                origin = "<string>";
        if (text == NULL) {
                set_error(err, errsz, "%s: no text given", origin);
                return NULL;
        }
        return config_from_text(text, len, origin, err, errsz);
}

static void agent_clear(struct agent_def *agent)
{
        free(agent->name);
        free_strv(agent->argv, agent->argc);
        json_decref(agent->env);
        free(agent->cwd);
        json_decref(agent->limits);
}

void config_free(struct config *cfg)
{
        if (cfg == NULL)
                return;
        for (size_t i = 0; i < cfg->nworkflows; i++)
                workflow_free(cfg->workflows[i]);
        free(cfg->workflows);
        for (size_t i = 0; i < cfg->nagents; i++)
                agent_clear(&cfg->agents[i]);
        free(cfg->agents);
        free_strv(cfg->queues, cfg->nqueues);
        free(cfg->http_token_file);
        free(cfg->http_listen);
        free(cfg->group);
        free(cfg->user);
        free(cfg->control_socket_group);
        free(cfg->control_socket);
        free(cfg->database);
        free(cfg->path);
        free(cfg);
}

const struct workflow *config_workflow(const struct config *cfg, const char *name)
{
        if (cfg == NULL || name == NULL)
                return NULL;
        for (size_t i = 0; i < cfg->nworkflows; i++)
                if (strcmp(cfg->workflows[i]->name, name) == 0)
                        return cfg->workflows[i];
        return NULL;
}

const struct agent_def *config_agent(const struct config *cfg, const char *name)
{
        if (cfg == NULL || name == NULL)
                return NULL;
        for (size_t i = 0; i < cfg->nagents; i++)
                if (strcmp(cfg->agents[i].name, name) == 0)
                        return &cfg->agents[i];
        return NULL;
}
