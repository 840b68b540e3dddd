/*
 * notify.h - the sd_notify protocol, for systemd's Type=notify services:
 * datagrams to $NOTIFY_SOCKET saying READY=1, STATUS=..., WATCHDOG=1,
 * RELOADING=1 and STOPPING=1.  Without NOTIFY_SOCKET every call does
 * nothing, so chimerad runs the same under systemd or a shell.
 */
#ifndef CHIMERA_NOTIFY_H
#define CHIMERA_NOTIFY_H

struct supervisor;

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC; starts the watchdog timer. */
void notify_start(struct supervisor *sv);

/* The database answered and the pool is up. */
void notify_ready(struct supervisor *sv);

/* A reload begins (notify_ready() follows when it is done). */
void notify_reloading(struct supervisor *sv);

/* Draining for exit begins. */
void notify_stopping(struct supervisor *sv);

/* STATUS= with the pool's use, e.g. "3/8 workers busy, database up". */
void notify_status(struct supervisor *sv);

/* Stops the timer and closes the socket. */
void notify_stop(struct supervisor *sv);

#endif
