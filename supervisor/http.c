/*
 * http.c - chimerad's HTTP server: health, Prometheus metrics and a small
 * task API, served by libevent's evhttp inside the supervisor's loop.
 *
 * Off unless http.listen is set.  GET /health and every error are answered
 * at once; /metrics (for its queue counts), POST /api/tasks and GET
 * /api/tasks/ID are answered from the callback of an asynchronous
 * statement (db.c), so the loop never waits for the database.  A POST
 * body is decoded by http_task_parse() (http_proto.c) before anything else.
 *
 * What needs care is the lifetime of a request while its statement runs:
 *
 * - evhttp owns a request until we answer it.  It stops reading a
 *   connection that is owed an answer, so it mostly learns that a client
 *   left only when the answer is written; and should the connection fail
 *   before (a timeout), it detaches the request instead of freeing it, and
 *   evhttp_send_reply() on a detached request only frees it.  So answering
 *   late is always safe, provided every request is answered exactly once.
 * - Only evhttp_free() frees a request we have not answered: http_free()
 *   forgets the requests still waiting before calling it.
 * - A statement may wait long (queued behind others while the database
 *   reconnects), so a waiting request has a deadline; past it the client
 *   gets its answer without the database.  Our record of the request
 *   (struct http_req) lives until the statement's callback has run, which
 *   then finds the evhttp_request answered and only frees the record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "breaker.h"
#include "chimerad.h"
#include "db.h"
#include "http.h"
#include "http_proto.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#define HTTP_TIMEOUT_S       10         /* a client idle this long mid-request is dropped */
#define HTTP_MAX_BODY        (1 << 20)  /* larger bodies get 413 */
#define HTTP_MAX_HEADERS     (16 << 10) /* larger headers get 400 */
#define HTTP_DB_WAIT_MS      10000      /* API requests: then 503 */
#define HTTP_METRICS_WAIT_MS 5000       /* /metrics: then answered without queue depth */
#define HTTP_MAX_TOKEN       4096
#define HTTP_ALL_METHODS                                                                           \
        (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

struct http_req;
TAILQ_HEAD(http_req_list, http_req);

struct http {
        struct supervisor *sv;
        struct evhttp *evh;
        char *token; /* required as "Authorization: Bearer" on POST, or NULL */
        size_t token_len;
        /* INSERT statements by the set of fields given (bit i: http_task_fields[i]),
         * built when first needed and kept, since db_query() borrows them. */
        char *insert_sql[1 << HTTP_TASK_NFIELDS];
        struct http_req_list waiting; /* requests with a statement under way */
};

/* One request, from its arrival until it is answered and its statement is done. */
struct http_req {
        TAILQ_ENTRY(http_req) entry;
        struct http *h;
        struct evhttp_request *req; /* NULL once answered */
        enum evhttp_cmd_type method;
        char path[256]; /* as received, control characters replaced, for log lines */
        char peer[80];  /* "ADDR:PORT" */
        int64_t started_ms;
        int refs; /* request_cb while it dispatches, a statement under way */
        struct event *deadline;
        void (*expire)(struct http_req *hr); /* answers at the deadline */
};

static const char *method_name(enum evhttp_cmd_type m)
{
        switch (m) {
        case EVHTTP_REQ_GET:
                return "GET";
        case EVHTTP_REQ_POST:
                return "POST";
        case EVHTTP_REQ_HEAD:
                return "HEAD";
        case EVHTTP_REQ_PUT:
                return "PUT";
        case EVHTTP_REQ_DELETE:
                return "DELETE";
        case EVHTTP_REQ_OPTIONS:
                return "OPTIONS";
        case EVHTTP_REQ_TRACE:
                return "TRACE";
        case EVHTTP_REQ_CONNECT:
                return "CONNECT";
        case EVHTTP_REQ_PATCH:
                return "PATCH";
        }
        return "?";
}

/* ---- answering ---- */

/*
 * Sends the answer (body borrowed, len bytes) and logs the request.  Does
 * nothing for a request already answered, so a deadline and a late
 * statement cannot both answer.  A HEAD request gets the headers a GET
 * would, Content-Length included, without the body.
 */
static void reply(struct http_req *hr, int code, const char *ctype, const char *body, size_t len)
{
        struct evhttp_request *req = hr->req;
        struct evkeyvalq *out;
        char length[32];
        bool gone;
        long long ms;

        if (req == NULL)
                return;
        hr->req = NULL;
        gone = evhttp_request_get_connection(req) == NULL;
        out = evhttp_request_get_output_headers(req);
        evhttp_add_header(out, "Content-Type", ctype);
        evhttp_add_header(out, "Cache-Control", "no-store");
        if (hr->method == EVHTTP_REQ_HEAD) {
                snprintf(length, sizeof(length), "%zu", len);
                evhttp_add_header(out, "Content-Length", length);
        } else {
                evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
        }
        evhttp_send_reply(req, code, NULL, NULL); /* frees req if the client is gone */
        ms = (long long)(util_now_ms() - hr->started_ms);
        if (code >= 500)
                log_warnx("http: %s %s %s: %d (%lld ms)%s", hr->peer, method_name(hr->method),
                          hr->path, code, ms, gone ? "; the client had gone" : "");
        else
                log_debug("http: %s %s %s: %d (%lld ms)%s", hr->peer, method_name(hr->method),
                          hr->path, code, ms, gone ? "; the client had gone" : "");
}

/* Sends body (stolen; NULL when it could not be built) as JSON. */
static void reply_json(struct http_req *hr, int code, json_t *body)
{
        static const char failed[] = "{\"error\":\"the answer could not be encoded\"}";
        char *text = json_dumps(body, JSON_COMPACT);

        json_decref(body);
        if (text == NULL) {
                log_warnx("http: %s %s: the answer could not be encoded", method_name(hr->method),
                          hr->path);
                reply(hr, 500, "application/json", failed, sizeof(failed) - 1);
                return;
        }
        reply(hr, code, "application/json", text, strlen(text));
        free(text);
}

static void reply_error(struct http_req *hr, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends {"error": message}. */
static void reply_error(struct http_req *hr, int code, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        json_t *body;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        body = json_pack("{s:s}", "error", msg);
        if (body == NULL) {
                /* Not UTF-8: a path's raw bytes, or a quote cut short
                 * inside a character.  JSON needs UTF-8; ASCII will do. */
                for (char *p = msg; *p != '\0'; p++)
                        if ((unsigned char)*p >= 0x80)
                                *p = '?';
                body = json_pack("{s:s}", "error", msg);
        }
        reply_json(hr, code, body);
}

/* ---- request records ---- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
        struct http_req *hr = arg;

        hr->expire(hr);
}

static struct http_req *hr_new(struct http *h, struct evhttp_request *req)
{
        struct http_req *hr = util_calloc(1, sizeof(*hr));
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
        char *addr = NULL;
        ev_uint16_t port = 0;

        hr->h = h;
        hr->req = req;
        hr->refs = 1;
        hr->method = evhttp_request_get_command(req);
        hr->started_ms = util_now_ms();
        snprintf(hr->path, sizeof(hr->path), "%s", path != NULL ? path : "");
        for (char *p = hr->path; *p != '\0'; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        if (evcon != NULL)
                evhttp_connection_get_peer(evcon, &addr, &port);
        snprintf(hr->peer, sizeof(hr->peer), "%s:%u", addr != NULL ? addr : "?", (unsigned)port);
        return hr;
}

static void hr_free(struct http_req *hr)
{
        if (hr->deadline != NULL)
                event_free(hr->deadline);
        free(hr);
}

/*
 * Marks hr as waiting for a statement: the caller issues it next, and its
 * callback starts with hr_done_waiting() and ends with hr_unref().  expire
 * answers the request if the statement takes longer than wait_ms.
 */
static void hr_wait(struct http_req *hr, int64_t wait_ms, void (*expire)(struct http_req *))
{
        struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

        hr->refs++;
        hr->expire = expire;
        TAILQ_INSERT_TAIL(&hr->h->waiting, hr, entry);
        hr->deadline = evtimer_new(hr->h->sv->base, deadline_cb, hr);
        if (hr->deadline == NULL || evtimer_add(hr->deadline, &tv) < 0)
                fatalx("%s: cannot arm a timer", __func__);
}

static void hr_done_waiting(struct http_req *hr)
{
        TAILQ_REMOVE(&hr->h->waiting, hr, entry);
        evtimer_del(hr->deadline);
}

/*
 * Drops one hold on hr (request_cb's, or a statement's), and frees it with
 * the last.  A request still unanswered by then is a bug here; it gets a
 * 500 rather than being left open forever.
 */
static void hr_unref(struct http_req *hr)
{
        if (--hr->refs > 0)
                return;
        if (hr->req != NULL) {
                log_warnx("http: %s %s was left unanswered", method_name(hr->method), hr->path);
                reply(hr, 500, "text/plain", "", 0);
        }
        hr_free(hr);
}

/* ---- database answers ---- */

/*
 * Answers a statement that did not return rows: the database's refusal of
 * the input (SQLSTATE classes 22 data exception, 23 integrity constraint)
 * is the client's error; a lost or overloaded server is 503; the rest is
 * ours.  what names the statement's purpose for messages.
 */
static void reply_db_error(struct http_req *hr, PGresult *res, const char *what)
{
        const char *state, *msg;

        if (res == NULL) {
                reply_error(hr, 503, "the database connection was lost while %s", what);
                return;
        }
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (state == NULL)
                state = "";
        if (msg == NULL)
                msg = PQresultErrorMessage(res);
        if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0) {
                reply_error(hr, 400, "%s", msg);
        } else if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                   strncmp(state, "57", 2) == 0) {
                reply_error(hr, 503, "the database is not available: %s", msg);
        } else {
                log_warnx("http: database error while %s: %s (SQLSTATE %s)", what, msg, state);
                reply_error(hr, 500, "database error while %s: %s", what, msg);
        }
}

