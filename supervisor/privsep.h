/*
 * privsep.h - who chimerad runs as: the "user", "group" and
 * "control_socket_group" settings, and the drop from root to them.
 *
 * Started as root with "user" set, chimerad does what needs root first
 * (the control socket and its directory, the HTTP listener and its token,
 * the cgroup tree), then becomes the user for good, before it connects to
 * the database or starts a worker.  Started as anyone else it stays who it
 * is.  Either way it makes itself non-dumpable, so that processes of the
 * same user (its agents) cannot read its memory or environment through
 * /proc.
 */
#ifndef CHIMERA_PRIVSEP_H
#define CHIMERA_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

/* The accounts of a config, resolved against the system's user database. */
struct privsep {
        bool drop;        /* started as root with "user": become uid/gid */
        uid_t uid;        /* the service user: who chimerad runs as once started */
        gid_t gid;        /* and its group */
        char user[256];   /* the service user's name ("uid N" without one), for messages */
        char group[256];  /* the group's name likewise */
        gid_t socket_gid; /* the control socket's group, or (gid_t)-1 to leave it be */
        bool not_root;    /* "user" names another account, but chimerad is not root */
};

/*
 * Looks up the accounts cfg (borrowed) names, for the process as it runs
 * now (root or not).  Fills *ps and returns 0, or returns -1 with
 * "ORIGIN: KEY: no such user ..." in err.
 */
int privsep_resolve(const struct config *cfg, struct privsep *ps, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * Becomes ps's user and group when ps->drop (supplementary groups from the
 * user database), checks that the change holds (root cannot be regained),
 * sets HOME, USER and LOGNAME to the user's, and makes the process
 * non-dumpable.  Returns 0, or -1 with the reason in err: the caller must
 * then not go on.
 */
int privsep_enter(const struct privsep *ps, char *err, size_t errsz)
    __attribute__((warn_unused_result));

#endif
