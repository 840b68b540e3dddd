/*
 * queue.c - claiming tasks and writing what happens to them.
 *
 * Claims: one statement takes as many queued rows as there are idle
 * workers (FOR UPDATE SKIP LOCKED, so supervisors never claim the same row),
 * marks them running under this supervisor's lease and appends their
 * "claimed" events.  A claim runs when a worker frees up, a NOTIFY arrives
 * or the poll timer fires; after a claim that came back short the queue is
 * taken as empty until the next NOTIFY or poll, so idle workers do not make
 * the supervisor hammer an empty table.
 *
 * Writes: checkpoints, phase events and outcomes are collected per task
 * attempt as "ops" and written in one statement per batch; ops that arrive
 * while a batch is in flight form the next batch (group commit).  Every
 * write is fenced: it applies only while the row is running under our lease
 * and the attempt we claimed, so a supervisor that lost a lease cannot
 * overwrite a newer attempt.  A batch lost with the connection is merged
 * back and written again after reconnecting; being fenced, it is idempotent.
 *
 * Heartbeat: every lease/3 one statement upserts our chimera.supervisors
 * row, renews the leases of the tasks we hold and requeues (or kills, when
 * attempts are used up) tasks whose lease expired under any other owner or
 * under us without our holding them any more.
 *
 * Two connections, so that the server works on a claim and a write at
 * once.  sv->db runs the claims and the heartbeat (their order matters: the
 * first heartbeat after a reconnect requeues rows leased to us that we do
 * not hold, which a claim in flight must not be), sv->wdb the writes and
 * everything else (retention, counts, HTTP submissions, deregistering).
 * With so few statements, sv->db plans them once, generically
 * (plan_cache_mode, checked for both), instead of at every claim, which is
 * on the path of every task's pickup.  Writes and claims touch different
 * rows (running ones of ours, queued ones); the heartbeat's lease renewal
 * skips rows a write holds locked.  A claim that depends on a write
 * (pool.prefetch 0: a worker's next task after its last outcome) waits
 * for that write's answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "breaker.h"
#include "db.h"
#include "frame.h"
#include "notify.h"
#include "log.h"
#include "migrate.h"
#include "pgarray.h"
#include "queue.h"
#include "util.h"

/*
 * What is to be written for one task attempt ("op"): its events in order,
 * its latest checkpoint and its outcome.  The events are records packed one
 * after the other (struct event_head, then kind and phase NUL-terminated,
 * then detail's JSON text), so that merging two ops is appending bytes.
 */
struct op {
        int64_t id;
        int attempt;
        char status[12];        /* "running" until an outcome is recorded */
        char *state;            /* checkpoint as JSON text (owned), or NULL */
        char *result;           /* result as JSON text (owned), or NULL */
        char *error;            /* plain text (owned), or NULL */
        int64_t delay_ms;       /* before a retry or deferral; -1: none */
        struct jbuf events;     /* event records, oldest first */
        struct op *prev, *next; /* in its list */
        struct op *hnext;       /* in its by_key chain, while pending */
};

struct event_head {
        int64_t at_us;      /* CLOCK_REALTIME, when chimerad heard of it */
        uint32_t kind_len;  /* with its NUL */
        uint32_t phase_len; /* with its NUL; 0: no phase */
        uint32_t detail_len;
        bool detail; /* detail_len bytes of JSON follow; else none */
};

struct oplist {
        struct op *head, *tail;
        size_t len;
};

#define OP_BUCKETS 1024

/* WRITE_SQL's parameters: the supervisor's id and its arrays (binary). */
#define WRITE_NARRAYS 12
#define WRITE_NPARAMS (WRITE_NARRAYS + 1)

struct queue {
        struct supervisor *sv;
        bool registered;
        bool claim_inflight;
        bool notified_during_claim;
        int claim_asked;
        bool maybe_empty;
        bool write_inflight;
        bool heartbeat_inflight;
        bool recover;                  /* next heartbeat requeues claims lost with a connection */
        struct oplist pending;         /* ops not yet written, oldest first */
        struct op *by_key[OP_BUCKETS]; /* the pending ops by task attempt */
        int pending_outcomes;          /* pending ops with an outcome ("running" is none) */
        struct oplist inflight;        /* the batch being written */
        int inflight_outcomes;         /* its ops with an outcome */
        struct pgarray batch[WRITE_NARRAYS]; /* its parameters (lent to sv->wdb until
                                              * write_cb); the memory is kept */
        struct event *poll_ev, *heartbeat_ev;
        struct event *flush_ev; /* a delayed write is due (WRITE_DELAY_MS) */
        bool flush_due;
        char **def_texts;   /* compact JSON of each config workflow's definition */
        char **agent_texts; /* compact JSON of the agents each workflow uses */
        char *queues_literal;
        unsigned nbusy_statements;
        /* Tasks claimed ahead of free workers (pool.prefetch), in claim order:
         * a ring of ready_cap slots, ready_len of them used from ready_head. */
        struct ready {
                struct task *task;
                char *frame;
                size_t len;
                int64_t claimed_ms; /* monotonic */
        } * ready;
        size_t ready_head, ready_len, ready_cap;
        int64_t heartbeat_sent_ms; /* of the heartbeat in flight */
        int64_t renewed_ms;        /* when the last successful heartbeat was sent */
};

/*
 * The claim.  Each served queue is scanned on its own (a LATERAL subquery
 * with a scalar "queue = name"), so that every scan walks tasks_claim_idx
 * (queue, priority DESC, run_at, id) in claim order and stops after $4 rows,
 * however many are queued: an "= ANY(array)" condition could not use the
 * index's order and would sort the whole backlog.  Paused queues are
 * dropped before any scan.  With several queues, up to $4 rows are locked
 * per queue and the best $4 of them claimed; the others are only unlocked
 * at commit.  The chosen ids are updated through "id = ANY(ARRAY(...))", an
 * index lookup each whatever $4 is: the claim runs with a generic plan
 * (sv->db's plan_cache_mode), which knows $4 only as a parameter, and a
 * join would be planned for a tenth of the table.  The rows come back in
 * claim order.
 *
 * A supervisor that serves one queue (most do: "queues" defaults to
 * ["default"]) claims with CLAIM_ONE_SQL instead: the same rows in the
 * same order from one scan of that queue ($3 its name), without the
 * unnest, the join and the second sort, and with the paused check a
 * one-time filter.  Its plan has half the nodes, and setting them up at
 * each execution is a good part of a claim for one task: on the bench
 * machine a pickup about 80 us sooner at the median, and drains 3 % faster.
 * Both set the same columns and return the same ones, spelled out in each
 * (bench/run.sh reads CLAIM_ONE_SQL's text from this file): change them
 * together.
 */
/*
 * Most task updates written by one statement.  Claims stop while
 * WRITE_LAG_MAX more wait behind the statement in flight: memory for
 * what is not written yet stays bounded, and so does the work a crash
 * would have run again.  At the highest rates the writes are the slower
 * path; a second batch waiting, rather than one, keeps the claims going
 * through the moments a write takes longer.
 */
