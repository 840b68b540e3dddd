/*
 * retention.c - deleting finished tasks once they are older than
 * `retention`, so that chimera.tasks and chimera.task_events stay bounded
 * however many tasks pass through.
 *
 * A run deletes in batches: one statement takes up to RETENTION_BATCH of
 * the oldest rows in a final status (succeeded, failed, dead, cancelled)
 * whose finished_at is past the retention, oldest first, and deletes them
 * with their events (task_events has no foreign key to cascade through).
 * SKIP LOCKED lets several supervisors run retention on the same table
 * without waiting for each other, and keeps clear of a row that chimera-ctl
 * retry holds at that moment.  A full batch means there may be more: the
 * next batch follows after a pause as long as the last one took, so that
 * even a large backlog of expired rows uses at most about half of the
 * write connection's time (sv->wdb), and the writes queued meanwhile go
 * first (the connection runs statements in FIFO order, one at a time).  A short
 * batch ends the run; the next starts one period later.
 *
 * The period is a tenth of the retention, between 1 s and 60 s: how much
 * longer than `retention` a row may stay.  The first run starts as soon as
 * the supervisor is running.  `retention: "0"` keeps tasks forever.
 *
 * One line is logged per run: at info when it deleted something, at debug
 * when it found nothing to do.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "db.h"
#include "log.h"
#include "retention.h"
#include "util.h"

#define PERIOD_MIN_MS  1000
#define PERIOD_MAX_MS  60000
#define START_RETRY_MS 500 /* waiting for the schema check before the first run */

struct retention {
        struct supervisor *sv;
        struct event *timer;       /* the next run, or the next batch of this run */
        bool inflight;             /* a batch statement is queued or running */
        bool in_run;               /* a run is under way, between its batches too */
        int64_t sent_ms;           /* when the last batch was queued */
        int64_t sent_retention_ms; /* the retention it applied */
        int64_t run_started_ms;
        long long run_tasks, run_events;
        unsigned run_batches;
};

static const char DELETE_SQL[] =
    "WITH old AS ("
    " SELECT id FROM chimera.tasks"
    "  WHERE finished_at < now() - $1::bigint * interval '1 millisecond'"
    "    AND status IN ('succeeded', 'failed', 'dead', 'cancelled')"
    "  ORDER BY finished_at"
    "  LIMIT $2::int"
    "  FOR UPDATE SKIP LOCKED"
    "), t AS ("
    " DELETE FROM chimera.tasks t USING old WHERE t.id = old.id RETURNING t.id"
    "), e AS ("
    " DELETE FROM chimera.task_events e USING t WHERE e.task_id = t.id RETURNING 1"
    ")"
    "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM e)";

static void tick_cb(evutil_socket_t fd, short what, void *arg);

struct retention *retention_new(struct supervisor *sv)
{
        struct retention *r = util_calloc(1, sizeof(*r));

        r->sv = sv;
        r->timer = evtimer_new(sv->base, tick_cb, r);
        if (r->timer == NULL)
                fatalx("%s: evtimer_new", __func__);
        return r;
}

void retention_free(struct retention *r)
{
        if (r == NULL)
                return;
        event_free(r->timer);
        free(r);
}

bool retention_quiet(const struct retention *r)
{
        return r == NULL || !r->inflight;
}

static int64_t period_ms(const struct config *cfg)
{
        int64_t ms = cfg->retention_ms / 10;

        if (ms < PERIOD_MIN_MS)
                return PERIOD_MIN_MS;
        return ms > PERIOD_MAX_MS ? PERIOD_MAX_MS : ms;
}

static void schedule(struct retention *r, int64_t ms)
{
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

        evtimer_add(r->timer, &tv);
}

