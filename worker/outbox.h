/*
 * outbox.h - the frames a worker has to send, written together.
 *
 * A quick task produces several frames (phase finished, result); written
 * one by one, each would wake the supervisor.  They are collected here and
 * written with one write() when the worker is about to wait for something
 * (an agent program, builtin:sleep, the next task).  One worker runs one
 * task at a time, so there is one outbox per process.
 *
 * A frame is written straight into the outbox: outbox_begin() leaves room
 * for its header and hands out the buffer, the caller writes the body (one
 * JSON object, with jbuf.h), and outbox_end() fills in the header, or
 * takes the frame back out when it is too big to send.
 */
#ifndef CHIMERA_OUTBOX_H
#define CHIMERA_OUTBOX_H

#include <stddef.h>

#include "jbuf.h"

/*
 * Starts a frame after those queued and returns the buffer its body goes
 * into (borrowed: the outbox's own, valid until outbox_end()).  The caller
 * appends the body and nothing else, and ends every frame it begins before
 * it begins another or flushes.
 */
struct jbuf *outbox_begin(void);

/*
 * Ends the frame outbox_begin() started.  Returns 0 once it is queued, or
 * -1 (logged) when its body exceeds max bytes: it is then dropped, and the
 * frames queued before it stay.
 */
int outbox_end(size_t max) __attribute__((warn_unused_result));

/* Writes every queued frame to fd; -1 when the socket failed. */
int outbox_flush(int fd) __attribute__((warn_unused_result));

#endif