#define WRITE_BATCH_MAX 256
#define WRITE_LAG_MAX   (2 * WRITE_BATCH_MAX)

/*
 * With pool.prefetch, claims do not wait for outcomes, so a write may wait
 * a little for company: up to WRITE_DELAY_MS, or until WRITE_BATCH_MIN
 * updates are pending.  Each statement costs the server a commit and a few
 * hundred microseconds whatever its size; at a thousand agent runs a second
 * that made it one statement per task.  At 20 ms rather than 5, a drain of
 * agent programs (2,000 a second) writes 40 tasks a statement instead of
 * 14: PostgreSQL 62-66 us a task instead of 72-74.  An outcome shows in
 * the table that much later; nothing waits for it in the meantime.  When
 * every worker is idle and nothing is claimed ahead, no company is coming:
 * the write goes at once (queue_kick()), not into the next task's claim.
 */
#define WRITE_DELAY_MS  20
#define WRITE_BATCH_MIN 64

static const char CLAIM_SQL[] =
    "WITH c AS ("
    " UPDATE chimera.tasks t"
    "    SET status = 'running', attempts = t.attempts + 1, lease_owner = $1::uuid,"
    "        lease_expires_at = now() + $2::bigint * interval '1 millisecond',"
    "        started_at = now()"
    "  WHERE t.id = ANY(ARRAY("
    "         SELECT s.id FROM unnest($3::text[]) AS qn(name)"
    "         CROSS JOIN LATERAL ("
    "           SELECT id, priority, run_at FROM chimera.tasks"
    "            WHERE status = 'queued' AND queue = qn.name AND run_at <= now()"
    "            ORDER BY priority DESC, run_at, id"
    "            LIMIT $4::int"
    "            FOR UPDATE SKIP LOCKED) s"
    "          WHERE qn.name NOT IN (SELECT name FROM chimera.queues WHERE paused)"
    "          ORDER BY s.priority DESC, s.run_at, s.id"
    "          LIMIT $4::int))"
    "  RETURNING t.id, t.attempts, t.workflow, t.payload, t.trace_id, t.state, t.queue,"
    "            t.priority, t.run_at"
    "), e AS ("
    /* The event's detail is built once per served queue, not once per row
     * (OFFSET 0: a subquery pulled up into the join would build it per row). */
    " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
    " SELECT c.id, c.attempts, 'claimed', d.detail"
    "   FROM c JOIN (SELECT qn.name, jsonb_build_object('supervisor', $1::text, 'host',"
    "                       $5::text, 'queue', qn.name) AS detail"
    "                  FROM unnest($3::text[]) AS qn(name) OFFSET 0) d ON d.name = c.queue"
    ")"
    "SELECT id, attempts, workflow, payload::text, trace_id::text,"
    "       coalesce(state::text, 'null') FROM c"
    " ORDER BY priority DESC, run_at, id";

static const char CLAIM_ONE_SQL[] =
    "WITH c AS ("
    " UPDATE chimera.tasks t"
    "    SET status = 'running', attempts = t.attempts + 1, lease_owner = $1::uuid,"
    "        lease_expires_at = now() + $2::bigint * interval '1 millisecond',"
    "        started_at = now()"
    "  WHERE t.id = ANY(ARRAY("
    "         SELECT id FROM chimera.tasks"
    "          WHERE status = 'queued' AND queue = $3::text AND run_at <= now()"
    "            AND NOT EXISTS (SELECT FROM chimera.queues WHERE name = $3::text AND paused)"
    "          ORDER BY priority DESC, run_at, id"
    "          LIMIT $4::int"
    "          FOR UPDATE SKIP LOCKED))"
    "  RETURNING t.id, t.attempts, t.workflow, t.payload, t.trace_id, t.state,"
    "            t.priority, t.run_at"
    "), e AS ("
    /* The detail once for the claim, not per row (OFFSET 0 keeps it apart). */
    " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
    " SELECT c.id, c.attempts, 'claimed', d.detail"
    "   FROM c CROSS JOIN (SELECT jsonb_build_object('supervisor', $1::text, 'host',"
    "                             $5::text, 'queue', $3::text) AS detail OFFSET 0) d"
    ")"
    "SELECT id, attempts, workflow, payload::text, trace_id::text,"
    "       coalesce(state::text, 'null') FROM c"
    " ORDER BY priority DESC, run_at, id";

/*
 * A batch of ops as arrays in the binary format, one element per op ($2 to
 * $8) and one per event ($9 to $13, $9 being the 1-based position of the
 * event's op): the server reads them without parsing anything but the JSON
 * of checkpoints, results and details.  The comment names the statement in
 * pg_stat_activity.
 *
 * The plan must look each op's row up by its key, whatever the statistics
 * say.  The ops' arrays reach unnest() through a sub-select (OFFSET 0 keeps
 * it one), so that no plan knows their size: custom plans, which would,
 * priced a batch against a scan of the table and chose it (22 ms for 256
 * ops instead of 3), or else looked cheaper than the generic plan, so that
 * the statement was planned again at every execution.  The fence's
 * "running" is a sub-select too, which the planner cannot match with
 * tasks_lease_idx's predicate: through that index (ANALYZE seldom sees a
 * running row, so it looks cheap) the plan read every running row for each
 * op.
 */