/* Logs what the run did; why_stopped (or NULL) says why it ended early. */
static void end_run(struct retention *r, const char *why_stopped)
{
        char age[32];

        if (!r->in_run)
                return;
        r->in_run = false;
        util_format_ms(r->sent_retention_ms, age, sizeof(age));
        if (r->run_tasks == 0 && why_stopped == NULL) {
                log_debug("retention: no finished task older than %s", age);
                return;
        }
        log_info("retention: deleted %lld finished tasks older than %s and their %lld events "
                 "in %u %s, %lld ms%s%s",
                 r->run_tasks, age, r->run_events, r->run_batches,
                 r->run_batches == 1 ? "batch" : "batches",
                 (long long)(util_now_ms() - r->run_started_ms), why_stopped ? "; stopped: " : "",
                 why_stopped ? why_stopped : "");
}

static void batch_cb(PGresult *res, void *arg);

static void send_batch(struct retention *r)
{
        char age[32], limit[16];
        const char *params[2] = {age, limit};

        r->sent_retention_ms = r->sv->cfg->retention_ms;
        snprintf(age, sizeof(age), "%lld", (long long)r->sent_retention_ms);
        snprintf(limit, sizeof(limit), "%d", RETENTION_BATCH);
        r->inflight = true;
        r->sent_ms = util_now_ms();
        db_query(r->sv->wdb, DELETE_SQL, 2, params, batch_cb, r);
}

/*
 * Why no batch may start now, or NULL when one may.  A supervisor still
 * starting has not checked the schema yet; one that drains or stops
 * leaves the rest for the next run, wherever that is.
 */
static const char *cannot_run(const struct retention *r)
{
        if (r->sv->cfg->retention_ms == 0)
                return "retention was turned off";
        if (!db_is_up(r->sv->wdb))
                return "the database connection was lost";
        if (r->sv->state != SUP_RUNNING)
                return "the supervisor is stopping";
        return NULL;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
        struct retention *r = arg;
        const char *why;

        if (r->inflight)
                return;
        if (r->sv->state == SUP_STARTING && r->sv->cfg->retention_ms > 0 && db_is_up(r->sv->wdb)) {
                schedule(r, START_RETRY_MS);
                return;
        }
        why = cannot_run(r);
        if (why != NULL) {
                /* Re-armed by the connection coming back or a reload. */
                end_run(r, why);
                return;
        }
        if (!r->in_run) {
                r->in_run = true;
                r->run_started_ms = util_now_ms();
                r->run_tasks = r->run_events = 0;
                r->run_batches = 0;
        }
        send_batch(r);
}

static void batch_cb(PGresult *res, void *arg)
{
        struct retention *r = arg;
        struct supervisor *sv = r->sv;
        long long tasks;
        int64_t took = util_now_ms() - r->sent_ms;

        r->inflight = false;
        if (res == NULL) {
                /* The connection is down; the next run starts when it is back. */
                end_run(r, "the database connection was lost");
                goto out;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                log_warnx("retention: deleting finished tasks failed: %s",
                          PQresultErrorMessage(res));
                end_run(r, "a batch failed");
                schedule(r, period_ms(sv->cfg));
                goto out;
        }
        tasks = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        r->run_tasks += tasks;
        r->run_events += strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        r->run_batches++;
        if (tasks >= RETENTION_BATCH && cannot_run(r) == NULL) {
                schedule(r, took);
                goto out;
        }
        end_run(r, tasks >= RETENTION_BATCH ? cannot_run(r) : NULL);
        if (sv->cfg->retention_ms > 0)
                schedule(r, period_ms(sv->cfg));
out:
        supervisor_maybe_finish(sv);
}

void retention_db_state(struct retention *r, bool up)
{
        if (!up) {
                if (!r->inflight)
                        end_run(r, "the database connection was lost");
                evtimer_del(r->timer);
                return;
        }
        if (!r->inflight)
                schedule(r, 0);
}

void retention_reconfigure(struct retention *r)
{
        if (r->inflight)
                return; /* the batch's answer looks at the new config */
        if (r->sv->cfg->retention_ms == 0) {
                end_run(r, "retention was turned off");
                evtimer_del(r->timer);
                return;
        }
        /* Next batch at once, or a run at once with the new retention. */
        schedule(r, 0);
}
