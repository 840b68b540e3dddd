/*
 * retention.h - deletes finished tasks, with their events, once they are
 * older than the config's `retention`, in small batches on chimerad's one
 * database connection.
 */
#ifndef CHIMERA_RETENTION_H
#define CHIMERA_RETENTION_H

#include <stdbool.h>

#include "chimerad.h"

/* Rows of chimera.tasks deleted by one statement. */
#define RETENTION_BATCH 500

struct retention;

/*
 * Creates the retention timer for sv, whose base and db must exist; nothing
 * runs before retention_db_state() reports the connection up.  Never
 * returns NULL; free with retention_free().
 */
struct retention *retention_new(struct supervisor *sv);

/* Stops the timer; a batch still in flight is dropped with the db client. */
void retention_free(struct retention *r);

/*
 * The connection came up (a run starts shortly, once the supervisor is
 * running) or went down (the run under way stops; the next comes after
 * the reconnect).
 */
void retention_db_state(struct retention *r, bool up);

/*
 * sv->cfg was replaced (SIGHUP): the new `retention` applies from the next
 * batch, and the timer follows the new period.  `retention: "0"` turns
 * deleting off.
 */
void retention_reconfigure(struct retention *r);

/* True when no batch is in flight (chimerad waits for it before exiting). */
bool retention_quiet(const struct retention *r);

#endif
