/*
 * cgroup.c - the pool's cgroup v2 sub-tree (cgroup.h).
 *
 * cgroup v2 forbids processes in a cgroup whose controllers are handed to
 * children, so chimerad first moves itself out of its delegated cgroup D
 * into D/supervisor, then enables the memory and pids controllers (those
 * D has) for D's children and for each D/worker-N:
 *
 *   D/supervisor        chimerad
 *   D/worker-N/worker   the worker of slot N (joined between fork and exec)
 *   D/worker-N/agent    its agents: memory.max, pids.max, cgroup.kill
 *
 * The agent gets a leaf of its own so that its limits, its OOM kill and
 * cgroup.kill reach only the agent, never the worker that must report it.
 * The worker sets the leaf's limits before each run (worker/confine.c);
 * chimerad only builds the tree, names each worker its leaf, and empties
 * the leaf when a worker dies under its agent.
 *
 * "Delegated" means: cgroup v2 (the unified hierarchy, or its mount on a
 * hybrid system), not the root cgroup, D's cgroup.procs and
 * cgroup.subtree_control writable by us, and chimerad alone in D (as the
 * main process of a Delegate=yes service is when it starts).  Anything else, or a failure
 * while building, means no sub-tree: one log line says so and agents get
 * rlimits only.  A root cgroup is never taken: it is the machine's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "log.h"
#include "util.h"

struct cgroup {
        char dir[PATH_MAX]; /* D */
        int slots;          /* worker-N made: 0 .. slots-1 */
        bool memory, pids;  /* controllers that reach the agent leaves */
};

/* Writes value into dir/file; 0, or -1 with errno set. */
static int write_file(const char *dir, const char *file, const char *value)
{
        char path[PATH_MAX + 64];

        int n = snprintf(path, sizeof(path), "%s/%s", dir, file);

        if (n < 0 || (size_t)n >= sizeof(path)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        return util_write_file_at(AT_FDCWD, path, value);
}

/* Reads dir/file (small) into buf; 0, or -1. */
static int read_file(const char *dir, const char *file, char *buf, size_t size)
{
        char path[PATH_MAX + 64];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, file);
        f = fopen(path, "re");
        if (f == NULL)
                return -1;
        n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        fclose(f);
        return 0;
}

/* Where the cgroup v2 hierarchy is mounted (from mountinfo), into buf; 0 or -1. */
static int find_mount(char *buf, size_t size)
{
        char line[4096], mnt[PATH_MAX];
        FILE *f = fopen("/proc/self/mountinfo", "re");
        int rc = -1;

        if (f == NULL)
                return -1;
        while (rc < 0 && fgets(line, sizeof(line), f) != NULL) {
                const char *sep = strstr(line, " - ");
                /* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE SOURCE OPTIONS */
                if (sep != NULL && strncmp(sep, " - cgroup2 ", 11) == 0 &&
                    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) {
                        snprintf(buf, size, "%s", mnt);
                        rc = 0;
                }
        }
        fclose(f);
        return rc;
}

/* Our cgroup v2 path ("0::/system.slice/chimerad.service" gives the part after "0::"). */
static int own_path(char *buf, size_t size)
{
        char line[4096];
        FILE *f = fopen("/proc/self/cgroup", "re");
        int rc = -1;

        if (f == NULL)
                return -1;
        while (rc < 0 && fgets(line, sizeof(line), f) != NULL) {
                if (strncmp(line, "0::", 3) == 0) {
                        line[strcspn(line, "\n")] = '\0';
                        snprintf(buf, size, "%s", line + 3);
                        rc = 0;
                }
        }
        fclose(f);
        return rc;
}

/* Whether chimerad is the only process in dir (its cgroup.procs). */
static bool alone_in(const char *dir)
{
        char procs[4096], *end;
        long pid;

        if (read_file(dir, "cgroup.procs", procs, sizeof(procs)) < 0)
                return false;
        for (const char *p = procs; *p != '\0'; p = end) {
                pid = strtol(p, &end, 10);
                if (end == p)
                        break;
                if (pid != (long)getpid())
                        return false;
                while (*end == '\n')
                        end++;
        }
        return true;
}

/*
 * Finds our delegated cgroup into cg->dir.  Returns 0, or -1 with why in
 * buf, for the log line.
 */