/* ---- GET /health ---- */

/*
 * 200 when the database answers and the supervisor has started; 503
 * otherwise, so that a load balancer or orchestrator waits.  A draining
 * supervisor is still healthy: it finishes its tasks, and accepts new ones
 * into the queue for others.
 */
static void health(struct http_req *hr)
{
        struct supervisor *sv = hr->h->sv;
        bool db_up = supervisor_db_up(sv);
        bool ok = db_up && sv->state != SUP_STARTING;
        json_t *pool = pool_status_json(&sv->pool);
        json_t *db = json_pack("{s:b}", "up", db_up);

        if (!db_up && *supervisor_db_error(sv) != '\0')
                json_object_set_new(db, "error", json_string(supervisor_db_error(sv)));
        reply_json(hr, ok ? 200 : 503,
                   json_pack("{s:s, s:o, s:{s:O, s:O, s:O, s:O}, s:{s:s, s:s}}", "status",
                             ok ? "ok" : "unavailable", "database", db, "pool", "size",
                             json_object_get(pool, "size"), "busy", json_object_get(pool, "busy"),
                             "idle", json_object_get(pool, "idle"), "starting",
                             json_object_get(pool, "starting"), "supervisor", "id", sv->id, "state",
                             supervisor_state_name(sv->state)));
        json_decref(pool);
}

