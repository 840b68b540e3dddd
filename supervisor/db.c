/*
 * db.c - the asynchronous PostgreSQL client of chimerad.
 *
 * The connection is a small state machine: DOWN -> CONNECTING (PQconnectPoll
 * driven by socket events) -> UP (a persistent read event; a write event
 * only while libpq has unsent data) -> DOWN again on any connection error,
 * with a reconnect timer that backs off from 100 ms to 5 s.
 *
 * Statements run one at a time, in order.  That keeps error handling
 * simple (a failed statement affects nobody else) and is enough because
 * callers batch their work into few statements (see queue.c).  The hot
 * ones are prepared statements: prepared on a connection the first time
 * they run there, then executed without being parsed and planned again.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "db.h"
#include "log.h"
#include "util.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define MAX_PREPARED     16

enum db_conn_state {
        DB_DOWN,
        DB_CONNECTING,
        DB_UP,
};

struct db_query {
        TAILQ_ENTRY(db_query) entry;
        const char *sql;
        const char *name; /* of the prepared statement, or NULL */
        int nparams;
        char **params;
        int *lengths; /* of binary parameters; NULL when all are text */
        int *formats; /* 1 binary (borrowed), 0 text (owned); NULL when all are text */
        db_result_cb cb;
        void *arg;
};

TAILQ_HEAD(db_query_list, db_query);

struct db {
        struct event_base *base;
        char *conninfo;
        const char *name;  /* what the connection is for, in log lines */
        char app_name[64]; /* "chimerad NAME", its application_name unless conninfo sets one */
        char *session_sql; /* run first on every new connection (db_set_session_sql), or NULL */
        char *listen_sql;  /* "LISTEN channel", or NULL */
        db_state_cb state_cb;
        db_notify_cb notify_cb;
        void *arg;

        PGconn *conn;
        enum db_conn_state state;
        evutil_socket_t sock;
        struct event *read_ev, *write_ev, *reconnect_ev, *watchdog_ev;
        int64_t timeout_ms; /* longest wait for a statement's answer; 0 = forever */
        int64_t backoff_ms;

        struct db_query_list queue;
        struct db_query *inflight;
        PGresult *result;                   /* kept result of the in-flight statement */
        const char *setup_inflight;         /* session_sql or listen_sql in flight, or NULL */
        bool session_done;                  /* session_sql was run on this connection */
        bool listening;                     /* LISTEN done on this connection */
        bool preparing;                     /* the in-flight statement is being prepared first */
        const char *prepared[MAX_PREPARED]; /* names prepared on this connection */
        int nprepared;
        unsigned npending;
        char last_error[512];
};

static void db_io_cb(evutil_socket_t fd, short what, void *arg);
static void db_lost(struct db *db);
static void watchdog_cb(evutil_socket_t fd, short what, void *arg);
static void abort_socket(struct db *db);
static void db_connect_cb(evutil_socket_t fd, short what, void *arg);
static void db_send_next(struct db *db);

struct db *db_new(struct event_base *base, const char *name, const char *conninfo,
                  const char *listen_channel, db_state_cb state_cb, db_notify_cb notify_cb,
                  void *arg)
{
        struct db *db = util_calloc(1, sizeof(*db));

        db->base = base;
        db->name = name;
        snprintf(db->app_name, sizeof(db->app_name), "chimerad %s", name);
        db->conninfo = util_strdup(conninfo ? conninfo : "");
        if (listen_channel != NULL) {
                size_t n = strlen(listen_channel) + sizeof("LISTEN ");
                db->listen_sql = util_calloc(1, n);
                snprintf(db->listen_sql, n, "LISTEN %s", listen_channel);
        }
        db->state_cb = state_cb;
        db->notify_cb = notify_cb;
        db->arg = arg;
        db->sock = -1;
        db->backoff_ms = RECONNECT_MIN_MS;
        TAILQ_INIT(&db->queue);
        db->reconnect_ev = evtimer_new(base, db_connect_cb, db);
        db->watchdog_ev = evtimer_new(base, watchdog_cb, db);
        if (db->reconnect_ev == NULL || db->watchdog_ev == NULL)
                fatalx("%s: evtimer_new", __func__);
        return db;
}

static void query_free(struct db_query *q)
{
        if (q == NULL)
                return;
        for (int i = 0; i < q->nparams; i++)
                if (q->formats == NULL || q->formats[i] == 0)
                        free(q->params[i]);
        free(q->params);
        free(q->lengths);
        free(q->formats);
        free(q);
}

