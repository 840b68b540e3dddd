/*
 * test_systemd.c - chimerad as systemd sees it, and what `make install`
 * puts on disk.
 *
 * The sd_notify tests play systemd's part: they bind a unix datagram
 * socket in the test's directory, start chimerad with NOTIFY_SOCKET (and
 * WATCHDOG_USEC) naming it, and read what arrives, exactly as PID 1 would.
 * The install tests run the real `make install` into a DESTDIR, with a
 * build directory of their own so that the binaries the other tests use
 * are never rebuilt under them.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

/* What the fake systemd received: every datagram, and the count of pings. */
struct receiver {
        int fd;
        char log[1 << 16]; /* datagrams, one per line, newlines shown as '|' */
        size_t used;
        int watchdogs;
        int datagrams;
};

static struct receiver RX;

static long long monotonic_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Binds the receiving socket at addr (a path, or an abstract name if sun_path[0] is NUL). */
static void rx_bind(const struct sockaddr_un *addr, socklen_t len)
{
        memset(&RX, 0, sizeof(RX));
        RX.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(RX.fd, 0);
        ck_assert_msg(bind(RX.fd, (const struct sockaddr *)addr, len) == 0, "bind: %s",
                      strerror(errno));
}

/* A socket at H.dir/notify.sock; its path goes to path. */
static void rx_open_path(char *path, size_t size)
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};

        snprintf(path, size, "%s/notify.sock", H.dir);
        ck_assert_uint_lt(strlen(path), sizeof(addr.sun_path));
        memcpy(addr.sun_path, path, strlen(path) + 1);
        rx_bind(&addr, (socklen_t)sizeof(addr));
}

/* Does the datagram msg have a line starting with prefix? */
static bool has_line(const char *msg, const char *prefix)
{
        size_t n = strlen(prefix);

        for (const char *line = msg; line != NULL && *line != '\0';) {
                if (strncmp(line, prefix, n) == 0)
                        return true;
                line = strchr(line, '\n');
                if (line != NULL)
                        line++;
        }
        return false;
}

/* The value of the line "KEY=..." in msg, copied into buf ("" if absent). */
static const char *line_value(const char *msg, const char *key, char *buf, size_t size)
{
        size_t n = strlen(key);

        buf[0] = '\0';
        for (const char *line = msg; line != NULL && *line != '\0';) {
                const char *end = strchr(line, '\n');
                size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
                if (len > n && strncmp(line, key, n) == 0 && line[n] == '=') {
                        snprintf(buf, size, "%.*s", (int)(len - n - 1), line + n + 1);
                        break;
                }
                line = end != NULL ? end + 1 : NULL;
        }
        return buf;
}

static void rx_record(const char *msg)
{
        size_t left = sizeof(RX.log) - RX.used;
        int n = snprintf(RX.log + RX.used, left, "%s\n", msg);

        for (size_t i = RX.used; n > 0 && i + 1 < RX.used + (size_t)n && i < sizeof(RX.log); i++)
                if (RX.log[i] == '\n')
                        RX.log[i] = '|';
        if (n > 0 && (size_t)n < left)
                RX.used += (size_t)n;
        RX.datagrams++;
        if (has_line(msg, "WATCHDOG=1"))
                RX.watchdogs++;
}

/*
 * Receives datagrams until one has a line starting with want (want NULL:
 * until timeout_ms passes).  Returns that datagram (a static copy), or
 * NULL on timeout.
 */
static const char *rx_until(const char *want, int timeout_ms)
{
        static char msg[4096];
        long long deadline = monotonic_usec() + timeout_ms * 1000LL;

        for (;;) {
                long long left = (deadline - monotonic_usec()) / 1000;
                struct pollfd p = {.fd = RX.fd, .events = POLLIN};
                ssize_t n;

                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                        return NULL;
                n = recv(RX.fd, msg, sizeof(msg) - 1, 0);
                ck_assert_int_gt(n, 0);
                msg[n] = '\0';
                rx_record(msg);
                if (want != NULL && has_line(msg, want))
                        return msg;
        }
}

/* Fails the test unless a datagram with a line starting with want arrives within timeout_ms. */
static const char *expect(const char *want, int timeout_ms)
{
        const char *msg = rx_until(want, timeout_ms);

        ck_assert_msg(msg != NULL, "no \"%s\" within %d ms; received:\n%s", want, timeout_ms,
                      RX.log);
        return msg;
}

