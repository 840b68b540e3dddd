/*
 * chimerad.h - the supervisor's data structures, shared by its subsystems.
 *
 * One process, one libevent loop.  struct supervisor is the root: it owns
 * the config, the two database connections (db.c), the queue logic built on them
 * (queue.c), the deletion of old finished tasks (retention.c), the worker
 * pool (pool.c) and the control socket (control.c).
 * Nothing here blocks; every wait is an event.
 */
#ifndef CHIMERA_CHIMERAD_H
#define CHIMERA_CHIMERAD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <jansson.h>

#include "jbuf.h"
#include "config.h"
#include "privsep.h"

struct db;
struct control;
struct breakers;
struct notify;
struct http;
struct cgroup;
struct retention;

enum sup_state {
        SUP_STARTING, /* waiting for the database and the schema check */
        SUP_RUNNING,  /* claiming and running tasks */
        SUP_DRAINING, /* SIGTERM: no new claims, running tasks finish */
        SUP_STOPPING, /* workers told to exit, last writes flushing */
};

/* A claimed task while this supervisor holds its lease. */
struct task {
        int64_t id;
        int attempt;
        char *workflow;
        char *trace_id;
        char *phase;        /* phase running now (from progress frames), or NULL */
        int64_t started_ms; /* monotonic, when it was handed to a worker */
        pid_t agent_pgid;   /* process group of the agent program running now, or 0 */
        int64_t timeout_ms; /* the workflow's task timeout, 0 for none */
};

enum worker_state {
        W_STARTING, /* forked, not yet sent its first heartbeat */
        W_IDLE,
        W_BUSY,
        W_STOPPING, /* sent shutdown, or killed: waiting for SIGCHLD */
        W_DEAD,     /* reaped; a respawn is scheduled */
};

struct worker {
        int slot;
        pid_t pid;
        int fd;                           /* our end of the socketpair, -1 when closed */
        struct event *read_ev, *write_ev; /* on fd while it is open */
        struct evbuffer *in, *out;        /* what was read, not yet decoded; not yet sent */
        enum worker_state state;
        struct task *task; /* owned; non-NULL only while W_BUSY or being killed */
        unsigned tasks_done;
        unsigned generation; /* the pool's generation when it was spawned */
        int64_t state_since_ms;
        int64_t spawned_ms;
        char *kill_reason; /* why we killed it, for the task's error; owned */
        bool requeue;      /* its task goes back uncharged (killed at shutdown_timeout) */
        struct event *respawn_ev;
        struct event *timeout_ev; /* the running task's workflow timeout */
        struct pool *pool;
};

struct pool {
        struct supervisor *sv;
        struct worker *workers;
        int size;
        char worker_path[4096 + 64];
        int crash_streak;    /* workers that died soon after start, in a row */
        unsigned generation; /* bumped by each reload; older workers are replaced */
        unsigned restarts;   /* respawns since start */
        struct jbuf frame;   /* body of the frame being handled */
        struct jbuf scratch; /* texts made from it */
};

/* Counters reported by status. */
/*
 * Counters since start, for status and /metrics.  The duration histogram
 * covers each attempt from hand-over to its worker until its result, in
 * the cumulative buckets Prometheus expects (le = STATS_BUCKETS_MS[i]).
 */
#define STATS_NBUCKETS 14
extern const int64_t STATS_BUCKETS_MS[STATS_NBUCKETS];

/* How agent runs end, as workers name them ("end"."cause"), for the metrics. */
#define STATS_NCAUSES 8
extern const char *const STATS_CAUSES[STATS_NCAUSES];

struct sup_stats {
        uint64_t claimed;
        uint64_t succeeded;
        uint64_t failed;
        uint64_t retried;  /* transient errors (a retry, or dead when attempts ran out) */
        uint64_t dead;     /* as reported back by the database */
        uint64_t deferred; /* waiting for an agent's circuit breaker */
        uint64_t duration_buckets[STATS_NBUCKETS];
        uint64_t duration_count;
        int64_t duration_sum_ms;
        /* Agent programs' runs, from phase_finished progress frames. */
        uint64_t agent_cpu_user_ms, agent_cpu_sys_ms, agent_wall_ms;
        uint64_t agent_ends[STATS_NCAUSES]; /* runs by how they ended */
};