static void set_error(struct db *db, const char *msg)
{
        size_t n;

        snprintf(db->last_error, sizeof(db->last_error), "%s", msg ? msg : "unknown error");
        n = strlen(db->last_error);
        while (n > 0 && (db->last_error[n - 1] == '\n' || db->last_error[n - 1] == ' '))
                db->last_error[--n] = '\0';
        /* libpq's messages may span lines; a log line must not. */
        for (char *c = db->last_error; *c != '\0'; c++)
                if (*c == '\n' || *c == '\r' || *c == '\t')
                        *c = ' ';
}

static void free_events(struct db *db)
{
        if (db->read_ev != NULL)
                event_free(db->read_ev);
        if (db->write_ev != NULL)
                event_free(db->write_ev);
        db->read_ev = db->write_ev = NULL;
}

static void schedule_reconnect(struct db *db)
{
        struct timeval tv;
        int64_t ms = db->backoff_ms;

        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
        evtimer_add(db->reconnect_ev, &tv);
        db->backoff_ms = ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : ms * 2;
}

/*
 * Drops the connection.  Every statement not answered yet, in flight or
 * queued, learns of it through a NULL result, in order.  None is carried
 * over to the next connection: what was decided before the loss (the
 * tasks we hold, what to claim) may be stale by then, so the callers issue
 * fresh statements once the connection is back.
 */
static void db_lost(struct db *db)
{
        struct db_query *q = db->inflight;
        struct db_query_list failed;
        bool was_up = db->state == DB_UP;

        free_events(db);
        evtimer_del(db->watchdog_ev);
        if (db->conn != NULL) {
                set_error(db, PQerrorMessage(db->conn));
                PQfinish(db->conn);
                db->conn = NULL;
        }
        db->sock = -1;
        db->state = DB_DOWN;
        db->inflight = NULL;
        db->setup_inflight = NULL;
        db->session_done = false;
        db->listening = false;
        db->preparing = false;
        db->nprepared = 0;
        PQclear(db->result);
        db->result = NULL;
        TAILQ_INIT(&failed);
        TAILQ_CONCAT(&failed, &db->queue, entry);
        if (q != NULL) {
                db->npending--;
                q->cb(NULL, q->arg);
                query_free(q);
        }
        /* The state is DOWN already, so these callbacks cannot queue new work. */
        while ((q = TAILQ_FIRST(&failed)) != NULL) {
                TAILQ_REMOVE(&failed, q, entry);
                db->npending--;
                q->cb(NULL, q->arg);
                query_free(q);
        }
        if (was_up) {
                log_warnx("database connection lost (%s): %s", db->name, db->last_error);
                db->state_cb(false, db->arg);
        }
        schedule_reconnect(db);
}

/*
 * Opens the connection with TCP keepalives on, so that a peer that
 * vanished is noticed while idle too, and named "chimerad NAME" in
 * pg_stat_activity; the user's connection string comes last, so anything
 * it sets wins.
 */
static PGconn *connect_start(struct db *db)
{
        static const char *const keys[] = {"keepalives",
                                           "keepalives_idle",
                                           "keepalives_interval",
                                           "keepalives_count",
                                           "fallback_application_name",
                                           "dbname",
                                           NULL};
        const char *values[] = {"1", "10", "5", "3", db->app_name, db->conninfo, NULL};

        return PQconnectStartParams(keys, values, 1);
}

/*
 * No answer to a statement for timeout_ms: the server or the network is
 * gone without closing the connection (a cut cable sends no RST).  Drop
 * it; the statement's callback learns that it was lost, and a new
 * connection is made.
 */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
        struct db *db = arg;

        if (db->state == DB_CONNECTING) {
                /* libpq leaves the timeout of a nonblocking connect to us. */
                log_warnx("connecting to the database (%s) took over %lld ms: trying again",
                          db->name, (long long)db->timeout_ms);
                free_events(db);
                PQfinish(db->conn);
                db->conn = NULL;
                db->state = DB_DOWN;
                schedule_reconnect(db);
                return;
        }
        if (db->state != DB_UP || (db->inflight == NULL && db->setup_inflight == NULL))
                return;
        log_warnx("the database did not answer within %lld ms (%s): reconnecting",
                  (long long)db->timeout_ms, db->name);
        abort_socket(db);
        db_lost(db);
}