/* Does /proc/PID/environ of pid hold a variable named like prefix ("NOTIFY_SOCKET=")? */
static bool environ_has(pid_t pid, const char *prefix, size_t *total)
{
        static char env[1 << 16];
        char path[64];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
        f = fopen(path, "r");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        n = fread(env, 1, sizeof(env) - 1, f);
        fclose(f);
        env[n] = '\0';
        *total = n;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1)
                if (strncmp(env + i, prefix, strlen(prefix)) == 0)
                        return true;
        return false;
}

static void assert_exits_zero(pid_t pid, int timeout_ms)
{
        int st = h_wait_exit(pid, timeout_ms);

        ck_assert_msg(st != -1, "chimerad did not exit within %d ms", timeout_ms);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chimerad exited with status %#x", st);
}

START_TEST(notify_messages_arrive_on_a_real_datagram_socket)
{
        char sock[300], env_sock[320], usec[32];
        char *env[] = {env_sock, "WATCHDOG_USEC=200000", NULL};
        const char *msg;
        pid_t pid, workers[4];
        long long before, stamp;
        int n;

        rx_open_path(sock, sizeof(sock));
        snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock);
        h_write_config(2, NULL);
        pid = h_start_chimerad_env(H.config, "chimerad", env);

        /* The first word is a status, before the database has answered. */
        msg = expect("STATUS=", 10000);
        ck_assert_msg(has_line(msg, "STATUS=starting"), "first datagram: %s", msg);
        msg = expect("READY=1", 20000);
        ck_assert_msg(has_line(msg, "STATUS=0/2 workers busy"), "READY=1 came with: %s", msg);
        ck_assert_msg(strstr(msg, "database up") != NULL, "READY=1 came with: %s", msg);

        /* WATCHDOG_USEC=200000: a ping every 100 ms from the loop. */
        n = RX.watchdogs;
        rx_until(NULL, 1000);
        ck_assert_msg(RX.watchdogs - n >= 5, "%d WATCHDOG=1 in a second; received:\n%s",
                      RX.watchdogs - n, RX.log);

        /* The status follows the work done. */
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        expect("STATUS=0/2 workers busy, 1 task done (0 failed), 0 retried, database up", 10000);

        /* Workers (and the agents they run) never see the notify socket. */
        ck_assert_int_eq(h_children(pid, "chimera-worker", workers, 4), 2);
        for (int i = 0; i < 2; i++) {
                size_t total;
                ck_assert_msg(!environ_has(workers[i], "NOTIFY_SOCKET=", &total),
                              "worker %d has NOTIFY_SOCKET", (int)workers[i]);
                ck_assert_msg(!environ_has(workers[i], "WATCHDOG_", &total),
                              "worker %d has WATCHDOG_*", (int)workers[i]);
                ck_assert_msg(environ_has(workers[i], "PATH=", &total), "worker %d: environ: %zu",
                              (int)workers[i], total);
        }

        /* A reload: RELOADING=1 with the time of the request, then READY=1. */
        before = monotonic_usec();
        ck_assert_int_eq(kill(pid, SIGHUP), 0);
        msg = expect("RELOADING=1", 5000);
        stamp = strtoll(line_value(msg, "MONOTONIC_USEC", usec, sizeof(usec)), NULL, 10);
        ck_assert_msg(stamp >= before && stamp <= monotonic_usec(), "MONOTONIC_USEC in: %s", msg);
        expect("READY=1", 5000);

        /* SIGTERM: STOPPING=1 as draining starts, then a clean exit. */
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        msg = expect("STOPPING=1", 5000);
        ck_assert_msg(has_line(msg, "STATUS=draining"), "STOPPING=1 came with: %s", msg);
        assert_exits_zero(pid, 20000);
        close(RX.fd);
}
END_TEST

START_TEST(notify_socket_may_be_an_abstract_name)
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        char name[100], env_sock[140];
        char *env[] = {env_sock, NULL};
        size_t len;
        pid_t pid;

        /* An abstract name: a leading NUL, and no NUL at the end. */
        snprintf(name, sizeof(name), "chimera-test-%d-%s", (int)getpid(), H.dbname);
        len = strlen(name);
        memcpy(addr.sun_path + 1, name, len);
        rx_bind(&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len));
        snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=@%s", name);
        h_write_config(1, NULL);
        pid = h_start_chimerad_env(H.config, "chimerad", env);

        expect("READY=1", 20000);
        /* No WATCHDOG_USEC: no pings. */
        rx_until(NULL, 500);
        ck_assert_msg(RX.watchdogs == 0, "unasked WATCHDOG=1; received:\n%s", RX.log);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        expect("STOPPING=1", 5000);
        assert_exits_zero(pid, 20000);
        close(RX.fd);
}
END_TEST

