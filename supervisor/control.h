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
 *   a command that changes something, from a peer that may not send it
 *                          ->  {"ok":false,"code":"permission_denied",
 *                               "error":"permission denied: only root, ..."}
 */
#ifndef CHIMERA_CONTROL_H
#define CHIMERA_CONTROL_H

#include <sys/types.h>

struct supervisor;
struct control;

/*
 * Listens on path, mode 0660, creating its directory if missing.  uid is
 * the service user (who chimerad runs as, or will once it drops root):
 * made by root, the socket and a directory it creates are given to it.
 * gid is the socket's group ("control_socket_group"), or (gid_t)-1 to
 * keep the group it was made with.  Root, uid and members of the socket's
 * group may send every command; others who can connect only "status",
 * "workers" and "ping".  A stale socket left by a dead chimerad is
 * replaced; a live one is an error.  Returns NULL (after logging why) on
 * failure.
 */
struct control *control_new(struct supervisor *sv, const char *path, uid_t uid, gid_t gid);

/* Stops listening, removes the socket file and drops every connection. */
void control_free(struct control *ctl);

#endif