static const char WRITE_SQL[] =
    "/* chimerad write */ "
    "WITH o AS ("
    " SELECT o.* FROM (SELECT $2::bigint[] AS id, $3::int[] AS attempt, $4::text[] AS status,"
    "                         $5::jsonb[] AS state, $6::jsonb[] AS result, $7::text[] AS error,"
    "                         $8::bigint[] AS delay_ms OFFSET 0) a,"
    "      unnest(a.id, a.attempt, a.status, a.state, a.result, a.error, a.delay_ms)"
    "        WITH ORDINALITY AS o(id, attempt, status, state, result, error, delay_ms, n)"
    "), u AS ("
    /* The fence is part of the update's own condition, so that it is checked
     * again on the row's newest version should another statement change the
     * row while this one waits for it. */
    " UPDATE chimera.tasks t SET"
    "   status = CASE o.status"
    "     WHEN 'retry' THEN CASE WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'queued' END"
    "     WHEN 'requeue' THEN 'queued' WHEN 'defer' THEN 'queued' ELSE o.status END,"
    "   attempts = CASE WHEN o.status IN ('requeue', 'defer') THEN t.attempts - 1"
    "                   ELSE t.attempts END,"
    "   state = coalesce(o.state, t.state),"
    "   result = CASE WHEN o.status = 'succeeded' THEN o.result ELSE t.result END,"
    "   last_error = CASE WHEN o.status IN ('failed', 'retry', 'defer') THEN o.error"
    "                     WHEN o.status = 'succeeded' THEN NULL ELSE t.last_error END,"
    "   run_at = CASE WHEN o.status IN ('retry', 'defer')"
    "                 THEN now() + o.delay_ms * interval '1 millisecond'"
    "                 WHEN o.status = 'requeue' THEN now() ELSE t.run_at END,"
    "   finished_at = CASE WHEN o.status IN ('succeeded', 'failed', 'cancelled')"
    "                        OR (o.status = 'retry' AND t.attempts >= t.max_attempts)"
    "                      THEN now() ELSE t.finished_at END,"
    "   lease_owner = CASE WHEN o.status = 'running' THEN t.lease_owner END,"
    "   lease_expires_at = CASE WHEN o.status = 'running' THEN t.lease_expires_at END"
    "  FROM o"
    " WHERE t.id = o.id AND t.attempts = o.attempt AND t.lease_owner = $1::uuid"
    "   AND t.status = (SELECT 'running'::text)"
    "  RETURNING t.id, o.attempt, t.status, o.status AS op, o.error, o.delay_ms, o.n"
    "), ev AS ("
    " INSERT INTO chimera.task_events (task_id, attempt, kind, phase, detail, at)"
    /* In the order they happened, each task's events before its outcome's. */
    " SELECT * FROM ("
    "   SELECT u.id, u.attempt, e.kind, e.phase, e.detail, coalesce(e.at, clock_timestamp())"
    "     FROM unnest($9::int[], $10::text[], $11::text[], $12::jsonb[], $13::timestamptz[])"
    "          WITH ORDINALITY AS e(n, kind, phase, detail, at, k)"
    "     JOIN u ON u.n = e.n"
    "    ORDER BY e.k) pe"
    " UNION ALL"
    " SELECT u.id, u.attempt, CASE u.status WHEN 'queued' THEN 'retried' ELSE u.status END,"
    /* A success has nothing to say: spare most tasks building an object of nulls. */
    "        NULL, CASE WHEN u.op = 'succeeded' AND u.error IS NULL THEN '{}'::jsonb"
    "        ELSE jsonb_strip_nulls(jsonb_build_object('error', u.error,"
    "          'by', CASE WHEN u.op = 'cancelled' THEN 'chimera-ctl' END,"
    "          'previous_status', CASE WHEN u.op = 'cancelled' THEN 'running' END,"
    "          'retry_in_ms', CASE WHEN u.op IN ('retry', 'defer') AND u.status = 'queued'"
    "                              THEN u.delay_ms END,"
    "          'charged', CASE WHEN u.op IN ('requeue', 'defer') THEN false END)) END,"
    "        clock_timestamp()"
    "   FROM u WHERE u.status <> 'running'"
    ")"
    "SELECT id, attempt, status FROM u";

static const char HEARTBEAT_SQL[] =
    "WITH s AS ("
    " INSERT INTO chimera.supervisors AS s (id, host, pid, pool_size, version, queues)"
    " VALUES ($1::uuid, $2, $3::int, $4::int, $5, $6::text[])"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), pool_size = excluded.pool_size,"
    "   queues = excluded.queues"
    "), held AS ("
    " SELECT (jsonb_array_elements_text($8::jsonb))::bigint AS id"
    "), l AS ("
    /* Rows that our write connection holds locked are skipped, not waited for:
     * that write ends them, and two statements locking the same rows in their
     * own orders could deadlock. */
    " UPDATE chimera.tasks t"
    "    SET lease_expires_at = now() + $7::bigint * interval '1 millisecond'"
    "  WHERE t.id IN (SELECT id FROM chimera.tasks"
    "                  WHERE lease_owner = $1::uuid AND status = 'running'"
    "                    AND id IN (SELECT id FROM held)"
    "                  FOR UPDATE SKIP LOCKED)"
    "), x AS ("
    " SELECT id, lease_owner FROM chimera.tasks"
    "  WHERE status = 'running' AND lease_expires_at < now()"
    "    AND NOT (lease_owner IS NOT DISTINCT FROM $1::uuid"
    "             AND ($9::boolean OR id IN (SELECT id FROM held)))"
    "  ORDER BY lease_expires_at LIMIT 100"
    "  FOR UPDATE SKIP LOCKED"
    "), r AS ("
    " UPDATE chimera.tasks t SET"
    "   status = CASE WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'queued' END,"
    "   last_error = 'lease expired: supervisor ' || coalesce(x.lease_owner::text, '?')"
    "                || ' stopped renewing it',"
    "   run_at = now(), lease_owner = NULL, lease_expires_at = NULL,"
    "   finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END"
    "  FROM x WHERE t.id = x.id"
    "  RETURNING t.id, t.attempts, t.status, x.lease_owner"
    "), re AS ("
    " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
    " SELECT id, attempts, CASE status WHEN 'queued' THEN 'retried' ELSE status END,"
    "        jsonb_build_object('error', 'lease expired', 'lost_owner', lease_owner::text)"
    "   FROM r"
    "), o AS ("
    /* After a lost connection: rows claimed under our lease that we do not hold
     * came from a claim whose answer was lost.  They never ran: requeue them
     * uncharged rather than let them wait out the lease. */
    " UPDATE chimera.tasks t"
    "    SET status = 'queued', attempts = t.attempts - 1, lease_owner = NULL,"
    "        lease_expires_at = NULL, run_at = now()"
    "  WHERE $9::boolean AND t.lease_owner = $1::uuid AND t.status = 'running'"
    "    AND t.id NOT IN (SELECT id FROM held)"
    "  RETURNING t.id, t.attempts"
    "), oe AS ("
    " INSERT INTO chimera.task_events (task_id, attempt, kind, detail)"
    " SELECT id, attempts + 1, 'retried',"
    "        jsonb_build_object('error', 'its claim was lost with the database connection',"
    "                           'charged', false)"
    "   FROM o"
    "), d AS ("
    " DELETE FROM chimera.supervisors"
    "  WHERE heartbeat_at < now() - 10 * $7::bigint * interval '1 millisecond'"
    "    AND id <> $1::uuid"
    ")"
    "SELECT id, status FROM r UNION ALL SELECT id, 'lost' FROM o";

static const char COUNTS_SQL[] =
    "SELECT status, count(*)::bigint FROM chimera.tasks GROUP BY status";

static const char SCHEMA_SQL[] = "SELECT coalesce(max(version), 0) FROM chimera.schema_version";

static const char DEREGISTER_SQL[] = "DELETE FROM chimera.supervisors WHERE id = $1::uuid";

static void queue_flush(struct queue *q);
static void op_free(struct op *op);
static void pending_remove(struct queue *q, struct op *op);
static void inflight_free(struct queue *q);
static void heartbeat_send(struct queue *q);

/* Formats a text[] literal: {"a","b\"c"}. */
static char *text_array_literal(char **items, size_t n)
{
        size_t cap = 3;
        char *out, *p;

        for (size_t i = 0; i < n; i++)
                cap += 3 + 2 * strlen(items[i]);
        out = p = util_calloc(1, cap);
        *p++ = '{';
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ',';
                *p++ = '"';
                for (const char *s = items[i]; *s; s++) {
                        if (*s == '"' || *s == '\\')
                                *p++ = '\\';
                        *p++ = *s;
                }
                *p++ = '"';
        }
        *p++ = '}';
        return out;
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
        struct queue *q = arg;

        q->maybe_empty = false;
        queue_kick(q);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
        heartbeat_send(arg);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
        struct queue *q = arg;

        q->flush_due = true;
        queue_flush(q);
}

