/*
 * outbox.h - the frames a worker has to send, written together.
 *
 * A quick task produces several frames (phase finished, result); written
 * one by one, each would wake the supervisor.  They are collected here and
 * written with one write() when the worker is about to wait for something
 * (an agent program, builtin:sleep, the next task).  One worker runs one
 * task at a time, so there is one outbox per process.
 */
#ifndef CHIMERA_OUTBOX_H
#define CHIMERA_OUTBOX_H

#include <stddef.h>

#include <jansson.h>

/* Encodes msg (stolen) as a frame of at most max bytes and queues it; -1 if it cannot. */
int outbox_add(json_t *msg, size_t max);

/* Writes every queued frame to fd; -1 when the socket failed. */
int outbox_flush(int fd);

#endif