/* ---- GET /metrics ---- */

static void metric_family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants (backslash, quote, newline). */
static void add_label_value(struct evbuffer *b, const char *v)
{
        for (; *v != '\0'; v++) {
                if (*v == '\\' || *v == '"')
                        evbuffer_add_printf(b, "\\%c", *v);
                else if (*v == '\n')
                        evbuffer_add(b, "\\n", 2);
                else
                        evbuffer_add(b, v, 1);
        }
}

static void metric_u64(struct evbuffer *b, const char *name, const char *type, const char *help,
                       uint64_t v)
{
        metric_family(b, name, type, help);
        evbuffer_add_printf(b, "%s %" PRIu64 "\n", name, v);
}

static int64_t pool_field(const json_t *pool, const char *key)
{
        return (int64_t)json_integer_value(json_object_get(pool, key));
}

static void metrics_pool(struct evbuffer *b, const struct supervisor *sv)
{
        json_t *pool = pool_status_json(&sv->pool);
        int64_t size = pool_field(pool, "size"), busy = pool_field(pool, "busy");

        metric_u64(b, "chimera_pool_size", "gauge", "Worker processes configured (pool.size).",
                   (uint64_t)size);
        metric_u64(b, "chimera_pool_busy_workers", "gauge", "Workers running a task.",
                   (uint64_t)busy);
        metric_u64(b, "chimera_pool_idle_workers", "gauge", "Workers ready for a task.",
                   (uint64_t)pool_field(pool, "idle"));
        metric_u64(b, "chimera_pool_starting_workers", "gauge",
                   "Workers started but not yet ready.", (uint64_t)pool_field(pool, "starting"));
        metric_u64(b, "chimera_pool_available_slots", "gauge",
                   "Worker slots not running a task (idle, starting or being replaced).",
                   (uint64_t)(size - busy));
        metric_u64(b, "chimera_worker_restarts_total", "counter",
                   "Workers started again after one exited.",
                   (uint64_t)pool_field(pool, "restarts"));
        metric_u64(b, "chimera_worker_crash_streak", "gauge",
                   "Workers in a row that died soon after starting (respawns back off).",
                   (uint64_t)pool_field(pool, "crash_streak"));
        json_decref(pool);
}

