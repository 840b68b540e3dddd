/*
 * notify.c - the sd_notify protocol, spoken without libsystemd.
 *
 * systemd starts a Type=notify service with NOTIFY_SOCKET naming a unix
 * datagram socket (a path, or an abstract name written with a leading
 * '@'); each datagram is a few "KEY=value" lines.  We send READY=1 once
 * the database answered and the schema is current, RELOADING=1 and
 * READY=1 around a reload, STOPPING=1 when draining starts, STATUS= with
 * the pool's use, and WATCHDOG=1 every WATCHDOG_USEC/2 when systemd asked
 * for it.
 *
 * The watchdog is fed from a libevent timer on purpose: a ping proves that
 * the loop itself still turns, which is what a hung supervisor would stop
 * doing.  The same timer sends STATUS= whenever the text changed.
 *
 * NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are removed from our
 * environment as soon as they are read: workers and the agents they run
 * inherit chimerad's environment, and a child that saw NOTIFY_SOCKET
 * could report READY=1 or STOPPING=1 in our name.
 *
 * Nothing here is ever fatal: without NOTIFY_SOCKET, or when it cannot be
 * used, chimerad runs exactly as it does from a shell.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "chimerad.h"
#include "db.h"
#include "log.h"
#include "notify.h"
#include "util.h"

/* STATUS= is brought up to date (if it changed) this often; the watchdog may tick faster. */
#define NOTIFY_STATUS_INTERVAL_MS 5000

struct notify {
        struct supervisor *sv;
        int fd; /* unbound datagram socket, close-on-exec, non-blocking */
        struct sockaddr_un addr;
        socklen_t addrlen;
        char *socket_name;     /* NOTIFY_SOCKET as given, for messages; owned */
        int64_t watchdog_usec; /* WATCHDOG_USEC meant for us, or 0 */
        struct event *tick_ev; /* persistent: WATCHDOG=1 and STATUS= */
        bool ready;            /* READY=1 sent */
        bool reloading;        /* RELOADING=1 sent, READY=1 not yet */
        bool stopping;         /* STOPPING=1 sent: nothing but pings after it */
        bool warned;           /* a send failed and was logged; later failures are not */
        char last_status[256]; /* the STATUS= text systemd has */
};

/*
 * Fills addr from NOTIFY_SOCKET.  Returns 0, or -1 for a name we cannot use
 * (too long, or neither a path nor an abstract name: newer systemd also
 * knows "vsock:", which a host service has no use for).
 */
static int parse_address(struct notify *n, const char *name)
{
        size_t len = strlen(name);

        if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path))
                return -1;
        memset(&n->addr, 0, sizeof(n->addr));
        n->addr.sun_family = AF_UNIX;
        memcpy(n->addr.sun_path, name, len);
        if (name[0] == '@') {
                /* Abstract names are not NUL-terminated: the length says where they end. */
                n->addr.sun_path[0] = '\0';
                n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        } else {
                n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        }
        return 0;
}

/*
 * WATCHDOG_USEC, when WATCHDOG_PID is unset or names us; 0 otherwise (a
 * watchdog meant for another process of the service is not ours to feed).
 */
static int64_t watchdog_usec_from_env(void)
{
        const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
        char *end;
        long long v;

        if (usec == NULL || *usec == '\0')
                return 0;
        if (pid != NULL && *pid != '\0' && strtoll(pid, NULL, 10) != (long long)getpid())
                return 0;
        errno = 0;
        v = strtoll(usec, &end, 10);
        if (errno != 0 || *end != '\0' || v <= 0) {
                log_warnx("sd_notify: ignoring WATCHDOG_USEC=\"%s\": not a positive number", usec);
                return 0;
        }
        return v;
}

/*
 * Sends one datagram.  A failure is logged once, then only counted as a
 * lost message: systemd keeps the previous state, and the watchdog, if it
 * misses too many, restarts us, which is all it could do anyway.
 */
static void send_message(struct notify *n, const char *msg)
{
        ssize_t sent = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                              (const struct sockaddr *)&n->addr, n->addrlen);

        if (sent >= 0 || n->warned)
                return;
        n->warned = true;
        log_warn("sd_notify: cannot send to NOTIFY_SOCKET %s (further failures are not logged)",
                 n->socket_name);
}

/*
 * The STATUS= text for a supervisor in the given state, as `systemctl
 * status` shows it: "3/8 workers busy, 120 tasks done (2 failed), 1
 * retried, database up".  Done means finished here for good, succeeded or
 * failed; retried counts transient errors (a retry later, or dead).
 */
static void status_text(const struct supervisor *sv, enum sup_state state, char *buf, size_t size)
{
        const struct sup_stats *st = &sv->stats;
        int total = sv->pool.size > 0 ? sv->pool.size : sv->cfg->pool_size;
        bool up = supervisor_db_up(sv);
        unsigned long long done = st->succeeded + st->failed;
        const char *prefix = state == SUP_DRAINING   ? "draining: "
                             : state == SUP_STOPPING ? "stopping: "
                                                     : "";

        if (state == SUP_STARTING) {
                snprintf(buf, size, "starting: pool of %d, %s", total,
                         up ? "checking the schema" : "waiting for the database");
                return;
        }
        snprintf(buf, size,
                 "%s%d/%d workers busy, %llu task%s done (%llu failed), %llu retried, %s", prefix,
                 pool_busy_count(&sv->pool), total, done, done == 1 ? "" : "s",
                 (unsigned long long)st->failed, (unsigned long long)st->retried,
                 up ? "database up" : "database down, reconnecting");
}

