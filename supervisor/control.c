/*
 * control.c - the control socket server.
 *
 * Each connection is a bufferevent reading lines.  A request is bounded
 * (CONTROL_MAX_LINE) and decoded by control_parse_request() (control_proto.c)
 * before anything acts on it; a malformed one gets an error reply, never
 * more.  "status" needs a count from the database, so its reply is
 * written when that query returns; a connection closed meanwhile is only
 * marked closed and freed once no reply is owed to it.  Every other command
 * ("workers", "cancel", "reload", "ping") is answered at once from what
 * this process knows, so it works while the database is down.
 *
 * Two locks guard the commands that change something ("cancel", "reload"
 * and any command not known to only read): the socket file is mode 0660,
 * owned by the service user and the control socket's group, so only they
 * (and root) can connect; and each connection's peer credentials, from the
 * kernel (SO_PEERCRED, SO_PEERGROUPS), must show root, the service user or
 * a member of that group, or such a command is answered "permission
 * denied".  The second lock holds where the first was loosened (a chmod, a
 * socket directory shared wider, an fd passed on): "status", "workers" and
 * "ping" stay open to whoever can connect.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "breaker.h"
#include "chimerad.h"
#include "control.h"
#include "control_proto.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13; older C libraries lack the name */
#endif

struct control {
        struct supervisor *sv;
        struct evconnlistener *listener;
        char *path;
        uid_t uid;     /* the service user, who may change things besides root */
        gid_t gid;     /* the socket's group, whose members may too */
        char who[650]; /* "root, user U and members of group G", for refusals */
};

struct ctl_conn {
        struct control *ctl;
        struct bufferevent *bev; /* NULL once the peer has gone */
        unsigned owed;           /* replies still to be written */
        uid_t peer_uid;          /* from SO_PEERCRED; (uid_t)-1 when unknown */
        bool may_change;         /* the peer may send commands that change something */
};

static void conn_maybe_free(struct ctl_conn *c)
{
        if (c->bev == NULL && c->owed == 0)
                free(c);
}

static void conn_close(struct ctl_conn *c)
{
        if (c->bev != NULL) {
                bufferevent_free(c->bev);
                c->bev = NULL;
        }
        conn_maybe_free(c);
}

/*
 * Writes reply (stolen) as one line.  A NULL reply (json_pack() refused
 * text that is not UTF-8, such as a path) still gets an answer, so that
 * chimera-ctl is not left waiting for one.
 */
static void conn_reply(struct ctl_conn *c, json_t *reply)
{
        static const char fallback[] =
            "{\"ok\":false,\"error\":\"the reply could not be encoded\"}";
        char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

        json_decref(reply);
        if (c->bev == NULL) {
                free(text);
                return;
        }
        if (text == NULL) {
                bufferevent_write(c->bev, fallback, strlen(fallback));
                bufferevent_write(c->bev, "\n", 1);
                return;
        }
        bufferevent_write(c->bev, text, strlen(text));
        bufferevent_write(c->bev, "\n", 1);
        free(text);
}