static struct timeval ms_to_tv(int64_t ms)
{
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        return tv;
}

/* The definitions of the agents wf uses, as the worker needs them to run them. */
static char *workflow_agents_text(const struct config *cfg, const struct workflow *wf)
{
        json_t *agents = json_object();
        char *text;

        for (size_t i = 0; i < wf->nphases; i++) {
                const struct agent_def *a = config_agent(cfg, wf->phases[i].agent);
                json_t *argv = json_array();
                if (a == NULL || json_object_get(agents, a->name) != NULL) {
                        json_decref(argv);
                        continue;
                }
                for (size_t j = 0; j < a->argc; j++)
                        json_array_append_new(argv, json_string(a->argv[j]));
                json_object_set_new(agents, a->name,
                                    json_pack("{s:o, s:O*, s:s*, s:O*}", "argv", argv, "env",
                                              a->env, "cwd", a->cwd, "limits", a->limits));
        }
        text = json_dumps(agents, JSON_COMPACT);
        json_decref(agents);
        if (text == NULL)
                fatalx("%s: cannot encode the agents of workflow %s", __func__, wf->name);
        return text;
}

static void free_texts(struct queue *q)
{
        for (size_t i = 0; q->def_texts != NULL && q->def_texts[i] != NULL; i++) {
                free(q->def_texts[i]);
                free(q->agent_texts[i]);
        }
        free(q->def_texts);
        free(q->agent_texts);
        free(q->queues_literal);
        q->def_texts = q->agent_texts = NULL;
        q->queues_literal = NULL;
}

/* Derives from the config what every claim and task frame uses, and sets the timers. */
static void apply_config(struct queue *q)
{
        const struct config *cfg = q->sv->cfg;
        struct timeval tv;

        free_texts(q);
        q->def_texts = util_calloc(cfg->nworkflows + 1, sizeof(char *));
        q->agent_texts = util_calloc(cfg->nworkflows + 1, sizeof(char *));
        for (size_t i = 0; i < cfg->nworkflows; i++) {
                q->agent_texts[i] = workflow_agents_text(cfg, cfg->workflows[i]);
                q->def_texts[i] = json_dumps(cfg->workflows[i]->definition, JSON_COMPACT);
                if (q->def_texts[i] == NULL)
                        fatalx("%s: cannot encode workflow %s", __func__, cfg->workflows[i]->name);
        }
        q->queues_literal = text_array_literal(cfg->queues, cfg->nqueues);
        tv = ms_to_tv(cfg->poll_interval_ms);
        event_add(q->poll_ev, &tv);
        tv = ms_to_tv(cfg->lease_ms / 3 > 0 ? cfg->lease_ms / 3 : 1);
        event_add(q->heartbeat_ev, &tv);
}

struct queue *queue_new(struct supervisor *sv)
{
        struct queue *q = util_calloc(1, sizeof(*q));

        q->sv = sv;
        q->poll_ev = event_new(sv->base, -1, EV_PERSIST, poll_cb, q);
        q->heartbeat_ev = event_new(sv->base, -1, EV_PERSIST, heartbeat_cb, q);
        q->flush_ev = evtimer_new(sv->base, flush_cb, q);
        if (q->poll_ev == NULL || q->heartbeat_ev == NULL || q->flush_ev == NULL)
                fatalx("%s: out of memory", __func__);
        apply_config(q);
        return q;
}

void queue_reconfigure(struct queue *q)
{
        /* Their task frames carry the old definitions. */
        queue_release_ready(q, "the config was reloaded");
        apply_config(q);
        q->maybe_empty = false;
        queue_kick(q);
}

void queue_free(struct queue *q)
{
        if (q == NULL)
                return;
        free_texts(q);
        for (size_t i = 0; i < q->ready_len; i++) {
                struct ready *r = &q->ready[(q->ready_head + i) % q->ready_cap];
                task_free(r->task);
                free(r->frame);
        }
        free(q->ready);
        while (q->pending.head != NULL) {
                struct op *op = q->pending.head;
                pending_remove(q, op);
                op_free(op);
        }
        inflight_free(q);
        for (size_t i = 0; i < sizeof(q->batch) / sizeof(q->batch[0]); i++)
                pgarray_free(&q->batch[i]);
        event_free(q->poll_ev);
        event_free(q->heartbeat_ev);
        event_free(q->flush_ev);
        free(q);
}

/* ---- schema check and registration ---- */

/* Ready once the schema is checked and both connections are up. */
static void maybe_ready(struct queue *q)
{
        struct supervisor *sv = q->sv;

        if (sv->state != SUP_STARTING || !q->registered || !db_is_up(sv->wdb))
                return;
        sv->state = SUP_RUNNING;
        notify_ready(sv);
        log_info("supervisor %s ready: pool of %d, queues %s", sv->id, sv->pool.size,
                 q->queues_literal);
}

static void schema_cb(PGresult *res, void *arg)
{
        struct queue *q = arg;
        int have, want = migrate_latest_version();

        q->nbusy_statements--;
        if (res == NULL)
                return; /* connection lost; checked again when it is back */
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                if (code != NULL && (strcmp(code, "42P01") == 0 || strcmp(code, "3F000") == 0))
                        fatalx("the chimera schema is missing in this database: "
                               "run 'chimerad --migrate' first");
                fatalx("cannot read chimera.schema_version: %s", PQresultErrorMessage(res));
        }
        have = atoi(PQgetvalue(res, 0, 0));
        if (have < want)
                fatalx("the database schema is at version %d, this chimerad needs %d: "
                       "run 'chimerad --migrate'",
                       have, want);
        if (have > want)
                log_warnx("the database schema is at version %d, newer than this chimerad's %d",
                          have, want);
        q->registered = true;
        heartbeat_send(q);
        maybe_ready(q);
        queue_kick(q);
}

void queue_db_state(struct queue *q, bool up)
{
        if (!up)
                return;
        if (!q->registered) {
                q->nbusy_statements++;
                db_query(q->sv->db, SCHEMA_SQL, 0, NULL, schema_cb, q);
                return;
        }
        q->maybe_empty = false;
        q->recover = true;
        heartbeat_send(q);
        queue_kick(q);
}

void queue_write_db_state(struct queue *q, bool up)
{
        if (!up)
                return;
        maybe_ready(q);
        /* A batch lost with the old connection was merged back: written again. */
        queue_flush(q);
        queue_kick(q);
}

void queue_notified(struct queue *q)
{
        /* A claim in flight may have taken its snapshot before this insert. */
        if (q->claim_inflight)
                q->notified_during_claim = true;
        q->maybe_empty = false;
        queue_kick(q);
}

/* ---- claiming ---- */

/* The config's workflow called name, with its definition and agents as frame text. */
static const struct workflow *find_workflow(struct queue *q, const char *name, const char **def,
                                            const char **agents)
{
        const struct config *cfg = q->sv->cfg;

        for (size_t i = 0; i < cfg->nworkflows; i++) {
                if (strcmp(cfg->workflows[i]->name, name) == 0) {
                        *def = q->def_texts[i];
                        *agents = q->agent_texts[i];
                        return cfg->workflows[i];
                }
        }
        return NULL;
}