/* Appends "STATUS=..." for state to msg and remembers it as sent. */
static void append_status(struct notify *n, enum sup_state state, char *msg, size_t size)
{
        size_t used = strlen(msg);

        status_text(n->sv, state, n->last_status, sizeof(n->last_status));
        snprintf(msg + used, size - used, "%sSTATUS=%s", used > 0 ? "\n" : "", n->last_status);
}

/* The timer: WATCHDOG=1 when systemd watches us, STATUS= when it changed. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
        struct notify *n = arg;

        if (n->watchdog_usec > 0)
                send_message(n, "WATCHDOG=1");
        notify_status(n->sv);
}

/* The timer's period: half the watchdog interval, at most the status interval. */
static struct timeval tick_period(const struct notify *n)
{
        int64_t usec = (int64_t)NOTIFY_STATUS_INTERVAL_MS * 1000;
        struct timeval tv;

        if (n->watchdog_usec > 0 && n->watchdog_usec / 2 < usec)
                usec = n->watchdog_usec / 2 > 0 ? n->watchdog_usec / 2 : 1;
        tv.tv_sec = (time_t)(usec / 1000000);
        tv.tv_usec = (suseconds_t)(usec % 1000000);
        return tv;
}

static void notify_free(struct notify *n)
{
        if (n == NULL)
                return;
        if (n->tick_ev != NULL)
                event_free(n->tick_ev);
        if (n->fd >= 0)
                close(n->fd);
        n->fd = -1;
        free(n->socket_name);
        free(n);
}

/* Builds the notifier for NOTIFY_SOCKET name; NULL (logged) when it cannot be used. */
static struct notify *notify_new(struct supervisor *sv, const char *name, int64_t watchdog_usec)
{
        struct notify *n = util_calloc(1, sizeof(*n));
        struct timeval period;

        n->sv = sv;
        n->fd = -1;
        n->socket_name = util_strdup(name);
        n->watchdog_usec = watchdog_usec;
        if (parse_address(n, name) < 0) {
                log_warnx("sd_notify: ignoring NOTIFY_SOCKET=\"%s\": expected an absolute path "
                          "or an abstract name starting with '@', shorter than %zu bytes",
                          name, sizeof(n->addr.sun_path));
                goto failed;
        }
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0) {
                log_warn("sd_notify: socket");
                goto failed;
        }
        n->tick_ev = event_new(sv->base, -1, EV_PERSIST, tick_cb, n);
        period = tick_period(n);
        if (n->tick_ev == NULL || event_add(n->tick_ev, &period) < 0) {
                log_warnx("sd_notify: cannot start the timer");
                goto failed;
        }
        return n;
failed:
        notify_free(n);
        return NULL;
}

void notify_start(struct supervisor *sv)
{
        char *name = util_strdup(getenv("NOTIFY_SOCKET"));
        int64_t watchdog_usec = watchdog_usec_from_env();

        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        if (name == NULL || *name == '\0')
                goto out;
        sv->notify = notify_new(sv, name, watchdog_usec);
        if (sv->notify == NULL)
                goto out;
        if (watchdog_usec > 0)
                log_info("sd_notify: reporting to %s, watchdog every %lld ms", name,
                         (long long)(watchdog_usec / 2000));
        else
                log_info("sd_notify: reporting to %s", name);
        notify_status(sv);
out:
        free(name);
}

void notify_ready(struct supervisor *sv)
{
        struct notify *n = sv->notify;
        char msg[512] = "READY=1";

        if (n == NULL || n->stopping)
                return;
        /* A reload before the database answered: READY=1 is still to come,
         * from the schema check, and must not be sent early. */
        if (!n->ready && sv->state != SUP_RUNNING) {
                n->reloading = false;
                return;
        }
        append_status(n, sv->state, msg, sizeof(msg));
        send_message(n, msg);
        n->ready = true;
        n->reloading = false;
}

void notify_reloading(struct supervisor *sv)
{
        struct notify *n = sv->notify;
        struct timespec ts;
        char msg[512];

        /* systemd only tracks a reload of a service that is up; before
         * READY=1 or after STOPPING=1 it would misread RELOADING=1. */
        if (n == NULL || !n->ready || n->stopping)
                return;
        /* systemd 253 and later want the time of the request with it, to tell
         * this reload from one it asked for earlier. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg),
                 "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
                 (unsigned long long)ts.tv_sec * 1000000ULL +
                     (unsigned long long)ts.tv_nsec / 1000);
        snprintf(n->last_status, sizeof(n->last_status), "reloading the configuration");
        send_message(n, msg);
        n->reloading = true;
}

void notify_stopping(struct supervisor *sv)
{
        struct notify *n = sv->notify;
        char msg[512] = "STOPPING=1";

        if (n == NULL || n->stopping)
                return;
        /* Called just before the state changes: say what it is about to be. */
        append_status(n, SUP_DRAINING, msg, sizeof(msg));
        send_message(n, msg);
        n->stopping = true;
        n->reloading = false;
}

void notify_status(struct supervisor *sv)
{
        struct notify *n = sv->notify;
        char text[sizeof(n->last_status)], msg[512] = "";

        /* While reloading, the status says so until READY=1 replaces it. */
        if (n == NULL || n->reloading)
                return;
        status_text(sv, sv->state, text, sizeof(text));
        if (strcmp(text, n->last_status) == 0)
                return;
        append_status(n, sv->state, msg, sizeof(msg));
        send_message(n, msg);
}

void notify_stop(struct supervisor *sv)
{
        notify_free(sv->notify);
        sv->notify = NULL;
}
