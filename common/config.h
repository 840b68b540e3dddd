/*
 * config.h - chimerad's configuration: one JSON file, read by chimerad,
 * chimera-ctl and the tests alike.
 *
 * Every key has a default (listed below and in the README); unknown keys and
 * wrong types are errors whose message names the key path, e.g.
 *   /etc/chimera/chimerad.json: pool.size: expected an integer from 1 to 1024
 * Durations are strings with a unit ("200ms", "20s", "5m", "1h"); sizes
 * likewise ("64MB").  A loaded config is immutable: a reload builds a new
 * one and swaps it in whole.
 */
#ifndef CHIMERA_CONFIG_H
#define CHIMERA_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "log.h"
#include "workflow.h"

#define CONFIG_DEFAULT_PATH           "/etc/chimera/chimerad.json"
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/chimera/ctl.sock"

struct agent_def {
        char *name;
        char **argv; /* NULL-terminated, at least one element */
        size_t argc;
        json_t *env; /* owned: object of string values, or NULL */
        char *cwd;   /* or NULL */
        json_t
            *limits; /* owned: object as given (memory, cpu, files, processes, output), or NULL */
};

struct config {
        char *path;                 /* where it was read from ("<string>" for tests) */
        char *database;             /* "database"; NULL: CHIMERA_DATABASE_URL, then PG* variables */
        char *control_socket;       /* "control_socket", default CONFIG_DEFAULT_CONTROL_SOCKET */
        char *control_socket_group; /* "control_socket_group": the socket's group, default
                                       NULL = the group chimerad runs as */
        char *user;  /* "user": started as root, chimerad becomes this user; NULL = stays */
        char *group; /* "group" (needs "user"): instead of the user's primary group */

        int pool_size;                 /* "pool.size", default 4, 1..1024 */
        int pool_max_tasks_per_worker; /* "pool.max_tasks_per_worker", default 0 = no limit */
        int64_t pool_max_frame_size;   /* "pool.max_frame_size", default "16MB", 4KB..1GB */
        int64_t pool_max_worker_rss;   /* "pool.max_worker_rss", default 0 = no limit */
        int pool_prefetch; /* "pool.prefetch": tasks claimed ahead of free workers, default 0 */

        char **queues; /* "queues": array of names, default ["default"]; never empty */
        size_t nqueues;

        int64_t poll_interval_ms;    /* "poll_interval", default "1s" */
        int64_t lease_ms;            /* "lease", default "30s" */
        int64_t shutdown_timeout_ms; /* "shutdown_timeout", default "30s" */
        int64_t retry_base_ms;       /* "retry.base", default "1s" */
        int64_t retry_max_ms;        /* "retry.max", default "10m" */
        int retry_max_attempts;      /* "retry.max_attempts": what chimera-ctl submit and
                                        POST /api/tasks give a task that names none;
                                        default 0 = the table's default (3) */
        int64_t retention_ms;        /* "retention", default "7d" */
        int breaker_failures;        /* "circuit_breaker.failures", default 5; 0 = off */
        int64_t breaker_cooldown_ms; /* "circuit_breaker.cooldown", default "30s" */

        char *http_listen;     /* "http.listen", "HOST:PORT", default NULL = off */
        char *http_token_file; /* "http.token_file", default NULL */

        enum log_level log_level;   /* "log.level", default info */
        enum log_format log_format; /* "log.format", "text" (default) or "json" */

        struct agent_def *agents; /* "agents": name -> {argv, env, cwd, limits} */
        size_t nagents;
        struct workflow **workflows; /* "workflows": name -> definition */
        size_t nworkflows;
};

/*
 * Reads and validates the file at path.  Returns a new config (free with
 * config_free()) or NULL with "path: key.path: reason" in err, valid UTF-8
 * whatever the file held.
 */
struct config *config_load(const char *path, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * Validates a JSON text; origin names it in messages.  Same contract as
 * config_load().
 */
struct config *config_parse_string(const char *text, const char *origin, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * Validates len bytes of JSON text (not NUL-terminated; a NUL byte inside
 * is read as config_load() reads a file holding one).  Same contract as
 * config_parse_string().
 */
struct config *config_parse_buffer(const char *text, size_t len, const char *origin, char *err,
                                   size_t errsz) __attribute__((warn_unused_result));

void config_free(struct config *cfg);

/* Lookups by name; NULL when absent.  Results are borrowed from cfg. */
const struct workflow *config_workflow(const struct config *cfg, const char *name);
const struct agent_def *config_agent(const struct config *cfg, const char *name);

#endif