/*
 * Makes the coming close reset the connection instead of finishing it: the
 * statement still in the socket's send queue is thrown away, so that it
 * cannot reach the old server session late, after the network comes back,
 * and claim rows nobody is waiting for.
 */
static void abort_socket(struct db *db)
{
        struct linger now = {.l_onoff = 1, .l_linger = 0};
        char why[96];
        int fd = db->conn != NULL ? PQsocket(db->conn) : -1;

        free_events(db); /* before the fd they watch is closed */
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now)) < 0)
                log_warn("%s: setsockopt SO_LINGER", __func__);
        snprintf(why, sizeof(why), "no answer within %lld ms", (long long)db->timeout_ms);
        PQfinish(db->conn);
        db->conn = NULL;
        set_error(db, why);
}

static void watchdog_arm(struct db *db)
{
        struct timeval tv = {db->timeout_ms / 1000, (db->timeout_ms % 1000) * 1000};

        if (db->timeout_ms > 0)
                evtimer_add(db->watchdog_ev, &tv);
}

void db_set_timeout(struct db *db, int64_t timeout_ms)
{
        db->timeout_ms = timeout_ms;
}

void db_set_session_sql(struct db *db, const char *sql)
{
        free(db->session_sql);
        db->session_sql = sql != NULL ? util_strdup(sql) : NULL;
}

void db_start(struct db *db)
{
        db_connect_cb(-1, 0, db);
}

static int watch_connect(struct db *db, short what)
{
        free_events(db);
        db->sock = PQsocket(db->conn);
        if (db->sock < 0)
                return -1;
        db->read_ev = event_new(db->base, db->sock, what, db_connect_cb, db);
        if (db->read_ev == NULL || event_add(db->read_ev, NULL) < 0)
                return -1;
        return 0;
}

/* Server notices (a FATAL before disconnecting, a WARNING) as one log line each. */
static void notice_cb(void *arg, const char *message)
{
        char line[512];
        size_t n;

        snprintf(line, sizeof(line), "%s", message);
        n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
                line[--n] = '\0';
        for (char *c = line; *c != '\0'; c++)
                if (*c == '\n' || *c == '\t')
                        *c = ' ';
        log_warnx("database: %s", line);
}

static void db_became_up(struct db *db)
{
        evtimer_del(db->watchdog_ev);
        free_events(db);
        db->sock = PQsocket(db->conn);
        PQsetNoticeProcessor(db->conn, notice_cb, db);
        if (PQsetnonblocking(db->conn, 1) != 0) {
                db_lost(db);
                return;
        }
        db->read_ev = event_new(db->base, db->sock, EV_READ | EV_PERSIST, db_io_cb, db);
        db->write_ev = event_new(db->base, db->sock, EV_WRITE, db_io_cb, db);
        if (db->read_ev == NULL || db->write_ev == NULL || event_add(db->read_ev, NULL) < 0)
                fatalx("%s: cannot watch the database socket", __func__);
        db->state = DB_UP;
        db->backoff_ms = RECONNECT_MIN_MS;
        db->last_error[0] = '\0';
        log_info("database connection up (%s: server %d, pid %d)", db->name,
                 PQserverVersion(db->conn), PQbackendPID(db->conn));
        db->state_cb(true, db->arg);
        db_send_next(db);
}

/* Starts a connection attempt, or advances the one under way. */
static void db_connect_cb(evutil_socket_t fd, short what, void *arg)
{
        struct db *db = arg;
        PostgresPollingStatusType st;

        if (db->state == DB_DOWN) {
                db->conn = connect_start(db);
                if (db->conn == NULL)
                        fatalx("%s: out of memory", __func__);
                db->state = DB_CONNECTING;
                watchdog_arm(db);
                if (PQstatus(db->conn) == CONNECTION_BAD)
                        goto failed;
                st = PGRES_POLLING_WRITING;
        } else {
                st = PQconnectPoll(db->conn);
        }
        switch (st) {
        case PGRES_POLLING_READING:
                if (watch_connect(db, EV_READ) < 0)
                        goto failed;
                return;
        case PGRES_POLLING_WRITING:
                if (watch_connect(db, EV_WRITE) < 0)
                        goto failed;
                return;
        case PGRES_POLLING_OK:
                db_became_up(db);
                return;
        default:
                goto failed;
        }
failed:
        set_error(db, PQerrorMessage(db->conn));
        log_warnx("cannot connect to the database (%s): %s (retrying in %lld ms)", db->name,
                  db->last_error, (long long)db->backoff_ms);
        evtimer_del(db->watchdog_ev);
        free_events(db);
        PQfinish(db->conn);
        db->conn = NULL;
        db->state = DB_DOWN;
        schedule_reconnect(db);
}