static void metrics_tasks(struct evbuffer *b, const struct sup_stats *st)
{
        static const char *const outcomes[] = {"succeeded", "failed", "retried", "dead",
                                               "deferred"};
        const uint64_t counts[] = {st->succeeded, st->failed, st->retried, st->dead, st->deferred};

        metric_u64(b, "chimera_tasks_claimed_total", "counter",
                   "Task attempts claimed by this supervisor.", st->claimed);
        metric_family(b, "chimera_tasks_processed_total", "counter",
                      "Task attempts finished by this supervisor, by outcome (retried: a "
                      "transient error; dead: as the database reported it).");
        for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
                evbuffer_add_printf(b,
                                    "chimera_tasks_processed_total{outcome=\"%s\"} %" PRIu64 "\n",
                                    outcomes[i], counts[i]);
        metric_family(b, "chimera_task_duration_seconds", "histogram",
                      "Duration of task attempts, from hand-over to a worker to its result.");
        for (int i = 0; i < STATS_NBUCKETS; i++)
                evbuffer_add_printf(b,
                                    "chimera_task_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                                    (double)STATS_BUCKETS_MS[i] / 1000.0, st->duration_buckets[i]);
        evbuffer_add_printf(b, "chimera_task_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                            st->duration_count);
        evbuffer_add_printf(b, "chimera_task_duration_seconds_sum %.3f\n",
                            (double)st->duration_sum_ms / 1000.0);
        evbuffer_add_printf(b, "chimera_task_duration_seconds_count %" PRIu64 "\n",
                            st->duration_count);
}

static void metrics_agents(struct evbuffer *b, const struct sup_stats *st)
{
        metric_family(b, "chimera_agent_cpu_seconds_total", "counter",
                      "CPU time used by agent programs, by mode.");
        evbuffer_add_printf(b, "chimera_agent_cpu_seconds_total{mode=\"user\"} %.3f\n",
                            (double)st->agent_cpu_user_ms / 1000.0);
        evbuffer_add_printf(b, "chimera_agent_cpu_seconds_total{mode=\"system\"} %.3f\n",
                            (double)st->agent_cpu_sys_ms / 1000.0);
        metric_family(b, "chimera_agent_wall_seconds_total", "counter",
                      "Time agent programs ran, from start to exit.");
        evbuffer_add_printf(b, "chimera_agent_wall_seconds_total %.3f\n",
                            (double)st->agent_wall_ms / 1000.0);
        metric_family(b, "chimera_agent_runs_total", "counter",
                      "Agent program runs, by how they ended (exit: by itself, with any "
                      "status; signal: a crash; the others: killed or failed at a limit).");
        for (int i = 0; i < STATS_NCAUSES; i++)
                evbuffer_add_printf(b, "chimera_agent_runs_total{cause=\"%s\"} %" PRIu64 "\n",
                                    STATS_CAUSES[i], st->agent_ends[i]);
}

static void metrics_breakers(struct evbuffer *b, const struct breakers *breakers)
{
        json_t *list = breakers_status_json(breakers), *k;
        size_t i;

        metric_family(b, "chimera_circuit_breaker_open", "gauge",
                      "1 while an agent's circuit breaker is open, 0 once it has failed "
                      "without opening or closed again.");
        json_array_foreach (list, i, k) {
                evbuffer_add_printf(b, "chimera_circuit_breaker_open{agent=\"");
                add_label_value(b, json_string_value(json_object_get(k, "agent")));
                evbuffer_add_printf(b, "\"} %d\n",
                                    json_integer_value(json_object_get(k, "open_ms")) > 0);
        }
        json_decref(list);
}

/* counts (borrowed) is {"queued": n, ...}, or NULL when the database could not say. */
static void metrics_queue(struct evbuffer *b, const json_t *counts)
{
        const char *status;
        json_t *n;

        metric_family(b, "chimera_queue_tasks", "gauge",
                      "Tasks in chimera.tasks by status, all queues (absent while the "
                      "database is down or slow to answer).");
        json_object_foreach ((json_t *)counts, status, n) {
                evbuffer_add_printf(b, "chimera_queue_tasks{status=\"");
                add_label_value(b, status);
                evbuffer_add_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(n));
        }
}

static void metrics_reply(struct http_req *hr, const json_t *counts)
{
        struct supervisor *sv = hr->h->sv;
        struct evbuffer *b = evbuffer_new();
        size_t len;

        if (b == NULL)
                fatalx("%s: out of memory", __func__);
        metric_family(b, "chimera_supervisor_info", "gauge", "This supervisor: id, host, version.");
        evbuffer_add_printf(b, "chimera_supervisor_info{id=\"");
        add_label_value(b, sv->id);
        evbuffer_add_printf(b, "\",host=\"");
        add_label_value(b, sv->host);
        evbuffer_add_printf(b, "\",version=\"%s\"} 1\n", CHIMERA_VERSION);
        metric_family(b, "chimera_supervisor_uptime_seconds", "gauge",
                      "Seconds since this supervisor started.");
        evbuffer_add_printf(b, "chimera_supervisor_uptime_seconds %.3f\n",
                            (double)(util_now_ms() - sv->started_ms) / 1000.0);
        metric_u64(b, "chimera_database_up", "gauge",
                   "1 while both database connections are up, else 0.",
                   supervisor_db_up(sv) ? 1 : 0);
        metrics_pool(b, sv);
        metrics_tasks(b, &sv->stats);
        metrics_agents(b, &sv->stats);
        metrics_queue(b, counts);
        metrics_breakers(b, sv->breakers);
        len = evbuffer_get_length(b);
        reply(hr, 200, "text/plain; version=0.0.4; charset=utf-8",
              (const char *)evbuffer_pullup(b, -1), len);
        evbuffer_free(b);
}

static void metrics_counts_cb(json_t *counts, void *arg)
{
        struct http_req *hr = arg;

        hr_done_waiting(hr);
        if (hr->req != NULL)
                metrics_reply(hr, counts);
        hr_unref(hr);
}

/* The counts are late: answer with everything else (the statement's callback frees hr). */
static void metrics_expire(struct http_req *hr)
{
        metrics_reply(hr, NULL);
}

static void metrics(struct http_req *hr)
{
        /* queue_counts() calls back at once when the database is down;
         * request_cb's hold keeps hr valid through that. */
        hr_wait(hr, HTTP_METRICS_WAIT_MS, metrics_expire);
        queue_counts(hr->h->sv->queue, metrics_counts_cb, hr);
}

/* ---- POST /api/tasks ---- */

/* Compares in time that depends only on the length of the expected token. */
static bool token_equal(const char *given, const char *want, size_t want_len)
{
        size_t given_len = strlen(given);
        unsigned diff = given_len != want_len;

        for (size_t i = 0; i < want_len; i++)
                diff |= (unsigned char)want[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
        return diff == 0;
}

/* True when no token is configured or the request carries it; else answers 401. */
static bool authorized(struct http_req *hr)
{
        struct http *h = hr->h;
        struct evkeyvalq *in = evhttp_request_get_input_headers(hr->req);
        const char *auth = evhttp_find_header(in, "Authorization");
        bool bearer = auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0;

        if (h->token == NULL)
                return true;
        if (bearer) {
                auth += 7;
                while (*auth == ' ')
                        auth++;
                if (token_equal(auth, h->token, h->token_len))
                        return true;
        }
        /* RFC 6750: an error code only when a token was given. */
        evhttp_add_header(evhttp_request_get_output_headers(hr->req), "WWW-Authenticate",
                          bearer ? "Bearer realm=\"chimera\", error=\"invalid_token\""
                                 : "Bearer realm=\"chimera\"");
        reply_error(hr, 401,
                    bearer ? "wrong bearer token"
                           : "a bearer token is required (Authorization: Bearer TOKEN)");
        return false;
}

/*
 * Reads the body into params (indexed by enum http_task_field; NULL for
 * absent members).  Returns 0, or -1 after answering 400.
 */
static int parse_task(struct http_req *hr, char *params[HTTP_TASK_NFIELDS])
{
        struct evbuffer *in = evhttp_request_get_input_buffer(hr->req);
        size_t len = evbuffer_get_length(in);
        char err[1024];

        if (http_task_parse((const char *)evbuffer_pullup(in, -1), len, params, err, sizeof(err)) <
            0) {
                reply_error(hr, 400, "%s", err);
                return -1;
        }
        return 0;
}

/* The INSERT for the fields given (bit i set: http_task_fields[i]), kept in h. */
static const char *insert_sql(struct http *h, unsigned given)
{
        char cols[256] = "", vals[256] = "";
        size_t nc = 0, nv = 0;
        int n = 0;

        if (h->insert_sql[given] != NULL)
                return h->insert_sql[given];
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++) {
                if (!(given & (1u << f)))
                        continue;
                n++;
                nc += (size_t)snprintf(cols + nc, sizeof(cols) - nc, "%s%s", n > 1 ? ", " : "",
                                       http_task_fields[f].key);
                nv += (size_t)snprintf(vals + nv, sizeof(vals) - nv, "%s$%d%s", n > 1 ? ", " : "",
                                       n, http_task_fields[f].cast);
        }
        if (asprintf(&h->insert_sql[given],
                     "INSERT INTO chimera.tasks AS t (%s) VALUES (%s)"
                     " RETURNING t.id, to_jsonb(t)::text",
                     cols, vals) < 0)
                fatalx("%s: out of memory", __func__);
        return h->insert_sql[given];
}

/* Answers 503 for a database that is down now. */
static void reply_db_down(struct http_req *hr)
{
        const char *err = db_last_error(hr->h->sv->wdb);

        reply_error(hr, 503, "the database is not available%s%s", *err ? ": " : "", err);
}

static void post_done_cb(PGresult *res, void *arg)
{
        struct http_req *hr = arg;
        char location[64];

        hr_done_waiting(hr);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
                reply_db_error(hr, res, "creating the task (it may have been created)");
        } else if (hr->req == NULL) {
                log_warnx("http: task %s was created after its request had been answered 503",
                          PQgetvalue(res, 0, 0));
        } else {
                snprintf(location, sizeof(location), "/api/tasks/%s", PQgetvalue(res, 0, 0));
                evhttp_add_header(evhttp_request_get_output_headers(hr->req), "Location", location);
                reply(hr, 201, "application/json", PQgetvalue(res, 0, 1),
                      (size_t)PQgetlength(res, 0, 1));
        }
        hr_unref(hr);
}

