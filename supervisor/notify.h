/*
 * notify.h - the sd_notify protocol, for systemd's Type=notify services:
 * datagrams to $NOTIFY_SOCKET saying READY=1, STATUS=..., WATCHDOG=1,
 * RELOADING=1 and STOPPING=1.  Without NOTIFY_SOCKET every call does
 * nothing, so chimerad runs the same under systemd or a shell.
 */
#ifndef CHIMERA_NOTIFY_H
#define CHIMERA_NOTIFY_H

struct supervisor;

/*
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, removes them from
 * the environment (before any worker is forked), and starts the timer.
 * Never fails: without a usable socket every other call does nothing.
 */
void notify_start(struct supervisor *sv);

/*
 * The database answered and the schema is current (sv->state is RUNNING),
 * or a reload is done: READY=1 with STATUS=.  Ignored before the first
 * RUNNING (a reload while starting) and after notify_stopping().
 */
void notify_ready(struct supervisor *sv);

/*
 * A reload begins: RELOADING=1 with MONOTONIC_USEC=, once READY=1 was sent
 * and until STOPPING=1.  notify_ready() must follow when it is done.
 */
void notify_reloading(struct supervisor *sv);

/* Draining for exit begins. */
void notify_stopping(struct supervisor *sv);

/*
 * STATUS= with the pool's use, e.g. "3/8 workers busy, 120 tasks done (2
 * failed), 1 retried, database up", if it changed since the last one sent.
 * A timer of notify.c calls it every few seconds and on each watchdog tick.
 */
void notify_status(struct supervisor *sv);

/* Stops the timer and closes the socket. */
void notify_stop(struct supervisor *sv);

#endif