/*
 * Builds the task frame body (NUL-terminated, its length in *len).  payload
 * and state come from PostgreSQL as jsonb text, valid JSON already, and the
 * definition and agents are config texts: they are spliced in as they are
 * rather than parsed and printed again.
 */
static char *task_frame(const struct task *t, struct jtext payload, struct jtext state,
                        const char *def, const char *agents, const char *open, size_t *len)
{
        struct jbuf b = {0};

        jbuf_lit(&b, "{\"type\":\"task\",\"id\":");
        jbuf_int(&b, t->id);
        jbuf_lit(&b, ",\"attempt\":");
        jbuf_int(&b, t->attempt);
        jbuf_lit(&b, ",\"workflow\":");
        jbuf_str(&b, t->workflow);
        jbuf_lit(&b, ",\"trace_id\":");
        jbuf_str(&b, t->trace_id);
        jbuf_lit(&b, ",\"payload\":");
        jbuf_raw(&b, payload.p, payload.n);
        jbuf_lit(&b, ",\"state\":");
        jbuf_raw(&b, state.p, state.n);
        jbuf_lit(&b, ",\"definition\":");
        jbuf_raw(&b, def, strlen(def));
        jbuf_lit(&b, ",\"agents\":");
        jbuf_raw(&b, agents, strlen(agents));
        jbuf_lit(&b, ",\"open_agents\":");
        jbuf_raw(&b, open, strlen(open));
        jbuf_raw(&b, "}", 2); /* with a NUL after it */
        *len = b.len - 1;
        return b.p;
}

static void ready_push(struct queue *q, struct task *t, char *frame, size_t len)
{
        if (q->ready_len == q->ready_cap) {
                size_t cap = q->ready_cap ? 2 * q->ready_cap : 16;
                struct ready *r = util_calloc(cap, sizeof(*r));
                for (size_t i = 0; i < q->ready_len; i++)
                        r[i] = q->ready[(q->ready_head + i) % q->ready_cap];
                free(q->ready);
                q->ready = r;
                q->ready_cap = cap;
                q->ready_head = 0;
        }
        q->ready[(q->ready_head + q->ready_len) % q->ready_cap] =
            (struct ready){.task = t, .frame = frame, .len = len, .claimed_ms = util_now_ms()};
        q->ready_len++;
}

static struct ready ready_pop(struct queue *q)
{
        struct ready r = q->ready[q->ready_head];

        q->ready_head = (q->ready_head + 1) % q->ready_cap;
        q->ready_len--;
        return r;
}

/* Hands claimed tasks to idle workers, oldest claim first. */
static void ready_pump(struct queue *q)
{
        struct pool *pool = &q->sv->pool;

        while (q->ready_len > 0 && pool_idle_count(pool) > 0) {
                struct ready r = ready_pop(q);
                int64_t renewed = r.claimed_ms > q->renewed_ms ? r.claimed_ms : q->renewed_ms;
                if (util_now_ms() > renewed + q->sv->cfg->lease_ms * 2 / 3) {
                        /* Heartbeats failed (database away) while it waited: its lease
                         * is ending or gone, and another supervisor may run it soon. */
                        log_warnx("task %lld waited for a worker until its lease was nearly "
                                  "out: not running it here",
                                  (long long)r.task->id);
                        queue_finish(q, r.task, "requeue", JTEXT_NONE,
                                     "its lease ran out while it waited for a worker", JTEXT_NONE);
                        task_free(r.task);
                        free(r.frame);
                        continue;
                }
                if (pool_dispatch(pool, r.task, r.frame, r.len) < 0) {
                        /* No idle worker after all (one died meanwhile): give it back,
                         * uncharged. */
                        queue_finish(q, r.task, "requeue", JTEXT_NONE, "no idle worker",
                                     JTEXT_NONE);
                        task_free(r.task);
                }
                free(r.frame);
        }
}

void queue_release_ready(struct queue *q, const char *why)
{
        if (q->ready_len > 0)
                log_info("giving back %zu tasks claimed ahead, uncharged: %s", q->ready_len, why);
        while (q->ready_len > 0) {
                struct ready r = ready_pop(q);
                queue_finish(q, r.task, "requeue", JTEXT_NONE, why, JTEXT_NONE);
                task_free(r.task);
                free(r.frame);
        }
}

int queue_cancel_ready(struct queue *q, int64_t id)
{
        for (size_t i = 0; i < q->ready_len; i++) {
                struct ready *r = &q->ready[(q->ready_head + i) % q->ready_cap];
                if (r->task->id != id)
                        continue;
                queue_finish(q, r->task, "cancelled", JTEXT_NONE, "cancelled before it started",
                             JTEXT_NONE);
                task_free(r->task);
                free(r->frame);
                /* Close the gap, keeping the claim order of the others. */
                for (size_t j = i; j + 1 < q->ready_len; j++)
                        q->ready[(q->ready_head + j) % q->ready_cap] =
                            q->ready[(q->ready_head + j + 1) % q->ready_cap];
                q->ready_len--;
                return 0;
        }
        return -1;
}

size_t queue_ready_count(const struct queue *q)
{
        return q->ready_len;
}

/* Makes a claimed row a task ready for a worker; open: the paused agents, as JSON text. */
static void dispatch_row(struct queue *q, PGresult *res, int row, const char *open)
{
        struct supervisor *sv = q->sv;
        struct task *t = util_calloc(1, sizeof(*t));
        const struct workflow *wf;
        const char *def = NULL, *agents = NULL;
        char err[256], *body;
        size_t len = 0;
        struct jtext payload = {PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3)};
        struct jtext state = {PQgetvalue(res, row, 5), (size_t)PQgetlength(res, row, 5)};

        t->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        t->attempt = atoi(PQgetvalue(res, row, 1));
        t->workflow = util_strdup(PQgetvalue(res, row, 2));
        t->trace_id = util_strdup(PQgetvalue(res, row, 4));
        sv->stats.claimed++;
        wf = find_workflow(q, t->workflow, &def, &agents);
        if (wf == NULL) {
                snprintf(err, sizeof(err), "unknown workflow \"%.100s\": no such workflow in %s",
                         t->workflow, sv->config_path);
                log_warnx("task %lld: %s", (long long)t->id, err);
                queue_finish(q, t, "failed", JTEXT_NONE, err, JTEXT_NONE);
                goto out;
        }
        t->timeout_ms = wf->timeout_ms;
        /* Rows are spliced into the frame unparsed: refuse here what a worker could not
         * decode, rather than have it die on the frame at every attempt. */
        if (frame_check_json(payload.p, payload.n, "payload", err, sizeof(err)) < 0 ||
            frame_check_json(state.p, state.n, "the checkpoint (state)", err, sizeof(err)) < 0) {
                log_warnx("task %lld: %s", (long long)t->id, err);
                queue_finish(q, t, "failed", JTEXT_NONE, err, JTEXT_NONE);
                goto out;
        }
        body = task_frame(t, payload, state, def, agents, open, &len);
        if (len > (size_t)sv->cfg->pool_max_frame_size) {
                snprintf(err, sizeof(err),
                         "task is too large to hand to a worker: %zu bytes "
                         "exceed pool.max_frame_size (%lld)",
                         len, (long long)sv->cfg->pool_max_frame_size);
                queue_finish(q, t, "failed", JTEXT_NONE, err, JTEXT_NONE);
                free(body);
                goto out;
        }
        ready_push(q, t, body, len);
        return; /* the ready queue owns t and body now */
