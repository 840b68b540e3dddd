/*
 * queue.h - chimerad's use of the chimera.tasks queue, on top of db.c:
 * claiming, the fenced writes of checkpoints, events and outcomes (batched:
 * whatever arrives while one batch is being written goes out together in
 * the next), supervisor registration with heartbeat, lease renewal and the
 * reaper of expired leases.
 */
#ifndef CHIMERA_QUEUE_H
#define CHIMERA_QUEUE_H

#include <stdbool.h>

#include <jansson.h>

#include "chimerad.h"
#include "jbuf.h"

struct queue;

/* Creates the queue logic for sv (whose db and config must exist). */
struct queue *queue_new(struct supervisor *sv);
void queue_free(struct queue *q);

/* sv->cfg was replaced (SIGHUP): rebuild what derives from it. */
void queue_reconfigure(struct queue *q);

/* The database connection for claims (sv->db) came up or went down. */
void queue_db_state(struct queue *q, bool up);

/* The connection for writes (sv->wdb) came up or went down. */
void queue_write_db_state(struct queue *q, bool up);

/* A NOTIFY arrived: new tasks may be waiting. */
void queue_notified(struct queue *q);

/* A worker became free: claim if there may be work. */
void queue_kick(struct queue *q);

/*
 * Records a phase event for task (borrowed): kind "phase_started" or
 * "phase_finished", detail the event's detail object (none: JTEXT_NONE).
 * With state given the checkpoint is stored too.  Texts are borrowed,
 * copied as they are into what is written: they must be valid JSON (a
 * frame_decode_report() value or a dump).
 */
void queue_phase(struct queue *q, const struct task *task, const char *kind, const char *phase,
                 struct jtext detail, struct jtext state);

/*
 * Records the outcome of task's attempt (task borrowed).  status is
 * "succeeded" (result, may be none, is its JSON), "failed" (final; error
 * says why), "retry" (transient: queued again after a back-off, or dead when
 * attempts are used up), "requeue" (shutdown: queued again at once, the
 * attempt not charged), "defer" (an agent it needs is paused by its circuit
 * breaker: queued again after the cool-down, not charged) or "cancelled"
 * (an operator cancelled it: final, never retried).  state, may be none, is
 * the last checkpoint.  Texts as for queue_phase().
 */
void queue_finish(struct queue *q, const struct task *task, const char *status, struct jtext result,
                  const char *error, struct jtext state);

/*
 * Gives back the tasks claimed ahead of free workers (pool.prefetch) that
 * no worker has taken yet: queued again at once, uncharged (drain, reload).
 */
void queue_release_ready(struct queue *q, const char *why);

/* Cancels task id if it waits, claimed ahead, for a worker; -1 if not. */
int queue_cancel_ready(struct queue *q, int64_t id);

/* Tasks claimed ahead and waiting for a worker. */
size_t queue_ready_count(const struct queue *q);

/* True when no claim, write or other statement is pending. */
bool queue_quiet(const struct queue *q);

/* Removes this supervisor's row (at exit). */
void queue_deregister(struct queue *q);

/*
 * Counts tasks by status; cb gets an object {"queued": n, ...}, or NULL if
 * the database could not answer.  The object is borrowed for the call.
 */
typedef void (*queue_counts_cb)(json_t *counts, void *arg);
void queue_counts(struct queue *q, queue_counts_cb cb, void *arg);

#endif