START_TEST(watchdog_meant_for_another_pid_is_not_fed)
{
        char sock[300], env_sock[320];
        char *env[] = {env_sock, "WATCHDOG_USEC=200000", "WATCHDOG_PID=1", NULL};
        pid_t pid;

        rx_open_path(sock, sizeof(sock));
        snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock);
        h_write_config(1, NULL);
        pid = h_start_chimerad_env(H.config, "chimerad", env);

        expect("READY=1", 20000);
        rx_until(NULL, 600);
        ck_assert_msg(RX.watchdogs == 0, "WATCHDOG=1 for another pid; received:\n%s", RX.log);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        assert_exits_zero(pid, 20000);
        close(RX.fd);
}
END_TEST

START_TEST(unreachable_notify_socket_is_logged_once_and_not_fatal)
{
        static char log[1 << 16];
        char env_sock[320], path[300];
        char *env[] = {env_sock, "WATCHDOG_USEC=100000", NULL};
        const char *first;
        pid_t pid;

        snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s/nobody-listens.sock", H.dir);
        h_write_config(1, NULL);
        pid = h_start_chimerad_env(H.config, "chimerad", env);

        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('noop')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 20000));
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        assert_exits_zero(pid, 20000);

        snprintf(path, sizeof(path), "%s/chimerad.log", H.dir);
        h_read_file(path, log, sizeof(log));
        first = strstr(log, "sd_notify: cannot send");
        ck_assert_msg(first != NULL, "no warning in:\n%s", log);
        ck_assert_msg(strstr(first + 1, "sd_notify: cannot send") == NULL,
                      "warned more than once:\n%s", log);
}
END_TEST

/* ---- make install ---- */

/* Runs `make install` from the source tree with args; fails the test (with the log) on error. */
static void make_install(const char *args)
{
        static char out[1 << 16];
        char cmd[2048], log[400];
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        int st;
        size_t n;

        snprintf(log, sizeof(log), "%s/make.log", H.dir);
        /* MAKEFLAGS of an enclosing `make check` (jobserver, SANITIZE=1, ...) are not ours. */
        snprintf(cmd, sizeof(cmd),
                 "cd '%s' && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -j2 install "
                 "BUILD='%s/build' %s >>'%s' 2>&1",
                 h_repo_path("."), H.dir, args, log);
        st = h_run(argv, out, sizeof(out));
        h_read_file(log, out, sizeof(out));
        /* Check's messages are short: the end of the log says what failed. */
        n = strlen(out);
        ck_assert_msg(st == 0, "make install: exit %d; the log (%s) ends:\n%s", st, log,
                      out + (n > 1500 ? n - 1500 : 0));
}

static void assert_file(const char *root, const char *rel, mode_t mode)
{
        char path[1024];
        struct stat st;

        snprintf(path, sizeof(path), "%s%s", root, rel);
        ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
        ck_assert_msg(S_ISREG(st.st_mode), "%s: not a regular file", path);
        ck_assert_msg((st.st_mode & 07777) == mode, "%s: mode %o, expected %o", path,
                      st.st_mode & 07777, mode);
}

/* Does the file at root+rel contain text? */
static bool file_contains(const char *root, const char *rel, const char *text)
{
        static char buf[1 << 22];
        char path[1024];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "%s%s", root, rel);
        f = fopen(path, "r");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        return memmem(buf, n, text, strlen(text)) != NULL;
}