out:
        task_free(t);
}

static void claim_cb(PGresult *res, void *arg)
{
        struct queue *q = arg;
        int n;

        q->claim_inflight = false;
        q->nbusy_statements--;
        if (res == NULL)
                return;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                log_warnx("claiming tasks failed: %s", PQresultErrorMessage(res));
                q->maybe_empty = true; /* retried by the poll timer */
                return;
        }
        n = PQntuples(res);
        if (n > 0) {
                /* The circuit breakers' state, once for the claim rather than per row. */
                char *open = breakers_open_list(q->sv->breakers);
                for (int i = 0; i < n; i++)
                        dispatch_row(q, res, i, open);
                free(open);
        }
        ready_pump(q);
        /* Draining or reloading since the claim left: what no worker took goes back. */
        if (q->sv->state != SUP_RUNNING)
                queue_release_ready(q, "the supervisor is stopping");
        /* A short claim means the queue is drained for now: wait for NOTIFY or poll,
         * unless a NOTIFY came while it ran (its rows may be newer than its snapshot). */
        if (n < q->claim_asked && !q->notified_during_claim)
                q->maybe_empty = true;
        q->notified_during_claim = false;
        supervisor_maybe_finish(q->sv);
        queue_kick(q);
}

void queue_kick(struct queue *q)
{
        struct supervisor *sv = q->sv;
        char lease[32], limit[16];
        const char *params[5];
        int idle, prefetch = sv->cfg->pool_prefetch;
        bool one;

        ready_pump(q);
        /* Every worker idle and nothing claimed ahead: no company is coming for the
         * writes held back (WRITE_DELAY_MS), so they go now rather than at the
         * moment the next task may arrive. */
        if (q->pending.len > 0 && !q->flush_due && q->ready_len == 0 &&
            pool_idle_count(&sv->pool) == sv->pool.size) {
                q->flush_due = true;
                queue_flush(q);
        }
        if (sv->state != SUP_RUNNING || q->claim_inflight || q->maybe_empty || !db_is_up(sv->db))
                return;
        /* What is claimed must be written: not while the writes cannot go out, nor
         * while they lag too far behind (bounded memory for what waits). */
        if (!db_is_up(sv->wdb) || q->pending.len >= WRITE_LAG_MAX)
                return;
        /* Without prefetch, never more tasks running in the table than workers:
         * a worker whose outcome is not committed yet is idle, but its task still
         * runs in the table until the write connection commits it, so a claim for
         * it waits for that (write_cb kicks again). */
        if (prefetch == 0)
                idle = pool_idle_count(&sv->pool) - q->pending_outcomes - q->inflight_outcomes;
        else if ((int)q->ready_len > prefetch / 2)
                return; /* refilled once half is used: a claim per task would cost a
                         * statement and a commit per task at agent-program rates */
        else
                idle = pool_idle_count(&sv->pool) + prefetch - (int)q->ready_len;
        if (idle <= 0)
                return;
        snprintf(lease, sizeof(lease), "%lld", (long long)sv->cfg->lease_ms);
        snprintf(limit, sizeof(limit), "%d", idle);
        one = sv->cfg->nqueues == 1;
        params[0] = sv->id;
        params[1] = lease;
        params[2] = one ? sv->cfg->queues[0] : q->queues_literal;
        params[3] = limit;
        params[4] = sv->host;
        q->claim_inflight = true;
        q->claim_asked = idle;
        q->nbusy_statements++;
        db_query_prepared(sv->db, one ? "chimera_claim_one" : "chimera_claim",
                          one ? CLAIM_ONE_SQL : CLAIM_SQL, 5, params, claim_cb, q);
}

/* ---- writes ---- */

static unsigned op_bucket(int64_t id, int attempt)
{
        uint64_t h = ((uint64_t)id * 0x9e3779b97f4a7c15u) ^ (uint64_t)(unsigned)attempt;
        return (unsigned)(h >> 32) % OP_BUCKETS;
}

static void list_append(struct oplist *l, struct op *op)
{
        op->next = NULL;
        op->prev = l->tail;
        if (l->tail != NULL)
                l->tail->next = op;
        else
                l->head = op;
        l->tail = op;
        l->len++;
}

static void list_remove(struct oplist *l, struct op *op)
{
        if (op->prev != NULL)
                op->prev->next = op->next;
        else
                l->head = op->next;
        if (op->next != NULL)
                op->next->prev = op->prev;
        else
                l->tail = op->prev;
        l->len--;
}

static bool op_has_outcome(const struct op *op)
{
        return strcmp(op->status, "running") != 0;
}

static void op_free(struct op *op)
{
        free(op->state);
        free(op->result);
        free(op->error);
        jbuf_free(&op->events);
        free(op);
}

static struct op *pending_find(const struct queue *q, int64_t id, int attempt)
{
        struct op *op = q->by_key[op_bucket(id, attempt)];

        while (op != NULL && (op->id != id || op->attempt != attempt))
                op = op->hnext;
        return op;
}

static void pending_add(struct queue *q, struct op *op)
{
        unsigned b = op_bucket(op->id, op->attempt);

        list_append(&q->pending, op);
        op->hnext = q->by_key[b];
        q->by_key[b] = op;
        q->pending_outcomes += op_has_outcome(op);
}

static void pending_remove(struct queue *q, struct op *op)
{
        struct op **pp = &q->by_key[op_bucket(op->id, op->attempt)];

        while (*pp != op)
                pp = &(*pp)->hnext;
        *pp = op->hnext;
        list_remove(&q->pending, op);
        q->pending_outcomes -= op_has_outcome(op);
}

/* A copy of text as a NUL-terminated string, or NULL for none. */
static char *text_dup(struct jtext text)
{
        char *s;

        if (text.p == NULL)
                return NULL;
        s = util_calloc(1, text.n + 1);
        memcpy(s, text.p, text.n);
        return s;
}

static void replace(char **field, char *value)
{
        if (value == NULL)
                return;
        free(*field);
        *field = value;
}

/* The pending op of task's attempt, created empty on first use (borrowed). */
static struct op *op_for(struct queue *q, const struct task *t)
{
        struct op *op = pending_find(q, t->id, t->attempt);

        if (op == NULL) {
                op = util_calloc(1, sizeof(*op));
                op->id = t->id;
                op->attempt = t->attempt;
                strcpy(op->status, "running");
                op->delay_ms = -1;
                pending_add(q, op);
        }
        return op;
}

void queue_phase(struct queue *q, const struct task *task, const char *kind, const char *phase,
                 struct jtext detail, struct jtext state)
{
        struct op *op = op_for(q, task);
        struct timespec ts;
        struct event_head h;