static void post_expire(struct http_req *hr)
{
        reply_error(hr, 503,
                    "the database did not answer within %d s; the task may still be created",
                    HTTP_DB_WAIT_MS / 1000);
}

static void post_task(struct http_req *hr)
{
        char *params[HTTP_TASK_NFIELDS] = {NULL}, *given[HTTP_TASK_NFIELDS];
        unsigned mask = 0;
        int n = 0;

        if (!authorized(hr) || parse_task(hr, params) < 0)
                goto out;
        if (params[HTTP_TASK_MAX_ATTEMPTS] == NULL && hr->h->sv->cfg->retry_max_attempts > 0 &&
            asprintf(&params[HTTP_TASK_MAX_ATTEMPTS], "%d", hr->h->sv->cfg->retry_max_attempts) < 0)
                fatalx("%s: out of memory", __func__);
        if (!db_is_up(hr->h->sv->wdb)) {
                reply_db_down(hr);
                goto out;
        }
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++) {
                if (params[f] != NULL) {
                        mask |= 1u << f;
                        given[n++] = params[f];
                }
        }
        hr_wait(hr, HTTP_DB_WAIT_MS, post_expire);
        db_query(hr->h->sv->wdb, insert_sql(hr->h, mask), n, (const char *const *)given,
                 post_done_cb, hr);