void db_query(struct db *db, const char *sql, int nparams, const char *const *params,
              db_result_cb cb, void *arg)
{
        db_query_prepared(db, NULL, sql, nparams, params, cb, arg);
}

void db_query_prepared(struct db *db, const char *name, const char *sql, int nparams,
                       const char *const *params, db_result_cb cb, void *arg)
{
        db_query_prepared_bin(db, name, sql, nparams, params, NULL, NULL, cb, arg);
}

void db_query_prepared_bin(struct db *db, const char *name, const char *sql, int nparams,
                           const char *const *params, const int *lengths, const bool *binary,
                           db_result_cb cb, void *arg)
{
        struct db_query *q = util_calloc(1, sizeof(*q));
        size_t n = (size_t)(nparams > 0 ? nparams : 1);

        q->sql = sql;
        q->name = name;
        q->nparams = nparams;
        q->params = util_calloc(n, sizeof(char *));
        if (binary != NULL) {
                q->lengths = util_calloc(n, sizeof(int));
                q->formats = util_calloc(n, sizeof(int));
        }
        for (int i = 0; i < nparams; i++) {
                if (binary != NULL && binary[i] && params[i] != NULL) {
                        q->params[i] = (char *)params[i]; /* borrowed: see db.h */
                        q->lengths[i] = lengths[i];
                        q->formats[i] = 1;
                } else {
                        q->params[i] = util_strdup(params[i]);
                }
        }
        q->cb = cb;
        q->arg = arg;
        TAILQ_INSERT_TAIL(&db->queue, q, entry);
        db->npending++;
        db_send_next(db);
}

static void flush_output(struct db *db)
{
        int rc = PQflush(db->conn);

        if (rc < 0)
                db_lost(db);
        else if (rc > 0)
                event_add(db->write_ev, NULL);
}

static bool is_prepared(const struct db *db, const char *name)
{
        for (int i = 0; i < db->nprepared; i++)
                if (strcmp(db->prepared[i], name) == 0)
                        return true;
        return false;
}

/* Sends the in-flight statement: its text, or its preparation, or its execution. */
static void send_inflight(struct db *db)
{
        struct db_query *q = db->inflight;
        const char *const *params = (const char *const *)q->params;
        int ok;

        watchdog_arm(db);
        if (q->name == NULL) {
                ok = PQsendQueryParams(db->conn, q->sql, q->nparams, NULL, params, q->lengths,
                                       q->formats, 0);
        } else if (!is_prepared(db, q->name) && db->nprepared < MAX_PREPARED) {
                db->preparing = true;
                ok = PQsendPrepare(db->conn, q->name, q->sql, q->nparams, NULL);
        } else if (!is_prepared(db, q->name)) {
                log_warnx("%s: more than %d prepared statements; %s runs unprepared", __func__,
                          MAX_PREPARED, q->name);
                ok = PQsendQueryParams(db->conn, q->sql, q->nparams, NULL, params, q->lengths,
                                       q->formats, 0);
        } else {
                ok = PQsendQueryPrepared(db->conn, q->name, q->nparams, params, q->lengths,
                                         q->formats, 0);
        }
        if (!ok) {
                db_lost(db);
                return;
        }
        flush_output(db);
}

static void db_send_next(struct db *db)
{
        struct db_query *q;

        if (db->state != DB_UP || db->inflight != NULL || db->setup_inflight != NULL)
                return;
        /* The session's settings, then LISTEN, go first on every new connection,
         * before anything queued. */
        if (db->session_sql != NULL && !db->session_done)
                db->setup_inflight = db->session_sql;
        else if (db->listen_sql != NULL && !db->listening)
                db->setup_inflight = db->listen_sql;
        if (db->setup_inflight != NULL) {
                if (!PQsendQuery(db->conn, db->setup_inflight)) {
                        db_lost(db);
                        return;
                }
                watchdog_arm(db);
                flush_output(db);
                return;
        }
        q = TAILQ_FIRST(&db->queue);
        if (q == NULL)
                return;
        TAILQ_REMOVE(&db->queue, q, entry);
        db->inflight = q;
        send_inflight(db);
}