        memset(&h, 0, sizeof(h)); /* its padding too: it is copied as bytes */
        clock_gettime(CLOCK_REALTIME, &ts);
        h.at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        h.kind_len = (uint32_t)strlen(kind) + 1;
        h.phase_len = phase != NULL ? (uint32_t)strlen(phase) + 1 : 0;
        h.detail = detail.p != NULL;
        h.detail_len = h.detail ? (uint32_t)detail.n : 0;
        jbuf_raw(&op->events, (const char *)&h, sizeof(h));
        jbuf_raw(&op->events, kind, h.kind_len);
        jbuf_raw(&op->events, phase, h.phase_len);
        jbuf_raw(&op->events, detail.p, h.detail_len);
        replace(&op->state, text_dup(state));
        queue_flush(q);
}

static int64_t retry_delay_ms(const struct config *cfg, int attempt)
{
        int64_t d = cfg->retry_base_ms;

        for (int i = 1; i < attempt && d < cfg->retry_max_ms; i++)
                d *= 2;
        if (d > cfg->retry_max_ms)
                d = cfg->retry_max_ms;
        /* Jitter between half and all of it, so that tasks that failed together spread out. */
        return d / 2 + (d > 1 ? random() % (d / 2 + 1) : 0);
}

void queue_finish(struct queue *q, const struct task *task, const char *status, struct jtext result,
                  const char *error, struct jtext state)
{
        struct op *op = op_for(q, task);

        if (strlen(status) >= sizeof(op->status))
                fatalx("%s: unknown status \"%s\"", __func__, status);
        q->pending_outcomes -= op_has_outcome(op);
        strcpy(op->status, status);
        q->pending_outcomes += op_has_outcome(op);
        replace(&op->result, text_dup(result));
        replace(&op->error, error != NULL ? util_strdup(error) : NULL);
        replace(&op->state, text_dup(state));
        if (strcmp(status, "retry") == 0)
                op->delay_ms = retry_delay_ms(q->sv->cfg, task->attempt);
        /* A task waiting for a paused agent comes back when its cool-down has passed. */
        if (strcmp(status, "defer") == 0)
                op->delay_ms = q->sv->cfg->breaker_cooldown_ms;
        queue_flush(q);
}

/* Folds newer (freed) into op: newer's fields win, op's events come first. */
static void op_merge(struct op *op, struct op *newer)
{
        jbuf_raw(&op->events, newer->events.p, newer->events.len);
        /* A bare checkpoint does not undo an outcome already in op. */
        if (op_has_outcome(newer))
                strcpy(op->status, newer->status);
        replace(&op->state, newer->state);
        replace(&op->result, newer->result);
        replace(&op->error, newer->error);
        newer->state = newer->result = newer->error = NULL;
        if (newer->delay_ms >= 0)
                op->delay_ms = newer->delay_ms;
        op_free(newer);
}

/*
 * Puts the batch in flight, which did not reach the database, back in
 * front of what came since: for a task in both, the newer op's fields win
 * and the events of the older come first.
 */
static void merge_back(struct queue *q)
{
        struct oplist later = {0};
        struct op *op;

        while ((op = q->pending.head) != NULL) {
                pending_remove(q, op);
                list_append(&later, op);
        }
        while ((op = q->inflight.head) != NULL) {
                list_remove(&q->inflight, op);
                pending_add(q, op);
        }
        q->inflight_outcomes = 0;
        while ((op = later.head) != NULL) {
                struct op *older = pending_find(q, op->id, op->attempt);
                list_remove(&later, op);
                if (older == NULL) {
                        pending_add(q, op);
                        continue;
                }
                q->pending_outcomes -= op_has_outcome(older);
                op_merge(older, op);
                q->pending_outcomes += op_has_outcome(older);
        }
}

static void inflight_free(struct queue *q)
{
        struct op *op;

        q->inflight_outcomes = 0;
        while ((op = q->inflight.head) != NULL) {
                list_remove(&q->inflight, op);
                op_free(op);
        }
}

static void write_cb(PGresult *res, void *arg)
{
        struct queue *q = arg;
        size_t applied = 0, sent = q->inflight.len;

        q->write_inflight = false;
        q->nbusy_statements--;
        if (res == NULL) {
                merge_back(q); /* written again after reconnecting */
        } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                /* Not retried: a statement that failed once fails again.  The tasks
                 * are not lost: their leases expire and the reaper requeues them. */
                log_warnx("writing %zu task updates failed: %s", sent, PQresultErrorMessage(res));
        } else {
                applied = (size_t)PQntuples(res);
                for (size_t i = 0; i < applied; i++) {
                        const char *now = PQgetvalue(res, (int)i, 2);
                        if (strcmp(now, "dead") == 0) {
                                q->sv->stats.dead++;
                                log_warnx("task %s is dead: its attempts are used up",
                                          PQgetvalue(res, (int)i, 0));
                        }
                        log_debug("task %s attempt %s is now %s", PQgetvalue(res, (int)i, 0),
                                  PQgetvalue(res, (int)i, 1), now);
                }
                if (applied < sent)
                        log_warnx("%zu of %zu task updates were refused: the task is no longer "
                                  "running under this supervisor's lease",
                                  sent - applied, sent);
        }
        inflight_free(q);
        queue_flush(q);
        queue_kick(q);
        supervisor_maybe_finish(q->sv);
}

/* WRITE_SQL's arrays, $2 to $13 (batch[0] is $2). */
enum {
        W_ID,
        W_ATTEMPT,
        W_STATUS,
        W_STATE,
        W_RESULT,
        W_ERROR,
        W_DELAY,
        W_EV_OP,
        W_EV_KIND,
        W_EV_PHASE,
        W_EV_DETAIL,
        W_EV_AT,
};

static const uint32_t write_oids[WRITE_NARRAYS] = {
    PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_JSONB, PGARRAY_JSONB, PGARRAY_TEXT,
    PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_TEXT,  PGARRAY_JSONB, PGARRAY_TIMESTAMPTZ,
};

static void jsonb_or_null(struct pgarray *a, const char *json)
{
        pgarray_jsonb(a, json, json != NULL ? strlen(json) : 0);
}

/* Adds op, the pos-th of the batch (from 1), and its events to the arrays. */
static void batch_add(struct pgarray *w, const struct op *op, int32_t pos)
{
        const char *p = op->events.p, *end = p + op->events.len;
        struct event_head h;

        pgarray_int8(&w[W_ID], op->id);
        pgarray_int4(&w[W_ATTEMPT], op->attempt);
        pgarray_text(&w[W_STATUS], op->status);
        jsonb_or_null(&w[W_STATE], op->state);
        jsonb_or_null(&w[W_RESULT], op->result);
        pgarray_text(&w[W_ERROR], op->error);
        if (op->delay_ms >= 0)
                pgarray_int8(&w[W_DELAY], op->delay_ms);
        else
                pgarray_null(&w[W_DELAY]);
        while (p < end) {
                memcpy(&h, p, sizeof(h));
                p += sizeof(h);
                pgarray_int4(&w[W_EV_OP], pos);
                pgarray_text(&w[W_EV_KIND], p);
                p += h.kind_len;
                pgarray_text(&w[W_EV_PHASE], h.phase_len > 0 ? p : NULL);
                p += h.phase_len;
                pgarray_jsonb(&w[W_EV_DETAIL], h.detail ? p : NULL, h.detail_len);
                p += h.detail_len;
                pgarray_timestamptz(&w[W_EV_AT], h.at_us);
        }
}