START_TEST(install_destdir_has_every_file)
{
        static const char *const programs[] = {"/usr/sbin/chimerad", "/usr/bin/chimera-ctl",
                                               "/usr/lib/chimera/chimera-worker"};
        static const char *const agents[] = {"e2e-tester", "coder", "guardian", "deployer",
                                             "validator"};
        static const char *const data[] = {
            "/usr/lib/chimera/agents/common.sh", "/usr/lib/systemd/system/chimerad.service",
            "/usr/share/man/man8/chimerad.8", "/usr/share/man/man1/chimera-ctl.1",
            "/usr/share/man/man5/chimerad.json.5"};
        char root[300], rel[600], out[4096], config[400];
        char *check[] = {NULL, "--check-config", "-c", config, NULL};
        DIR *d;
        struct dirent *e;
        int nsql = 0;
        FILE *f;

        snprintf(root, sizeof(root), "%s/root", H.dir);
        snprintf(rel, sizeof(rel), "DESTDIR='%s' PREFIX=/usr", root);
        make_install(rel);

        for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
                assert_file(root, programs[i], 0755);
        for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
                snprintf(rel, sizeof(rel), "/usr/lib/chimera/agents/%s", agents[i]);
                assert_file(root, rel, 0755);
        }
        for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
                assert_file(root, data[i], 0644);
        d = opendir(h_repo_path("sql"));
        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)) != NULL) {
                size_t n = strlen(e->d_name);
                if (n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0)
                        continue;
                snprintf(rel, sizeof(rel), "/usr/share/chimera/sql/%s", e->d_name);
                assert_file(root, rel, 0644);
                nsql++;
        }
        closedir(d);
        ck_assert_int_gt(nsql, 0);
        assert_file(root, "/etc/chimera/chimerad.json", 0640);

        /* The unit starts the chimerad just installed, with the installed config. */
        ck_assert(file_contains(root, "/usr/lib/systemd/system/chimerad.service",
                                "\nExecStart=/usr/sbin/chimerad -c /etc/chimera/chimerad.json\n"));
        /* chimerad looks for its worker where it was installed. */
        ck_assert(file_contains(root, "/usr/sbin/chimerad", "/usr/lib/chimera"));
        ck_assert(
            file_contains(root, "/etc/chimera/chimerad.json", "\"/usr/lib/chimera/agents/coder\""));

        /* The installed programs run, and the default config is valid. */
        snprintf(config, sizeof(config), "%s/etc/chimera/chimerad.json", root);
        snprintf(rel, sizeof(rel), "%s/usr/sbin/chimerad", root);
        check[0] = rel;
        ck_assert_msg(h_run(check, out, sizeof(out)) == 0, "%s", out);

        /* A second install keeps a config the administrator edited. */
        f = fopen(config, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"pool\": {\"size\": 1}}\n", f);
        ck_assert_int_eq(fclose(f), 0);
        snprintf(rel, sizeof(rel), "DESTDIR='%s' PREFIX=/usr", root);
        make_install(rel);
        ck_assert(file_contains(root, "/etc/chimera/chimerad.json", "{\"pool\": {\"size\": 1}}"));
}
END_TEST

START_TEST(install_follows_prefix_and_rebuilds_for_it)
{
        char root1[300], root2[300], args[700];

        /* One build directory, two prefixes: the second install must rebuild
         * chimerad, which has the worker's directory compiled in. */
        snprintf(root1, sizeof(root1), "%s/root1", H.dir);
        snprintf(root2, sizeof(root2), "%s/root2", H.dir);
        snprintf(args, sizeof(args), "DESTDIR='%s' PREFIX=/usr", root1);
        make_install(args);
        snprintf(args, sizeof(args), "DESTDIR='%s' PREFIX=/opt/chimera", root2);
        make_install(args);

        assert_file(root2, "/opt/chimera/sbin/chimerad", 0755);
        assert_file(root2, "/opt/chimera/lib/chimera/chimera-worker", 0755);
        assert_file(root2, "/opt/chimera/share/man/man8/chimerad.8", 0644);
        ck_assert(file_contains(root2, "/opt/chimera/sbin/chimerad", "/opt/chimera/lib/chimera"));
        ck_assert(!file_contains(root2, "/opt/chimera/sbin/chimerad", "/usr/lib/chimera"));
        ck_assert(file_contains(root1, "/usr/sbin/chimerad", "/usr/lib/chimera"));
        ck_assert(file_contains(
            root2, "/opt/chimera/lib/systemd/system/chimerad.service",
            "\nExecStart=/opt/chimera/sbin/chimerad -c /etc/chimera/chimerad.json\n"));
        ck_assert(file_contains(root2, "/etc/chimera/chimerad.json",
                                "\"/opt/chimera/lib/chimera/agents/coder\""));
}
END_TEST

Suite *systemd_suite(void)
{
        Suite *s = suite_create("systemd");
        TCase *tc = h_tcase("systemd");

        tcase_add_test(tc, notify_messages_arrive_on_a_real_datagram_socket);
        tcase_add_test(tc, notify_socket_may_be_an_abstract_name);
        tcase_add_test(tc, watchdog_meant_for_another_pid_is_not_fed);
        tcase_add_test(tc, unreachable_notify_socket_is_logged_once_and_not_fatal);
        tcase_add_test(tc, install_destdir_has_every_file);
        tcase_add_test(tc, install_follows_prefix_and_rebuilds_for_it);
        suite_add_tcase(s, tc);
        return s;
}
