/*
 * chimerad.c - the supervisor: options, start-up, signals and shutdown.
 *
 * Start-up order: config, control socket (so that a second chimerad fails
 * early and clearly), HTTP listener, cgroup tree; then, everything that
 * may need root being open, the drop to the service user (privsep.c);
 * then workers, and the database in the background.  The supervisor is
 * RUNNING once the database answers and its schema is current (queue.c);
 * until then workers wait idle.
 *
 * SIGTERM/SIGINT drain: no new claims; running tasks finish; idle workers
 * are told to exit; after shutdown_timeout the busy ones are killed and
 * their tasks requeued without charging an attempt.  The loop ends once
 * every worker has exited and every write has reached the database (or
 * the database is gone: then the leases expire and another supervisor, or
 * the next run, requeues those tasks).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "breaker.h"
#include "cgroup.h"
#include "chimerad.h"
#include "control.h"
#include "db.h"
#include "http.h"
#include "jscan.h"
#include "notify.h"
#include "log.h"
#include "migrate.h"
#include "privsep.h"
#include "queue.h"
#include "retention.h"
#include "util.h"

#define DRAIN_DB_GRACE_MS 5000

static void usage(FILE *out)
{
        fprintf(out,
                "usage: chimerad [-c FILE] [--check-config | --migrate]\n"
                "\n"
                "Runs chimera's supervisor: claims tasks from chimera.tasks in PostgreSQL\n"
                "and runs their workflows in a pool of pre-forked worker processes.\n"
                "\n"
                "  -c, --config FILE   configuration file (default %s)\n"
                "      --check-config  validate the configuration and exit\n"
                "      --migrate       create or upgrade the database schema and exit\n"
                "  -h, --help          show this help and exit\n"
                "      --version       show the version and exit\n"
                "\n"
                "The database is the config's \"database\" key, else CHIMERA_DATABASE_URL,\n"
                "else libpq's PG* environment variables.  Signals: TERM or INT drain and\n"
                "exit 0.  Exit status: 0 on success, 1 on an error, 2 on a usage error.\n",
                CONFIG_DEFAULT_PATH);
}

const int64_t STATS_BUCKETS_MS[STATS_NBUCKETS] = {5,    10,   25,   50,    100,   250,   500,
                                                  1000, 2500, 5000, 10000, 30000, 60000, 300000};

void stats_observe_duration(struct sup_stats *st, int64_t ms)
{
        for (int i = 0; i < STATS_NBUCKETS; i++)
                if (ms <= STATS_BUCKETS_MS[i])
                        st->duration_buckets[i]++;
        st->duration_count++;
        st->duration_sum_ms += ms;
}

const char *const STATS_CAUSES[STATS_NCAUSES] = {
    "exit",         "signal",       "start_failed", "timeout",
    "output_limit", "memory_limit", "cpu_limit",    "process_limit",
};

/* A non-negative integer member of obj, else 0: workers' numbers are not trusted. */
static uint64_t stats_member(struct jtext obj, const char *key)
{
        json_type type;
        struct jtext v = jscan_get(obj, key, &type);
        int64_t n = v.p != NULL && type == JSON_INTEGER ? jtext_int(v) : 0;

        return n > 0 ? (uint64_t)n : 0;
}

void stats_observe_agent(struct sup_stats *st, struct jtext usage, struct jtext end)
{
        struct jtext cause;

        if (end.p == NULL)
                return;
        cause = jscan_get(end, "cause", NULL);
        for (int i = 0; i < STATS_NCAUSES; i++) {
                if (jtext_streq(cause, STATS_CAUSES[i]))
                        st->agent_ends[i]++;
        }
        st->agent_cpu_user_ms += stats_member(usage, "cpu_user_ms");
        st->agent_cpu_sys_ms += stats_member(usage, "cpu_sys_ms");
        st->agent_wall_ms += stats_member(usage, "wall_ms");
}

const char *supervisor_state_name(enum sup_state state)
{
        static const char *const names[] = {"starting", "running", "draining", "stopping"};
        return names[state];
}

bool supervisor_db_up(const struct supervisor *sv)
{
        return sv->db != NULL && db_is_up(sv->db) && sv->wdb != NULL && db_is_up(sv->wdb);
}

const char *supervisor_db_error(const struct supervisor *sv)
{
        if (sv->db != NULL && !db_is_up(sv->db))
                return db_last_error(sv->db);
        return sv->wdb != NULL && !db_is_up(sv->wdb) ? db_last_error(sv->wdb) : "";
}

/* A statement unanswered for a lease is a dead connection: by then our
 * leases are lapsing anyway, and the results wait in memory. */