static void queue_flush(struct queue *q)
{
        struct supervisor *sv = q->sv;
        const char *params[WRITE_NPARAMS];
        int lengths[WRITE_NPARAMS] = {0};
        bool binary[WRITE_NPARAMS] = {false};
        struct op *op;

        if (q->write_inflight || q->pending.len == 0 || !db_is_up(sv->wdb))
                return;
        if (sv->cfg->pool_prefetch > 0 && sv->state == SUP_RUNNING && !q->flush_due &&
            q->pending.len < WRITE_BATCH_MIN) {
                struct timeval tv = {0, WRITE_DELAY_MS * 1000};
                if (!evtimer_pending(q->flush_ev, NULL))
                        evtimer_add(q->flush_ev, &tv);
                return;
        }
        q->flush_due = false;
        evtimer_del(q->flush_ev);
        /* Oldest first, at most WRITE_BATCH_MAX: bounded statements, bounded memory. */
        for (int i = 0; i < WRITE_NARRAYS; i++)
                pgarray_begin(&q->batch[i], write_oids[i]);
        while (q->inflight.len < WRITE_BATCH_MAX && (op = q->pending.head) != NULL) {
                pending_remove(q, op);
                list_append(&q->inflight, op);
                batch_add(q->batch, op, (int32_t)q->inflight.len);
                q->inflight_outcomes += op_has_outcome(op);
        }
        params[0] = sv->id;
        for (int i = 0; i < WRITE_NARRAYS; i++) {
                params[i + 1] = pgarray_end(&q->batch[i], &lengths[i + 1]);
                binary[i + 1] = true;
        }
        q->write_inflight = true;
        q->nbusy_statements++;
        db_query_prepared_bin(sv->wdb, "chimera_write", WRITE_SQL, WRITE_NPARAMS, params, lengths,
                              binary, write_cb, q);
}

/* ---- heartbeat, leases, reaper ---- */

static void heartbeat_done_cb(PGresult *res, void *arg)
{
        struct queue *q = arg;

        q->heartbeat_inflight = false;
        q->nbusy_statements--;
        if (res == NULL)
                return;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                log_warnx("heartbeat failed: %s", PQresultErrorMessage(res));
                return;
        }
        q->renewed_ms = q->heartbeat_sent_ms;
        for (int i = 0; i < PQntuples(res); i++) {
                if (strcmp(PQgetvalue(res, i, 1), "lost") == 0)
                        log_warnx("task %s: its claim was lost with the database connection; "
                                  "queued again, uncharged",
                                  PQgetvalue(res, i, 0));
                else
                        log_warnx("task %s: lease expired without renewal; now %s",
                                  PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        }
        if (PQntuples(res) > 0) {
                q->maybe_empty = false;
                queue_kick(q);
        }
}

static void heartbeat_send(struct queue *q)
{
        struct supervisor *sv = q->sv;
        char pid[16], size[16], lease[32];
        const char *params[9];
        json_t *held;
        char *held_text;
        size_t i;

        if (!q->registered || q->heartbeat_inflight || !db_is_up(sv->db))
                return;
        held = json_array();
        pool_held_ids(&sv->pool, held);
        /* Tasks whose outcome is not written yet are still ours. */
        for (const struct op *op = q->pending.head; op != NULL; op = op->next)
                json_array_append_new(held, json_integer((json_int_t)op->id));
        for (const struct op *op = q->inflight.head; op != NULL; op = op->next)
                json_array_append_new(held, json_integer((json_int_t)op->id));
        for (i = 0; i < q->ready_len; i++)
                json_array_append_new(
                    held, json_integer(q->ready[(q->ready_head + i) % q->ready_cap].task->id));
        held_text = json_dumps(held, JSON_COMPACT);
        json_decref(held);
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        snprintf(size, sizeof(size), "%d", sv->pool.size);
        snprintf(lease, sizeof(lease), "%lld", (long long)sv->cfg->lease_ms);
        params[0] = sv->id;
        params[1] = sv->host;
        params[2] = pid;
        params[3] = size;
        params[4] = CHIMERA_VERSION;
        params[5] = q->queues_literal;
        params[6] = lease;
        params[7] = held_text;
        params[8] = q->recover ? "true" : "false";
        q->recover = false;
        q->heartbeat_sent_ms = util_now_ms();
        q->heartbeat_inflight = true;
        q->nbusy_statements++;
        db_query_prepared(sv->db, "chimera_heartbeat", HEARTBEAT_SQL, 9, params, heartbeat_done_cb,
                          q);
        free(held_text);
}

static void deregister_cb(PGresult *res, void *arg)
{
        struct queue *q = arg;

        q->nbusy_statements--;
        if (res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK)
                log_warnx("removing this supervisor's row failed: %s", PQresultErrorMessage(res));
        supervisor_maybe_finish(q->sv);
}

void queue_deregister(struct queue *q)
{
        const char *params[1] = {q->sv->id};

        if (!q->registered || !db_is_up(q->sv->wdb))
                return;
        q->registered = false;
        q->nbusy_statements++;
        db_query(q->sv->wdb, DEREGISTER_SQL, 1, params, deregister_cb, q);
}

bool queue_quiet(const struct queue *q)
{
        return q->nbusy_statements == 0 && q->pending.len == 0 && q->ready_len == 0;
}

/* ---- counts for status ---- */

struct counts_req {
        struct queue *q;
        queue_counts_cb cb;
        void *arg;
};

static void counts_cb(PGresult *res, void *arg)
{
        struct counts_req *r = arg;
        static const char *const names[] = {"queued", "running", "succeeded",
                                            "failed", "dead",    "cancelled"};
        json_t *counts = NULL;

        r->q->nbusy_statements--;
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
                counts = json_object();
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                        json_object_set_new(counts, names[i], json_integer(0));
                for (int i = 0; i < PQntuples(res); i++)
                        json_object_set_new(counts, PQgetvalue(res, i, 0),
                                            json_integer(strtoll(PQgetvalue(res, i, 1), NULL, 10)));
        }
        r->cb(counts, r->arg);
        json_decref(counts);
        free(r);
}

void queue_counts(struct queue *q, queue_counts_cb cb, void *arg)
{
        struct counts_req *r;

        if (!db_is_up(q->sv->wdb)) {
                cb(NULL, arg);
                return;
        }
        r = util_calloc(1, sizeof(*r));
        r->q = q;
        r->cb = cb;
        r->arg = arg;
        q->nbusy_statements++;
        db_query(q->sv->wdb, COUNTS_SQL, 0, NULL, counts_cb, r);
}