/* Adds one attempt's duration to the histogram. */
void stats_observe_duration(struct sup_stats *st, int64_t ms);

/*
 * Counts one phase's agent run from the "usage" and "end" members of a
 * worker's "finished" progress frame (JSON texts, JTEXT_NONE when absent;
 * members of the wrong type or out of range are ignored).  Built-ins, which
 * have no "end", are not counted.
 */
void stats_observe_agent(struct sup_stats *st, struct jtext usage, struct jtext end);

struct supervisor {
        struct event_base *base;
        struct config *cfg; /* owned */
        const char *config_path;
        char id[37]; /* this run's uuid: lease owner and supervisors row */
        char host[256];
        enum sup_state state;
        int64_t started_ms;
        int exit_code;
        bool deregistered;

        struct pool pool;
        struct db *db;  /* claims, heartbeat, LISTEN (queue.c) */
        struct db *wdb; /* the writes of task updates, and the rest */
        struct control *control;
        struct queue *queue;
        struct breakers *breakers;
        struct notify *notify; /* owned by notify.c; NULL outside systemd */
        struct http *http;     /* NULL unless http.listen is set */
        struct cgroup *cgroup; /* the pool's cgroup sub-tree; NULL without delegation */
        struct retention *retention;
        struct privsep privsep; /* who chimerad runs as, and the socket's group */
        struct sup_stats stats;

        struct event *sig_term, *sig_int, *sig_hup, *sig_chld;
        struct event *shutdown_timer;
};

/* supervisor-wide actions (chimerad.c) */
void supervisor_maybe_finish(struct supervisor *sv);

/*
 * Reads the config file again and applies it (SIGHUP, `chimera-ctl
 * reload`).  Returns 0, or -1 with the reason in err when the new config
 * does not load; the running one then stays.
 */
int supervisor_reload(struct supervisor *sv, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/* Starts draining for exit, as SIGTERM does. */
void supervisor_drain(struct supervisor *sv);
const char *supervisor_state_name(enum sup_state state);

/* Whether both database connections are up; else the error of one that is not (borrowed). */
bool supervisor_db_up(const struct supervisor *sv);
const char *supervisor_db_error(const struct supervisor *sv);

/* pool.c: the pre-forked workers. */
int pool_start(struct pool *pool, struct supervisor *sv) __attribute__((warn_unused_result));
int pool_idle_count(const struct pool *pool);
int pool_busy_count(const struct pool *pool);
/* Hands task (ownership passes) and its frame text (borrowed) to an idle worker. */
int pool_dispatch(struct pool *pool, struct task *task, const char *frame, size_t len)
    __attribute__((warn_unused_result));
void pool_reap_cb(evutil_socket_t sig, short events, void *arg);
void pool_shutdown(struct pool *pool);
/* The config was reloaded: replace every worker, idle ones now, busy ones after their task. */
void pool_reconfigure(struct pool *pool);
void pool_kill_busy(struct pool *pool, const char *reason);
bool pool_all_exited(const struct pool *pool);
void pool_free(struct pool *pool);
json_t *pool_status_json(const struct pool *pool);
/* Ids of tasks on workers, appended to arr (for lease renewal). */
void pool_held_ids(const struct pool *pool, json_t *arr);

/*
 * Cancels task task_id if a worker of this pool runs it (chimera-ctl
 * cancel): records the attempt's outcome as "cancelled" (a fenced write:
 * final, never retried), kills the agent's process group and the worker,
 * which is replaced as after any death.  Returns 0, or -1 when no worker
 * here holds the task (it runs elsewhere, or its outcome is already on its
 * way to the database).
 */
int pool_cancel_task(struct pool *pool, int64_t task_id) __attribute__((warn_unused_result));

void task_free(struct task *task);

#endif
