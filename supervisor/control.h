/*
 * control.h - chimerad's control socket: newline-delimited JSON requests
 * and replies on a unix stream socket, for chimera-ctl.
 *
 *   {"cmd":"status"}       ->  {"ok":true,"supervisor":{...},"database":{...},
 *                               "pool":{...},"tasks":{...},"breakers":[...]}
 *   {"cmd":"workers"}      ->  {"ok":true,"supervisor":{...},"database":{...},
 *                               "pool":{...}}   (no database query)
 *   {"cmd":"cancel","id":N} -> {"ok":true,"id":N,"pid":...,"slot":...,...}, or
 *                              {"ok":false,"code":"not_held","supervisor":ID,...}
 *                              when no worker here runs task N
 *   {"cmd":"reload"}       ->  {"ok":true,"config":PATH,...}, or
 *                              {"ok":false,"error":"<why the config does not load>"}
 *   {"cmd":"ping"}         ->  {"ok":true}
 *   anything else          ->  {"ok":false,"error":"..."}
 */
#ifndef CHIMERA_CONTROL_H
#define CHIMERA_CONTROL_H

struct supervisor;
struct control;

/*
 * Listens on path (mode 0660).  A stale socket left by a dead chimerad is
 * replaced; a live one is an error.  Returns NULL (after logging why) on
 * failure.
 */
struct control *control_new(struct supervisor *sv, const char *path);

/* Stops listening, removes the socket file and drops every connection. */
void control_free(struct control *ctl);

#endif
