/*
 * privsep.c - the service account: resolving "user", "group" and
 * "control_socket_group", and the one-way drop from root (privsep.h).
 *
 * Only chimerad holds the database's credentials; its workers and their
 * agents run as the same user but never see them: pool.c gives a worker a
 * minimal environment and no descriptor but its socket, agent.c gives an
 * agent a clean one.  What this file adds is the user itself.  A chimerad
 * started as root with "user" set (by hand, an init script, a container)
 * becomes that user before it reads a task, so no workflow ever runs as
 * root.  Under systemd the unit's User= does the same before exec, and
 * "user" then names who chimerad already is.  A root chimerad without
 * "user" keeps running as root, with a warning at start: agents that
 * must administer the machine are a legitimate use, and refusing would
 * break every existing root set-up for a choice the operator can make.
 *
 * The drop is setresgid + setresuid with the user's supplementary groups
 * (initgroups), checked afterwards: every id must be the new one and
 * setuid(0) must fail, or chimerad does not go on.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "config.h"
#include "privsep.h"

static void user_name(uid_t uid, char *buf, size_t size)
{
        struct passwd *pw = getpwuid(uid);

        if (pw != NULL)
                snprintf(buf, size, "%s", pw->pw_name);
        else
                snprintf(buf, size, "uid %u", (unsigned)uid);
}

static void group_name(gid_t gid, char *buf, size_t size)
{
        struct group *gr = getgrgid(gid);

        if (gr != NULL)
                snprintf(buf, size, "%s", gr->gr_name);
        else
                snprintf(buf, size, "gid %u", (unsigned)gid);
}

/* The gid of group name, for the config key key; 0, or -1 with err set. */
static int lookup_group(const struct config *cfg, const char *key, const char *name, gid_t *gid,
                        char *err, size_t errsz)
{
        struct group *gr = getgrnam(name);

        if (gr == NULL) {
                snprintf(err, errsz, "%s: %s: no such group \"%s\"", cfg->path, key, name);
                return -1;
        }
        *gid = gr->gr_gid;
        return 0;
}

int privsep_resolve(const struct config *cfg, struct privsep *ps, char *err, size_t errsz)
{
        struct passwd *pw;
        gid_t gid;

        memset(ps, 0, sizeof(*ps));
        ps->uid = geteuid();
        ps->gid = getegid();
        ps->socket_gid = (gid_t)-1;
        if (cfg->user != NULL) {
                pw = getpwnam(cfg->user);
                if (pw == NULL) {
                        snprintf(err, errsz, "%s: user: no such user \"%s\"", cfg->path, cfg->user);
                        return -1;
                }
                if (ps->uid == 0 && pw->pw_uid != 0) {
                        ps->drop = true;
                        ps->uid = pw->pw_uid;
                        ps->gid = pw->pw_gid;
                } else if (pw->pw_uid != ps->uid) {
                        ps->not_root = true;
                }
        }
        if (cfg->group != NULL) {
                if (lookup_group(cfg, "group", cfg->group, &gid, err, errsz) < 0)
                        return -1;
                if (ps->drop)
                        ps->gid = gid;
                else if (gid != ps->gid && ps->uid != 0)
                        ps->not_root = true;
        }
        if (cfg->control_socket_group != NULL) {
                if (lookup_group(cfg, "control_socket_group", cfg->control_socket_group,
                                 &ps->socket_gid, err, errsz) < 0)
                        return -1;
        } else if (ps->drop) {
                /* Created by root, the socket would be root's: give it to the service. */
                ps->socket_gid = ps->gid;
        }
        user_name(ps->uid, ps->user, sizeof(ps->user));
        group_name(ps->gid, ps->group, sizeof(ps->group));
        return 0;
}

/* Whether every real, effective and saved id is now the one asked for. */
static bool ids_hold(uid_t uid, gid_t gid)
{
        uid_t ru, eu, su;
        gid_t rg, eg, sg;

        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                return false;
        return ru == uid && eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
}

/* root -> ps's user, for good.  0, or -1 with err set. */
static int become(const struct privsep *ps, char *err, size_t errsz)
{
        struct passwd *pw = getpwuid(ps->uid);

        if (pw == NULL) {
                snprintf(err, errsz, "user %s vanished from the user database", ps->user);
                return -1;
        }
        /* The groups first: once the user is set, they could no longer be changed. */
        if (initgroups(pw->pw_name, ps->gid) < 0) {
                snprintf(err, errsz, "initgroups(%s): %s", pw->pw_name, strerror(errno));
                return -1;
        }
        if (setresgid(ps->gid, ps->gid, ps->gid) < 0 || setresuid(ps->uid, ps->uid, ps->uid) < 0) {
                snprintf(err, errsz, "cannot become user %s, group %s: %s", ps->user, ps->group,
                         strerror(errno));
                return -1;
        }
        if (!ids_hold(ps->uid, ps->gid) || setuid(0) == 0 || seteuid(0) == 0) {
                snprintf(err, errsz, "the change to user %s, group %s did not hold", ps->user,
                         ps->group);
                return -1;
        }
        /* As su(1) does: libpq and anything else looking for files of "our" user find
         * the service user's (its ~/.pgpass), not root's. */
        if (setenv("HOME", pw->pw_dir, 1) < 0 || setenv("USER", pw->pw_name, 1) < 0 ||
            setenv("LOGNAME", pw->pw_name, 1) < 0) {
                snprintf(err, errsz, "setenv: %s", strerror(errno));
                return -1;
        }
        return 0;
}

int privsep_enter(const struct privsep *ps, char *err, size_t errsz)
{
        if (ps->drop && become(ps, err, errsz) < 0)
                return -1;
        /* The credentials are in our environment and memory; an agent runs as the same
         * user, and /proc would show them to it while we are dumpable. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
                snprintf(err, errsz, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
                return -1;
        }
        return 0;
}