out:
        for (int f = 0; f < HTTP_TASK_NFIELDS; f++)
                free(params[f]);
}

/* ---- GET /api/tasks/ID ---- */

static void get_done_cb(PGresult *res, void *arg)
{
        struct http_req *hr = arg;

        hr_done_waiting(hr);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
                reply_db_error(hr, res, "reading the task");
        else if (PQntuples(res) == 0)
                reply_error(hr, 404, "no task %s", hr->path + strlen("/api/tasks/"));
        else
                reply(hr, 200, "application/json", PQgetvalue(res, 0, 0),
                      (size_t)PQgetlength(res, 0, 0));
        hr_unref(hr);
}

static void get_expire(struct http_req *hr)
{
        reply_error(hr, 503, "the database did not answer within %d s", HTTP_DB_WAIT_MS / 1000);
}

static void get_task(struct http_req *hr)
{
        static const char sql[] =
            "SELECT to_jsonb(t)::text FROM chimera.tasks t WHERE id = $1::bigint";
        const char *id = hr->path + strlen("/api/tasks/");
        const char *params[1] = {id};
        size_t len = strlen(id);

        /* Digits only; the database refuses what is too large for a bigint. */
        if (len == 0 || len > 19 || strspn(id, "0123456789") != len) {
                reply_error(hr, 400, "bad task id \"%.*s\": expected a positive integer",
                            util_utf8_cut(id, 32), id);
                return;
        }
        if (!db_is_up(hr->h->sv->wdb)) {
                reply_db_down(hr);
                return;
        }
        hr_wait(hr, HTTP_DB_WAIT_MS, get_expire);
        db_query(hr->h->sv->wdb, sql, 1, params, get_done_cb, hr);
}