static void deliver_notifies(struct db *db)
{
        PGnotify *n;

        while ((n = PQnotifies(db->conn)) != NULL) {
                if (db->notify_cb != NULL)
                        db->notify_cb(n->extra, db->arg);
                PQfreemem(n);
        }
}

/* Called when the statement in flight has returned all its results. */
static void finish_statement(struct db *db)
{
        struct db_query *q = db->inflight;
        PGresult *res = db->result;

        evtimer_del(db->watchdog_ev);
        db->result = NULL;
        if (db->setup_inflight != NULL) {
                const char *sql = db->setup_inflight;
                bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

                db->setup_inflight = NULL;
                if (!ok)
                        log_warnx("%s failed: %s", sql, PQresultErrorMessage(res));
                if (sql == db->session_sql)
                        db->session_done = true; /* not retried: the session works without */
                else
                        db->listening = ok;
                PQclear(res);
                return;
        }
        if (db->preparing) {
                db->preparing = false;
                if (PQresultStatus(res) == PGRES_COMMAND_OK) {
                        /* Prepared: now run it (still in flight, still first in line). */
                        db->prepared[db->nprepared++] = q->name;
                        PQclear(res);
                        send_inflight(db);
                        return;
                }
                /* The error goes to the caller as the statement's own. */
        }
        db->inflight = NULL;
        db->npending--;
        /* The server starts on the next statement while the caller reads this
         * one's answer (a claim's can take a millisecond to hand out).  Should
         * that send lose the connection, the statements behind get their NULL
         * before this one gets its answer; none of them depends on it. */
        db_send_next(db);
        q->cb(res, q->arg);
        PQclear(res);
        query_free(q);
}

/* Reads what the server sent: notifications and results of the statement in flight. */
static void read_results(struct db *db)
{
        PGresult *res;

        if (!PQconsumeInput(db->conn)) {
                db_lost(db);
                return;
        }
        deliver_notifies(db);
        while ((db->inflight != NULL || db->setup_inflight != NULL) && !PQisBusy(db->conn)) {
                res = PQgetResult(db->conn);
                if (res == NULL) {
                        finish_statement(db);
                        db_send_next(db);
                        if (db->state != DB_UP)
                                return;
                        continue;
                }
                /* Keep the first error, else the last result. */
                if (db->result == NULL || PQresultStatus(db->result) != PGRES_FATAL_ERROR) {
                        PQclear(db->result);
                        db->result = res;
                } else {
                        PQclear(res);
                }
        }
        if (PQstatus(db->conn) == CONNECTION_BAD)
                db_lost(db);
}

static void db_io_cb(evutil_socket_t fd, short what, void *arg)
{
        struct db *db = arg;

        if (what & EV_WRITE) {
                flush_output(db);
                if (db->state != DB_UP)
                        return;
        }
        if (what & EV_READ)
                read_results(db);
}

bool db_is_up(const struct db *db)
{
        return db->state == DB_UP;
}

unsigned db_pending(const struct db *db)
{
        return db->npending;
}

const char *db_last_error(const struct db *db)
{
        return db->last_error;
}

void db_free(struct db *db)
{
        struct db_query *q;

        if (db == NULL)
                return;
        free_events(db);
        if (db->reconnect_ev != NULL)
                event_free(db->reconnect_ev);
        if (db->watchdog_ev != NULL)
                event_free(db->watchdog_ev);
        if (db->conn != NULL)
                PQfinish(db->conn);
        PQclear(db->result);
        query_free(db->inflight);
        while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
                TAILQ_REMOVE(&db->queue, q, entry);
                query_free(q);
        }
        free(db->session_sql);
        free(db->listen_sql);
        free(db->conninfo);
        free(db);
}

/*
 * Replaces the password of a URL ("postgresql://u:secret@h/db") or a
 * key=value string ("password=secret") with "***", so that connection
 * strings can be logged.
 */
char *db_redact(const char *conninfo)
{
        PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", NULL);
        char *out;
        size_t cap = 1024, len = 0;

        if (opts == NULL)
                return util_strdup("(unparsable connection string)");
        out = util_calloc(1, cap);
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
                const char *v = o->val;
                if (v == NULL || *v == '\0')
                        continue;
                if (strcmp(o->keyword, "password") == 0)
                        v = "***";
                int n = snprintf(out + len, cap - len, "%s%s=%s", len ? " " : "", o->keyword, v);
                if (n < 0 || (size_t)n >= cap - len)
                        break;
                len += (size_t)n;
        }
        PQconninfoFree(opts);
        return out;
}