static void set_db_timeouts(struct supervisor *sv)
{
        db_set_timeout(sv->db, sv->cfg->lease_ms);
        db_set_timeout(sv->wdb, sv->cfg->lease_ms);
}

static const char *database_conninfo(const struct config *cfg)
{
        const char *env = getenv("CHIMERA_DATABASE_URL");

        if (cfg->database != NULL)
                return cfg->database;
        return env != NULL ? env : "";
}

static void make_id(char out[37])
{
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != sizeof(b))
                fatal("%s: getrandom", __func__);
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
}

/*
 * Moves a draining supervisor on once its tasks are done, and ends the loop
 * once every worker has exited and the last writes and the removal of our
 * supervisors row have reached the database.  While the database is down
 * it waits, at most DRAIN_DB_GRACE_MS, for it to come back.
 */
void supervisor_maybe_finish(struct supervisor *sv)
{
        if (sv->state == SUP_DRAINING && pool_busy_count(&sv->pool) == 0) {
                struct timeval grace = {DRAIN_DB_GRACE_MS / 1000, 0};
                sv->state = SUP_STOPPING;
                log_info("all tasks finished; stopping workers");
                evtimer_add(sv->shutdown_timer, &grace);
        }
        if (sv->state != SUP_STOPPING)
                return;
        pool_shutdown(&sv->pool);
        if (!pool_all_exited(&sv->pool) || !queue_quiet(sv->queue) ||
            !retention_quiet(sv->retention) || !db_is_up(sv->wdb))
                return;
        if (!sv->deregistered) {
                sv->deregistered = true;
                queue_deregister(sv->queue);
                if (!queue_quiet(sv->queue))
                        return;
        }
        event_base_loopexit(sv->base, NULL);
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
        struct supervisor *sv = arg;

        if (sv->state == SUP_DRAINING) {
                log_warnx("shutdown_timeout reached with %d tasks running: stopping them; they "
                          "go back to the queue without using an attempt",
                          pool_busy_count(&sv->pool));
                pool_kill_busy(&sv->pool, "was stopped at shutdown_timeout");
                return;
        }
        /* Still stopping: the database has not taken the last writes. */
        log_warnx("exiting with %u database statements unwritten; the affected tasks are "
                  "requeued when their leases expire",
                  db_pending(sv->db) + db_pending(sv->wdb));
        event_base_loopexit(sv->base, NULL);
}

void supervisor_drain(struct supervisor *sv)
{
        struct timeval tv;
        int64_t ms = sv->cfg->shutdown_timeout_ms;

        if (sv->state >= SUP_DRAINING) {
                log_info("already stopping");
                return;
        }
        log_info("draining (%d tasks running, shutdown_timeout %lld ms)",
                 pool_busy_count(&sv->pool), (long long)ms);
        notify_stopping(sv);
        sv->state = SUP_DRAINING;
        queue_release_ready(sv->queue, "the supervisor is stopping");
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
        evtimer_add(sv->shutdown_timer, &tv);
        supervisor_maybe_finish(sv);
}

static void terminate_cb(evutil_socket_t sig, short what, void *arg)
{
        log_info("signal %d (%s)", (int)sig, strsignal((int)sig));
        supervisor_drain(arg);
}

/* Keeps the running value (NULL or not) of a string setting a reload cannot change. */
static void keep_string(const char *key, const char *running, char **value)
{
        if ((running == NULL) == (*value == NULL) &&
            (running == NULL || strcmp(running, *value) == 0))
                return;
        log_warnx("reload: %s changed; restart chimerad to apply it", key);
        free(*value);
        *value = util_strdup(running);
}

/*
 * Settings a reload cannot change: they are bound to what is already open
 * (the socket, the connection, the worker slots).  The new config keeps the
 * running values, with a warning, rather than being refused whole.
 */
static void keep_fixed_settings(const struct config *old, struct config *cfg)
{
        keep_string("control_socket", old->control_socket, &cfg->control_socket);
        keep_string("database", old->database, &cfg->database);
        /* The accounts: the drop is done and cannot be undone, the socket is owned. */
        keep_string("user", old->user, &cfg->user);
        keep_string("group", old->group, &cfg->group);
        keep_string("control_socket_group", old->control_socket_group, &cfg->control_socket_group);
        /* The listener is bound and the token read at start (http.c). */
        keep_string("http.listen", old->http_listen, &cfg->http_listen);
        keep_string("http.token_file", old->http_token_file, &cfg->http_token_file);
        if (old->pool_size != cfg->pool_size) {
                log_warnx("reload: pool.size changed; restart chimerad to apply it");
                cfg->pool_size = old->pool_size;
        }
}