static int find_delegated(struct cgroup *cg, char *why, size_t whysz)
{
        char mount[PATH_MAX], path[PATH_MAX], file[PATH_MAX + 64];

        if (own_path(path, sizeof(path)) < 0 || find_mount(mount, sizeof(mount)) < 0) {
                snprintf(why, whysz, "no cgroup v2 hierarchy");
                return -1;
        }
        if (strcmp(path, "/") == 0) {
                snprintf(why, whysz, "chimerad runs in the root cgroup, which is not its own");
                return -1;
        }
        if ((size_t)snprintf(cg->dir, sizeof(cg->dir), "%s%s", mount, path) >= sizeof(cg->dir)) {
                snprintf(why, whysz, "the cgroup path is too long");
                return -1;
        }
        snprintf(file, sizeof(file), "%s/cgroup.subtree_control", cg->dir);
        if (access(cg->dir, W_OK) < 0 || access(file, W_OK) < 0) {
                snprintf(why, whysz, "%s is not delegated to chimerad (no Delegate=yes?)", cg->dir);
                return -1;
        }
        /* A cgroup shared with others (a login session's, a shell's) is not ours to
         * divide, even where we may write it. */
        if (!alone_in(cg->dir)) {
                snprintf(why, whysz, "%s holds other processes too", cg->dir);
                return -1;
        }
        return 0;
}

