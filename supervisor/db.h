/*
 * db.h - a PostgreSQL connection of chimerad, driven by libpq's
 * asynchronous API inside the libevent loop.  chimerad has two: one for
 * claims and the heartbeat, one for the writes of task updates and the
 * rest (queue.c says why).
 *
 * Callers queue statements; they run one after another in FIFO order and
 * each callback gets its result.  The connection is opened in the
 * background and reopened with a back-off whenever it is lost; every
 * statement not answered when it is lost gets a NULL result.  The session
 * statements and LISTEN are re-issued on every new connection before
 * anything queued.
 */
#ifndef CHIMERA_DB_H
#define CHIMERA_DB_H

#include <stdbool.h>

#include <event2/event.h>
#include <libpq-fe.h>

struct db;

/*
 * Called with the result of a statement, or with res == NULL when the
 * connection was lost before the statement was answered (if it was in
 * flight, it may or may not have committed).  res is owned by db.c and
 * cleared after the call.
 */
typedef void (*db_result_cb)(PGresult *res, void *arg);

/* Called when the connection comes up (up = true) or is lost. */
typedef void (*db_state_cb)(bool up, void *arg);

/* Called for each NOTIFY on the channel; payload is borrowed. */
typedef void (*db_notify_cb)(const char *payload, void *arg);

/*
 * Creates the client; name (borrowed: a string literal) says what the
 * connection is for in log lines; conninfo (a libpq connection string or
 * URL, copied) may be "" for the PG* environment variables; with
 * listen_channel, notify_cb gets its notifications (else may be NULL).
 * Nothing connects until db_start().  Never returns NULL.
 */
struct db *db_new(struct event_base *base, const char *name, const char *conninfo,
                  const char *listen_channel, db_state_cb state_cb, db_notify_cb notify_cb,
                  void *arg);

/*
 * Sets the longest wait for a statement's answer before the connection is
 * taken as dead and replaced (0, the default, waits forever).
 */
void db_set_timeout(struct db *db, int64_t timeout_ms);

/*
 * Sets statements (sql, copied; several may be separated by semicolons) that
 * run first on every new connection, before LISTEN and anything queued,
 * such as SET for the session.  A failure is logged and not retried.
 */
void db_set_session_sql(struct db *db, const char *sql);

/* Starts connecting (in the background). */
void db_start(struct db *db);

/*
 * Queues sql (borrowed: a string literal that outlives the query) with
 * nparams text parameters (copied; a NULL element is SQL NULL).
 */
void db_query(struct db *db, const char *sql, int nparams, const char *const *params,
              db_result_cb cb, void *arg);

/*
 * As db_query, as a prepared statement called name: prepared on each
 * connection the first time it is used there (one more round trip), then
 * only executed, so the server no longer parses and plans it every time.
 * name and sql are borrowed string literals; one name, one sql.
 */
void db_query_prepared(struct db *db, const char *name, const char *sql, int nparams,
                       const char *const *params, db_result_cb cb, void *arg);

/*
 * As db_query_prepared, with parameters in PostgreSQL's binary format where
 * binary[i] is set: params[i] is then lengths[i] bytes, the type's send
 * format (for the type its cast in sql names), and borrowed, not copied:
 * the caller keeps them unchanged until cb has been called (a write batch
 * is large, and its arrays wait in the caller anyway).  Elsewhere
 * lengths[i] is ignored and params[i] is text, copied, as above.
 */
void db_query_prepared_bin(struct db *db, const char *name, const char *sql, int nparams,
                           const char *const *params, const int *lengths, const bool *binary,
                           db_result_cb cb, void *arg);

bool db_is_up(const struct db *db);

/* Statements queued or in flight. */
unsigned db_pending(const struct db *db);

/* The server's last error text, or "" (borrowed). */
const char *db_last_error(const struct db *db);

/* Closes the connection; queued statements are dropped without callbacks. */
void db_free(struct db *db);

/* Hides the password of a connection string for log lines; returns malloc'd text. */
char *db_redact(const char *conninfo);

#endif