int supervisor_reload(struct supervisor *sv, char *err, size_t errsz)
{
        struct config *cfg, *old = sv->cfg;

        notify_reloading(sv);
        cfg = config_load(sv->config_path, err, errsz);
        if (cfg == NULL) {
                notify_ready(sv);
                return -1;
        }
        keep_fixed_settings(old, cfg);
        sv->cfg = cfg;
        log_init("chimerad", cfg->log_level, cfg->log_format);
        set_db_timeouts(sv);
        queue_reconfigure(sv->queue);
        retention_reconfigure(sv->retention);
        pool_reconfigure(&sv->pool);
        cgroup_check_config(sv->cgroup, cfg);
        config_free(old);
        log_info("configuration reloaded from %s (%zu workflows, %zu agents)", sv->config_path,
                 cfg->nworkflows, cfg->nagents);
        notify_ready(sv);
        return 0;
}

/*
 * SIGHUP: reads the config again.  A config that does not load is refused
 * with a log line and the running one stays; a good one replaces it at
 * once for everything claimed from now on, and the workers are replaced
 * one by one as they finish their current task.
 */
static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
        char err[1024];

        if (supervisor_reload(arg, err, sizeof(err)) < 0)
                log_warnx("SIGHUP: keeping the running configuration: %s", err);
}

static void database_state_cb(bool up, void *arg)
{
        struct supervisor *sv = arg;

        queue_db_state(sv->queue, up);
        supervisor_maybe_finish(sv);
}

static void write_database_state_cb(bool up, void *arg)
{
        struct supervisor *sv = arg;

        queue_write_db_state(sv->queue, up);
        retention_db_state(sv->retention, up);
        supervisor_maybe_finish(sv);
}

static void database_notify_cb(const char *payload, void *arg)
{
        struct supervisor *sv = arg;

        queue_notified(sv->queue);
}

static struct event *add_signal(struct supervisor *sv, int sig, event_callback_fn cb)
{
        struct event *ev = evsignal_new(sv->base, sig, cb, sv);

        if (ev == NULL || event_add(ev, NULL) < 0)
                fatalx("%s: cannot watch signal %d", __func__, sig);
        return ev;
}

/*
 * Becomes the service user (privsep.c) once everything that may need root
 * is open: the control socket, the HTTP listener and token, the cgroup
 * tree, which is handed over first.  Says who chimerad runs as.  Returns
 * 0, or -1 after logging why chimerad must not go on.
 */
static int enter_service_user(struct supervisor *sv)
{
        const struct privsep *ps = &sv->privsep;
        char err[1024];

        if (ps->drop && sv->cgroup != NULL && cgroup_give(sv->cgroup, ps->uid, ps->gid) < 0) {
                cgroup_free(sv->cgroup);
                sv->cgroup = NULL;
        }
        if (privsep_enter(ps, err, sizeof(err)) < 0) {
                log_warnx("cannot drop root privileges: %s", err);
                return -1;
        }
        if (ps->drop)
                log_info("running as user %s, group %s", ps->user, ps->group);
        else if (geteuid() == 0)
                log_warnx("running as root, and so do the workers and their agents: set \"user\" "
                          "in %s to run them as a service user",
                          sv->config_path);
        else if (ps->not_root)
                log_warnx("not started as root: running as user %s, group %s, not as the "
                          "\"user\"/\"group\" of %s",
                          ps->user, ps->group, sv->config_path);
        if (access(sv->config_path, R_OK) < 0)
                log_warnx("%s cannot be read by user %s: reloads will fail", sv->config_path,
                          ps->user);
        return 0;
}

