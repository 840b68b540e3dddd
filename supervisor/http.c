/*
 * http.c - the HTTP server (placeholder: not implemented yet).
 */
#include "chimerad.h"
#include "http.h"
#include "log.h"

struct http *http_new(struct supervisor *sv)
{
        log_warnx("http.listen is set, but the HTTP server is not implemented yet");
        return NULL;
}

void http_free(struct http *h)
{
}