static void conn_error(struct ctl_conn *c, const char *msg)
{
        conn_reply(c, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

static json_t *supervisor_json(const struct supervisor *sv)
{
        json_t *queues = json_array();

        for (size_t i = 0; i < sv->cfg->nqueues; i++)
                json_array_append_new(queues, json_string(sv->cfg->queues[i]));
        return json_pack("{s:s, s:s, s:i, s:s, s:I, s:o, s:s, s:{s:I, s:I, s:I, s:I}}", "id",
                         sv->id, "host", sv->host, "pid", (int)getpid(), "version", CHIMERA_VERSION,
                         "uptime_ms", (json_int_t)(util_now_ms() - sv->started_ms), "queues",
                         queues, "state", supervisor_state_name(sv->state), "counters", "claimed",
                         (json_int_t)sv->stats.claimed, "succeeded",
                         (json_int_t)sv->stats.succeeded, "failed", (json_int_t)sv->stats.failed,
                         "retried", (json_int_t)sv->stats.retried);
}

/*
 * The pool as pool_status_json() reports it, with what only an operator
 * looking at one worker needs: how long it has lived and been in its
 * state, the trace of its task, and whether it predates the last reload
 * (it is replaced once its task ends).
 */
static json_t *pool_json(const struct pool *pool)
{
        json_t *status = pool_status_json(pool);
        json_t *workers = json_object_get(status, "workers");
        int64_t now = util_now_ms();

        for (int i = 0; i < pool->size; i++) {
                const struct worker *w = &pool->workers[i];
                json_t *o = json_array_get(workers, (size_t)i);

                if (o == NULL)
                        break;
                json_object_set_new(o, "uptime_ms",
                                    w->pid > 0 ? json_integer(now - w->spawned_ms) : json_null());
                json_object_set_new(o, "state_ms", json_integer(now - w->state_since_ms));
                json_object_set_new(o, "stale", json_boolean(w->generation != pool->generation));
                json_object_set_new(o, "trace_id",
                                    w->task ? json_string(w->task->trace_id) : json_null());
        }
        return status;
}

static json_t *database_json(struct supervisor *sv)
{
        if (supervisor_db_up(sv))
                return json_pack("{s:b}", "up", 1);
        return json_pack("{s:b, s:s}", "up", 0, "error", supervisor_db_error(sv));
}

static void status_counts_cb(json_t *counts, void *arg)
{
        struct ctl_conn *c = arg;
        struct supervisor *sv = c->ctl->sv;
        json_t *db;

        c->owed--;
        db = database_json(sv);
        conn_reply(c, json_pack("{s:b, s:o, s:o, s:o, s:O?, s:o}", "ok", 1, "supervisor",
                                supervisor_json(sv), "database", db, "pool", pool_json(&sv->pool),
                                "tasks", counts, "breakers", breakers_status_json(sv->breakers)));
        conn_maybe_free(c);
}

static void handle_workers(struct ctl_conn *c)
{
        struct supervisor *sv = c->ctl->sv;

        conn_reply(c, json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "supervisor", supervisor_json(sv),
                                "database", database_json(sv), "pool", pool_json(&sv->pool)));
}

static const struct worker *worker_running(const struct pool *pool, json_int_t id)
{
        for (int i = 0; i < pool->size; i++) {
                const struct task *t = pool->workers[i].task;
                if (t != NULL && t->id == id)
                        return &pool->workers[i];
        }
        return NULL;
}

/*
 * {"cmd":"cancel","id":N}: stops task N if one of our workers runs it.  The
 * reply says which worker it was; its outcome reaches the database with
 * the next write, which chimera-ctl waits for.  A task we do not hold gets
 * "code":"not_held" and our supervisor id, so that chimera-ctl can tell
 * "runs on another host" from "just finished here".
 */
static void handle_cancel(struct ctl_conn *c, json_int_t id)
{
        struct supervisor *sv = c->ctl->sv;
        const struct worker *w;
        char msg[128];
        json_t *reply;

        w = worker_running(&sv->pool, id);
        if (w == NULL && queue_cancel_ready(sv->queue, id) == 0) {
                /* Claimed ahead, not started: cancelled before any worker saw it. */
                conn_reply(c, json_pack("{s:b, s:I, s:b, s:s}", "ok", 1, "id", id, "claimed_ahead",
                                        1, "supervisor", sv->id));
                return;
        }
        if (w == NULL) {
                snprintf(msg, sizeof(msg), "task %" JSON_INTEGER_FORMAT " is not running here", id);
                conn_reply(c, json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", msg, "code",
                                        "not_held", "supervisor", sv->id));
                return;
        }
        reply = json_pack("{s:b, s:I, s:i, s:s, s:s?, s:i, s:i, s:s}", "ok", 1, "id", id, "attempt",
                          w->task->attempt, "workflow", w->task->workflow, "phase", w->task->phase,
                          "pid", (int)w->pid, "slot", w->slot, "supervisor", sv->id);
        if (pool_cancel_task(&sv->pool, id) < 0) {
                /* worker_running() just found it: only a broken pool gets here. */
                json_decref(reply);
                conn_error(c, "the task could not be cancelled");
                return;
        }
        conn_reply(c, reply);
}

/*
 * {"cmd":"reload"}: as SIGHUP, but the operator gets the verdict: a config
 * that does not load is refused with its error, and the running one stays.
 */
static void handle_reload(struct ctl_conn *c)
{
        struct supervisor *sv = c->ctl->sv;
        char err[1024];

        if (supervisor_reload(sv, err, sizeof(err)) < 0) {
                log_warnx("reload asked by chimera-ctl: keeping the running configuration: %s",
                          err);
                conn_error(c, err);
                return;
        }
        conn_reply(c, json_pack("{s:b, s:s, s:i, s:i, s:i}", "ok", 1, "config", sv->config_path,
                                "workflows", (int)sv->cfg->nworkflows, "agents",
                                (int)sv->cfg->nagents, "pool_size", sv->cfg->pool_size));
}

