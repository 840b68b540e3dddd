/*
 * http.h - chimerad's optional HTTP server (libevent evhttp), on when
 * http.listen is set: GET /health, GET /metrics (Prometheus text),
 * POST /api/tasks and GET /api/tasks/ID.
 */
#ifndef CHIMERA_HTTP_H
#define CHIMERA_HTTP_H

struct supervisor;
struct http;

/*
 * Listens on sv->cfg->http_listen ("HOST:PORT", "[V6ADDR]:PORT") in sv's
 * loop, and reads the bearer token from sv->cfg->http_token_file when that
 * is set.  sv is borrowed and must outlive the server; its database, queue
 * and pool need not exist yet, only by the time the loop runs.  Returns
 * NULL, after logging why, when the address does not parse or cannot be
 * bound, or the token file is unreadable or empty: chimerad then exits.
 * Settings are read once: a reload does not move the listener.
 */
struct http *http_new(struct supervisor *sv);

/*
 * Stops listening and drops open connections; NULL is fine.  Call it after
 * the loop has stopped and before db_free(): requests still waiting for the
 * database are dropped unanswered, and their statements must then never
 * call back (db_free() drops queued statements without callbacks).
 */
void http_free(struct http *h);

#endif