static int run(struct supervisor *sv)
{
        char *redacted, err[1024];

        /* Write batches and claim results are the only big buffers: give them back
         * to the system when freed (a fixed mmap threshold), so that a burst does
         * not leave the heap at its peak size for good. */
        mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        sv->base = event_base_new();
        if (sv->base == NULL)
                fatalx("event_base_new failed");
        signal(SIGPIPE, SIG_IGN);
        make_id(sv->id);
        if (gethostname(sv->host, sizeof(sv->host) - 1) < 0)
                snprintf(sv->host, sizeof(sv->host), "unknown");
        sv->started_ms = util_now_ms();
        sv->state = SUP_STARTING;
        sv->sig_term = add_signal(sv, SIGTERM, terminate_cb);
        sv->sig_int = add_signal(sv, SIGINT, terminate_cb);
        sv->sig_hup = add_signal(sv, SIGHUP, hup_cb);
        sv->sig_chld = add_signal(sv, SIGCHLD, pool_reap_cb);
        sv->shutdown_timer = evtimer_new(sv->base, shutdown_timeout_cb, sv);

        if (privsep_resolve(sv->cfg, &sv->privsep, err, sizeof(err)) < 0) {
                log_warnx("%s", err);
                return 1;
        }
        sv->control =
            control_new(sv, sv->cfg->control_socket, sv->privsep.uid, sv->privsep.socket_gid);
        if (sv->control == NULL)
                return 1;
        if (sv->cfg->http_listen != NULL && (sv->http = http_new(sv)) == NULL)
                return 1;
        notify_start(sv);
        /* One connection for claims and the heartbeat, one for the writes of
         * task updates and the rest, so that the server works on both at once;
         * the claims' is planned once, generically (queue.c says why). */
        sv->db = db_new(sv->base, "claims", database_conninfo(sv->cfg), "chimera_tasks",
                        database_state_cb, database_notify_cb, sv);
        db_set_session_sql(sv->db, "SET plan_cache_mode = force_generic_plan; SET jit = off");
        sv->wdb = db_new(sv->base, "writes", database_conninfo(sv->cfg), NULL,
                         write_database_state_cb, NULL, sv);
        /* Short statements all: compiling one (past jit_above_cost, which a generic
         * plan's estimates over a large backlog reach) costs more than it saves. */
        db_set_session_sql(sv->wdb, "SET jit = off");
        set_db_timeouts(sv);
        sv->queue = queue_new(sv);
        sv->retention = retention_new(sv);
        sv->breakers = breakers_new();
        sv->cgroup = cgroup_setup(sv->cfg->pool_size);
        if (enter_service_user(sv) < 0)
                return 1;
        cgroup_check_config(sv->cgroup, sv->cfg);
        if (pool_start(&sv->pool, sv) < 0)
                fatalx("cannot start the worker pool");
        redacted = db_redact(database_conninfo(sv->cfg));
        log_info("chimerad %s starting as %s on %s; database: %s", CHIMERA_VERSION, sv->id,
                 sv->host, *redacted ? redacted : "(from PG* environment)");
        free(redacted);
        db_start(sv->db);
        db_start(sv->wdb);

        event_base_dispatch(sv->base);

        if (sv->db != NULL && db_is_up(sv->db))
                log_info("chimerad stopped");
        return sv->exit_code;
}

static void supervisor_free(struct supervisor *sv)
{
        notify_stop(sv);
        http_free(sv->http);
        pool_free(&sv->pool);
        cgroup_free(sv->cgroup);
        queue_free(sv->queue);
        retention_free(sv->retention);
        breakers_free(sv->breakers);
        db_free(sv->db);
        db_free(sv->wdb);
        control_free(sv->control);
        if (sv->sig_term != NULL) {
                event_free(sv->sig_term);
                event_free(sv->sig_int);
                event_free(sv->sig_hup);
                event_free(sv->sig_chld);
                event_free(sv->shutdown_timer);
        }
        if (sv->base != NULL)
                event_base_free(sv->base);
        config_free(sv->cfg);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
            {"migrate", no_argument, NULL, 'M'},      {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
        };
        struct supervisor sv = {0};
        const char *path = CONFIG_DEFAULT_PATH;
        int check = 0, migrate = 0, config_given = 0, c, rc;
        char err[1024];

        log_init("chimerad", LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        path = optarg;
                        config_given = 1;
                        break;
                case 'C':
                        check = 1;
                        break;
                case 'M':
                        migrate = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("chimerad %s\n", CHIMERA_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "chimerad: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        /* --migrate needs only a database: without a config file it takes the
         * connection from the environment. */
        if (migrate && !config_given && access(path, F_OK) < 0)
                sv.cfg = config_parse_string("{}", "(defaults)", err, sizeof(err));
        else
                sv.cfg = config_load(path, err, sizeof(err));
        if (sv.cfg == NULL) {
                fprintf(stderr, "chimerad: %s\n", err);
                return 1;
        }
        sv.config_path = path;
        if (check && privsep_resolve(sv.cfg, &sv.privsep, err, sizeof(err)) < 0) {
                fprintf(stderr, "chimerad: %s\n", err);
                config_free(sv.cfg);
                return 1;
        }
        if (check) {
                printf("%s: configuration OK (%zu workflows, %zu agents, pool of %d)\n", path,
                       sv.cfg->nworkflows, sv.cfg->nagents, sv.cfg->pool_size);
                config_free(sv.cfg);
                return 0;
        }
        if (migrate) {
                rc = migrate_run(database_conninfo(sv.cfg), err, sizeof(err));
                if (rc < 0)
                        fprintf(stderr, "chimerad: %s\n", err);
                config_free(sv.cfg);
                return rc < 0 ? 1 : 0;
        }
        log_init("chimerad", sv.cfg->log_level, sv.cfg->log_format);
        srandom((unsigned)time(NULL) ^ (unsigned)getpid());
        rc = run(&sv);
        supervisor_free(&sv);
        return rc;
}