/* ---- routing ---- */

static const struct route {
        const char *path; /* exact; a prefix when it ends in '/' */
        int methods;
        const char *allow; /* the Allow header of a 405 */
        void (*handle)(struct http_req *hr);
} ROUTES[] = {
    {"/health", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", health},
    {"/metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", metrics},
    {"/api/tasks", EVHTTP_REQ_POST, "POST", post_task},
    {"/api/tasks/", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", get_task},
};

static const struct route *route_find(const char *path)
{
        for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
                const char *p = ROUTES[i].path;
                size_t n = strlen(p);
                if (p[n - 1] == '/' ? strncmp(path, p, n) == 0 : strcmp(path, p) == 0)
                        return &ROUTES[i];
        }
        return NULL;
}

static void request_cb(struct evhttp_request *req, void *arg)
{
        struct http_req *hr = hr_new(arg, req);
        const struct route *r = route_find(hr->path);

        if (r == NULL) {
                reply_error(hr, 404, "no such endpoint: %s", hr->path);
        } else if (!(r->methods & (int)hr->method)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", r->allow);
                reply_error(hr, 405, "%s takes %s", r->path, r->allow);
        } else {
                /* A statement's callback may run before handle returns
                 * (database down): our hold keeps hr until then. */
                r->handle(hr);
        }
        hr_unref(hr);
}

/* ---- start and stop ---- */

/* Splits "HOST:PORT" or "[V6ADDR]:PORT".  Returns 0, or -1 after logging. */
static int split_listen(const char *s, char *host, size_t hostsz, ev_uint16_t *port)
{
        const char *colon, *h = s;
        size_t hlen;
        char *end;
        long p;

        if (*s == '[') {
                const char *close = strchr(s, ']');
                colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
                h = s + 1;
                hlen = close != NULL ? (size_t)(close - h) : 0;
        } else {
                colon = strrchr(s, ':');
                hlen = colon != NULL ? (size_t)(colon - s) : 0;
                if (memchr(s, ':', hlen) != NULL) {
                        log_warnx("http.listen %s: write an IPv6 address in brackets, "
                                  "as in \"[::1]:8080\"",
                                  s);
                        return -1;
                }
        }
        errno = 0;
        p = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
        if (colon == NULL || hlen == 0 || hlen >= hostsz || errno != 0 || *end != '\0' ||
            end == colon + 1 || p < 1 || p > 65535) {
                log_warnx("http.listen %s: expected \"HOST:PORT\" such as \"127.0.0.1:8080\"", s);
                return -1;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        *port = (ev_uint16_t)p;
        return 0;
}

/*
 * Reads the bearer token: the file's first line, without its line end.
 * Returns 0, or -1 after logging.
 */
static int read_token(struct http *h, const char *path)
{
        char buf[HTTP_MAX_TOKEN + 2];
        FILE *f = fopen(path, "re");
        size_t n;

        if (f == NULL) {
                log_warn("http.token_file %s: cannot open", path);
                return -1;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        if (ferror(f)) {
                log_warn("http.token_file %s: cannot read", path);
                fclose(f);
                return -1;
        }
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        if (n == 0 || n > HTTP_MAX_TOKEN || strlen(buf) != n) {
                log_warnx("http.token_file %s: expected one line with the token (1 to %d bytes)",
                          path, HTTP_MAX_TOKEN);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f) {
                        log_warnx("http.token_file %s: the token must not contain spaces or "
                                  "control characters",
                                  path);
                        return -1;
                }
        }
        h->token = util_strdup(buf);
        h->token_len = n;
        explicit_bzero(buf, sizeof(buf));
        return 0;
}

static int http_listen(struct http *h, const char *listen)
{
        struct evhttp_bound_socket *bound;
        char host[256];
        ev_uint16_t port;

        if (split_listen(listen, host, sizeof(host), &port) < 0)
                return -1;
        errno = 0;
        bound = evhttp_bind_socket_with_handle(h->evh, host, port);
        if (bound == NULL) {
                if (errno != 0)
                        log_warn("http.listen %s: cannot listen", listen);
                else
                        log_warnx("http.listen %s: cannot listen (unknown host?)", listen);
                return -1;
        }
        /* libevent opens it close-on-exec already; workers must never
         * inherit it, so make sure. */
        if (util_set_cloexec(evhttp_bound_socket_get_fd(bound)) < 0) {
                log_warn("http.listen %s: FD_CLOEXEC", listen);
                return -1;
        }
        log_info("http: listening on %s%s", listen,
                 h->token != NULL ? " (POST needs the token)" : "");
        return 0;
}

struct http *http_new(struct supervisor *sv)
{
        struct http *h = util_calloc(1, sizeof(*h));

        h->sv = sv;
        TAILQ_INIT(&h->waiting);
        if (sv->cfg->http_token_file != NULL && read_token(h, sv->cfg->http_token_file) < 0)
                goto failed;
        h->evh = evhttp_new(sv->base);
        if (h->evh == NULL) {
                log_warnx("http: evhttp_new failed");
                goto failed;
        }
        evhttp_set_timeout(h->evh, HTTP_TIMEOUT_S);
        evhttp_set_max_body_size(h->evh, HTTP_MAX_BODY);
        evhttp_set_max_headers_size(h->evh, HTTP_MAX_HEADERS);
        /* Every method reaches request_cb, which answers 405 with Allow. */
        evhttp_set_allowed_methods(h->evh, HTTP_ALL_METHODS);
        /* Read an oversized body to its end before answering 413, so that
         * the client, still sending, gets the answer rather than a reset. */
        if (evhttp_set_flags(h->evh, EVHTTP_SERVER_LINGERING_CLOSE) != 0)
                log_warnx("http: no lingering close; clients sending too large a body may see "
                          "a reset instead of 413");
        evhttp_set_gencb(h->evh, request_cb, h);
        if (http_listen(h, sv->cfg->http_listen) < 0)
                goto failed;
        return h;
failed:
        http_free(h);
        return NULL;
}

void http_free(struct http *h)
{
        struct http_req *hr;

        if (h == NULL)
                return;
        /* evhttp_free() frees the requests we have not answered. */
        while ((hr = TAILQ_FIRST(&h->waiting)) != NULL) {
                TAILQ_REMOVE(&h->waiting, hr, entry);
                hr_free(hr);
        }
        if (h->evh != NULL)
                evhttp_free(h->evh);
        for (size_t i = 0; i < sizeof(h->insert_sql) / sizeof(h->insert_sql[0]); i++)
                free(h->insert_sql[i]);
        if (h->token != NULL)
                explicit_bzero(h->token, h->token_len);
        free(h->token);
        free(h);
}