/* mkdir that is happy with a directory left by an earlier run. */
static int make_dir(const char *path)
{
        return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Enables each of the controllers available in dir for its children; the ones it could. */
static void enable_controllers(const char *dir, bool *memory, bool *pids)
{
        char have[512];

        *memory = *pids = false;
        if (read_file(dir, "cgroup.controllers", have, sizeof(have)) < 0)
                return;
        /* One write each: a controller that cannot be enabled must not block the other. */
        if (strstr(have, "memory") != NULL)
                *memory = write_file(dir, "cgroup.subtree_control", "+memory") == 0;
        if (strstr(have, "pids") != NULL)
                *pids = write_file(dir, "cgroup.subtree_control", "+pids") == 0;
}

/* Builds D/worker-N/{worker,agent}; 0 or -1 (errno set). */
static int make_slot(struct cgroup *cg, int slot)
{
        char dir[PATH_MAX + 32], leaf[PATH_MAX + 64];
        bool memory, pids;

        snprintf(dir, sizeof(dir), "%s/worker-%d", cg->dir, slot);
        if (make_dir(dir) < 0)
                return -1;
        enable_controllers(dir, &memory, &pids);
        cg->memory = cg->memory && memory;
        cg->pids = cg->pids && pids;
        snprintf(leaf, sizeof(leaf), "%s/worker", dir);
        if (make_dir(leaf) < 0)
                return -1;
        snprintf(leaf, sizeof(leaf), "%s/agent", dir);
        return make_dir(leaf);
}

/* Moves chimerad into D/supervisor and builds the slots; 0, or -1 with why. */
static int build(struct cgroup *cg, int pool_size, char *why, size_t whysz)
{
        char leaf[PATH_MAX + 32], pid[32];

        snprintf(leaf, sizeof(leaf), "%s/supervisor", cg->dir);
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        if (make_dir(leaf) < 0 || write_file(leaf, "cgroup.procs", pid) < 0) {
                snprintf(why, whysz, "cannot move into %s: %s", leaf, strerror(errno));
                return -1;
        }
        enable_controllers(cg->dir, &cg->memory, &cg->pids);
        for (int i = 0; i < pool_size; i++, cg->slots++) {
                if (make_slot(cg, i) < 0) {
                        snprintf(why, whysz, "cannot create %s/worker-%d: %s", cg->dir, i,
                                 strerror(errno));
                        return -1;
                }
        }
        return 0;
}

struct cgroup *cgroup_setup(int pool_size)
{
        struct cgroup *cg = util_calloc(1, sizeof(*cg));
        char why[PATH_MAX + 128];

        if (find_delegated(cg, why, sizeof(why)) < 0 ||
            build(cg, pool_size, why, sizeof(why)) < 0) {
                log_info("agents get rlimits only, no cgroup: %s", why);
                cgroup_free(cg);
                return NULL;
        }
        log_info("agents run in cgroup leaves under %s (memory.max: %s, pids.max: %s)", cg->dir,
                 cg->memory ? "yes" : "no, RLIMIT_AS instead",
                 cg->pids ? "yes" : "no, RLIMIT_NPROC instead");
        return cg;
}

/* Gives dir and the files in it (not its child cgroups) to uid:gid; 0, or -1 with errno. */
static int give_dir(const char *dir, uid_t uid, gid_t gid)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int rc = 0, saved = 0;

        if (d == NULL)
                return -1;
        if (fchownat(dirfd(d), "", uid, gid, AT_EMPTY_PATH) < 0) {
                rc = -1;
                saved = errno;
        }
        while ((e = readdir(d)) != NULL) {
                /* Child cgroups are given by the caller; cgroup files never start with '.'. */
                if (e->d_name[0] == '.' || e->d_type == DT_DIR)
                        continue;
                if (fchownat(dirfd(d), e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
                        rc = -1;
                        saved = errno;
                }
        }
        closedir(d);
        errno = saved;
        return rc;
}

int cgroup_give(const struct cgroup *cg, uid_t uid, gid_t gid)
{
        /* Of D itself only what Delegate=yes hands over, not the limits set on D. */
        static const char *const delegated[] = {"cgroup.procs", "cgroup.threads",
                                                "cgroup.subtree_control"};
        char path[PATH_MAX + 64];

        snprintf(path, sizeof(path), "%s", cg->dir);
        if (chown(path, uid, gid) < 0)
                goto failed;
        for (size_t i = 0; i < sizeof(delegated) / sizeof(delegated[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", cg->dir, delegated[i]);
                if (chown(path, uid, gid) < 0 && errno != ENOENT)
                        goto failed;
        }
        for (int i = 0; i < cg->slots; i++) {
                static const char *const parts[] = {"", "/worker", "/agent"};
                for (size_t j = 0; j < sizeof(parts) / sizeof(parts[0]); j++) {
                        snprintf(path, sizeof(path), "%s/worker-%d%s", cg->dir, i, parts[j]);
                        if (give_dir(path, uid, gid) < 0)
                                goto failed;
                }
        }
        return 0;
failed:
        log_warn("agents get rlimits only, no cgroup: cannot hand %s to the service user", path);
        return -1;
}

void cgroup_check_config(const struct cgroup *cg, const struct config *cfg)
{
        if (geteuid() != 0 || (cg != NULL && cg->pids))
                return;
        for (size_t i = 0; i < cfg->nagents; i++) {
                if (json_object_get(cfg->agents[i].limits, "processes") != NULL)
                        log_warnx("agents.%s.limits.processes does not hold: chimerad runs as "
                                  "root, which RLIMIT_NPROC does not bind, without a delegated "
                                  "cgroup with the pids controller",
                                  cfg->agents[i].name);
        }
}

void cgroup_enter_worker(const struct cgroup *cg, int slot)
{
        char dir[PATH_MAX + 64];

        if (cg == NULL || slot >= cg->slots)
                return;
        snprintf(dir, sizeof(dir), "%s/worker-%d/worker", cg->dir, slot);
        if (write_file(dir, "cgroup.procs", "0") < 0)
                return;
        snprintf(dir, sizeof(dir), "%s/worker-%d/agent", cg->dir, slot);
        setenv(CGROUP_AGENT_ENV, dir, 1);
}

void cgroup_kill_agent(const struct cgroup *cg, int slot)
{
        char dir[PATH_MAX + 64];

        if (cg == NULL || slot >= cg->slots)
                return;
        snprintf(dir, sizeof(dir), "%s/worker-%d/agent", cg->dir, slot);
        if (write_file(dir, "cgroup.kill", "1") < 0 && errno != ENOENT)
                log_warn("cannot empty %s", dir);
}

void cgroup_free(struct cgroup *cg)
{
        char dir[PATH_MAX + 64];

        if (cg == NULL)
                return;
        for (int i = 0; i < cg->slots; i++) {
                snprintf(dir, sizeof(dir), "%s/worker-%d/agent", cg->dir, i);
                rmdir(dir);
                snprintf(dir, sizeof(dir), "%s/worker-%d/worker", cg->dir, i);
                rmdir(dir);
                snprintf(dir, sizeof(dir), "%s/worker-%d", cg->dir, i);
                rmdir(dir);
        }
        free(cg);
}