/* Commands that only read: whoever can connect may send them. */
static bool command_reads_only(const char *cmd)
{
        static const char *const reads[] = {"status", "workers", "ping"};

        for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
                if (strcmp(cmd, reads[i]) == 0)
                        return true;
        return false;
}

static void deny(struct ctl_conn *c, const char *cmd)
{
        char msg[1024];

        log_warnx("control: refused \"%.64s\" from uid %d: only %s may send it", cmd,
                  (int)c->peer_uid, c->ctl->who);
        snprintf(msg, sizeof(msg), "permission denied: only %s may send \"%.64s\" (you are uid %d)",
                 c->ctl->who, cmd, (int)c->peer_uid);
        /* util_json_text: "%.64s" may have cut the command inside a character. */
        conn_reply(c, json_pack("{s:b, s:o, s:s}", "ok", 0, "error", util_json_text(msg), "code",
                                "permission_denied"));
}

/* Acts on one request line; control_parse_request() has checked it first. */
static void handle_request(struct ctl_conn *c, const char *line, size_t len)
{
        struct control_request req;
        char msg[256];
        int rc = control_parse_request(line, len, &req, msg, sizeof(msg));

        /* A peer that may only read gets its refusal before anything else is
         * said of its request, whatever the command (known or not, well formed
         * or not). */
        if (!c->may_change && req.has_name && !command_reads_only(req.name)) {
                deny(c, req.name);
                return;
        }
        if (rc < 0) {
                conn_error(c, msg);
                return;
        }
        switch (req.cmd) {
        case CONTROL_STATUS:
                c->owed++;
                queue_counts(c->ctl->sv->queue, status_counts_cb, c);
                break;
        case CONTROL_WORKERS:
                handle_workers(c);
                break;
        case CONTROL_CANCEL:
                handle_cancel(c, req.id);
                break;
        case CONTROL_RELOAD:
                handle_reload(c);
                break;
        case CONTROL_PING:
                conn_reply(c, json_pack("{s:b}", "ok", 1));
                break;
        }
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
        struct ctl_conn *c = arg;
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t len;
        char *line;

        while (c->bev != NULL && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
                if (len > 0)
                        handle_request(c, line, len);
                free(line);
        }
        if (c->bev != NULL && evbuffer_get_length(in) > CONTROL_MAX_LINE) {
                conn_error(c, "request too long");
                evbuffer_drain(in, evbuffer_get_length(in));
                bufferevent_disable(bev, EV_READ);
        }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
                conn_close(arg);
}

/* Whether gid is among the peer's supplementary groups (as they were when it connected). */
static bool peer_in_group(int fd, gid_t gid)
{
        gid_t small[64], *groups = small;
        socklen_t len = sizeof(small);
        bool found = false;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
                if (errno != ERANGE)
                        return false;
                groups = util_calloc(1, len); /* len now says how much it takes */
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                        len = 0;
        }
        for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
                found = groups[i] == gid;
        if (groups != small)
                free(groups);
        return found;
}

/*
 * Reads the peer's credentials, which the kernel took when it connected:
 * it may change things if it is root, the service user, or in the
 * socket's group (as its primary or a supplementary group).  Without
 * credentials it may only read.
 */
static void conn_check_peer(struct ctl_conn *c, int fd)
{
        const struct control *ctl = c->ctl;
        struct ucred cred;
        socklen_t len = sizeof(cred);

        c->peer_uid = (uid_t)-1;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warn("control: SO_PEERCRED");
                return;
        }
        c->peer_uid = cred.uid;
        c->may_change = cred.uid == 0 || cred.uid == ctl->uid || cred.gid == ctl->gid ||
                        peer_in_group(fd, ctl->gid);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
        struct control *ctl = arg;
        struct ctl_conn *c = util_calloc(1, sizeof(*c));

        c->ctl = ctl;
        conn_check_peer(c, fd);
        c->bev = bufferevent_socket_new(ctl->sv->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL) {
                close(fd);
                free(c);
                return;
        }
        bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Removes a socket file left by a dead chimerad; refuses if one answers. */
