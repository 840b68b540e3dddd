/*
 * http.h - chimerad's optional HTTP server (libevent evhttp), on when
 * http.listen is set: GET /health, GET /metrics (Prometheus text),
 * POST /api/tasks and GET /api/tasks/ID.
 */
#ifndef CHIMERA_HTTP_H
#define CHIMERA_HTTP_H

struct supervisor;
struct http;

/* Listens on sv->cfg->http_listen.  Returns NULL (after logging why) on failure. */
struct http *http_new(struct supervisor *sv);

/* Stops listening; NULL is fine. */
void http_free(struct http *h);

#endif