static int clear_stale(const struct sockaddr_un *sun)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int rc;

        if (fd < 0)
                return -1;
        rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
        close(fd);
        if (rc == 0) {
                log_warnx("another chimerad is already listening on %s", sun->sun_path);
                return -1;
        }
        if (errno == ECONNREFUSED)
                unlink(sun->sun_path);
        return 0;
}

/*
 * Creates the socket's directory when it is missing (one level, as
 * systemd's RuntimeDirectory= would), mode 0755 and, made by root, owned
 * by the service user, who can then remove the socket when it stops.
 */
static int make_socket_dir(const char *path, uid_t uid)
{
        char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char *slash;

        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0)
                return errno == EEXIST ? 0 : (log_warn("cannot create %s", dir), -1);
        if (chmod(dir, 0755) < 0 || (geteuid() == 0 && lchown(dir, uid, (gid_t)-1) < 0)) {
                log_warn("cannot give %s mode 0755 and owner uid %d", dir, (int)uid);
                return -1;
        }
        log_info("created %s for the control socket", dir);
        return 0;
}

/*
 * Gives the new socket file mode 0660, the service user (when root made
 * it) and group gid ((gid_t)-1: the group it was made with), then reads
 * back who may change things through it.
 */
static int own_socket(struct control *ctl, uid_t uid, gid_t gid)
{
        uid_t owner = geteuid() == 0 ? uid : (uid_t)-1;
        char user[300], group[300];
        struct passwd *pw;
        struct group *gr;
        struct stat st;

        if ((owner != (uid_t)-1 || gid != (gid_t)-1) && lchown(ctl->path, owner, gid) < 0) {
                log_warn("control_socket %s: cannot give it to uid %d, gid %d", ctl->path, (int)uid,
                         (int)gid);
                return -1;
        }
        if (chmod(ctl->path, 0660) < 0 || lstat(ctl->path, &st) < 0) {
                log_warn("control_socket %s: chmod 0660", ctl->path);
                return -1;
        }
        ctl->uid = uid;
        ctl->gid = st.st_gid;
        pw = getpwuid(uid);
        gr = getgrgid(st.st_gid);
        if (pw != NULL)
                snprintf(user, sizeof(user), "user %s", pw->pw_name);
        else
                snprintf(user, sizeof(user), "uid %d", (int)uid);
        if (gr != NULL)
                snprintf(group, sizeof(group), "group %s", gr->gr_name);
        else
                snprintf(group, sizeof(group), "gid %d", (int)st.st_gid);
        snprintf(ctl->who, sizeof(ctl->who), "root, %s and members of %s", uid == 0 ? "" : user,
                 group);
        if (uid == 0)
                snprintf(ctl->who, sizeof(ctl->who), "root and members of %s", group);
        return 0;
}

struct control *control_new(struct supervisor *sv, const char *path, uid_t uid, gid_t gid)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        struct control *ctl;
        mode_t old;
        int fd;

        if (strlen(path) >= sizeof(sun.sun_path)) {
                log_warnx("control_socket %s: path too long (at most %zu bytes)", path,
                          sizeof(sun.sun_path) - 1);
                return NULL;
        }
        strcpy(sun.sun_path, path);
        if (clear_stale(&sun) < 0 || make_socket_dir(path, uid) < 0)
                return NULL;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                log_warn("control socket");
                return NULL;
        }
        old = umask(0117); /* 0660: the service user and its group */
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
                umask(old);
                log_warn("cannot create the control socket %s", path);
                close(fd);
                return NULL;
        }
        umask(old);
        ctl = util_calloc(1, sizeof(*ctl));
        ctl->sv = sv;
        ctl->path = util_strdup(path);
        if (own_socket(ctl, uid, gid) < 0) {
                close(fd);
                unlink(path);
                free(ctl->path);
                free(ctl);
                return NULL;
        }
        ctl->listener = evconnlistener_new(sv->base, accept_cb, ctl,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
        if (ctl->listener == NULL) {
                log_warn("cannot listen on %s", path);
                close(fd);
                unlink(path);
                free(ctl->path);
                free(ctl);
                return NULL;
        }
        return ctl;
}

void control_free(struct control *ctl)
{
        if (ctl == NULL)
                return;
        evconnlistener_free(ctl->listener);
        unlink(ctl->path);
        free(ctl->path);
        free(ctl);
}
