/*
 * harness.c - see harness.h.  Everything here talks to the real thing: a
 * real PostgreSQL, the real binaries, real signals.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct harness H;

static const char *admin_url(void)
{
        const char *url = getenv("CHIMERA_TEST_DATABASE_URL");

        if (url == NULL || *url == '\0') {
                fprintf(stderr, "CHIMERA_TEST_DATABASE_URL is not set: run the integration "
                                "tests with 'make check' or tests/run-integration.sh\n");
                exit(2);
        }
        return url;
}

/* The admin URL with its database name replaced by dbname. */
static void url_for(const char *dbname, char *out, size_t size)
{
        const char *url = admin_url();
        const char *slash = strrchr(url, '/');
        const char *query = strchr(url, '?');

        snprintf(out, size, "%.*s/%s%s", (int)(slash - url), url, dbname, query ? query : "");
}

const char *h_bin(const char *name)
{
        static char path[4][512];
        static int next;
        const char *dir = getenv("CHIMERA_BUILD_DIR");
        char *p = path[next++ % 4];

        snprintf(p, sizeof(path[0]), "%s/%s", dir ? dir : "build", name);
        return p;
}

static void admin_exec(const char *sql)
{
        PGconn *c = PQconnectdb(admin_url());
        PGresult *r;

        if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "harness: cannot connect: %s", PQerrorMessage(c));
                exit(2);
        }
        r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(r));
                exit(2);
        }
        PQclear(r);
        PQfinish(c);
}

void h_prepare_template(void)
{
        char url[512], out[4096], cfg[] = "/tmp/chimera-template.XXXXXX";
        char *argv[] = {(char *)h_bin("chimerad"), "-c", cfg, "--migrate", NULL};
        int st, fd;

        admin_exec("DROP DATABASE IF EXISTS " H_TEMPLATE_DB);
        admin_exec("CREATE DATABASE " H_TEMPLATE_DB);
        url_for(H_TEMPLATE_DB, url, sizeof(url));
        /* An explicit config, so that a chimera installed on this machine
         * (/etc/chimera/chimerad.json) cannot point the migration elsewhere. */
        fd = mkstemp(cfg);
        if (fd < 0 || dprintf(fd, "{\"database\": \"%s\"}\n", url) < 0) {
                fprintf(stderr, "harness: cannot write %s\n", cfg);
                exit(2);
        }
        close(fd);
        st = h_run(argv, out, sizeof(out));
        unlink(cfg);
        if (st != 0) {
                fprintf(stderr, "harness: chimerad --migrate failed:\n%s\n", out);
                exit(2);
        }
}

void h_setup(void)
{
        static int counter;
        char sql[256], tmpl[] = "/tmp/chimera-test.XXXXXX";

        memset(&H, 0, sizeof(H));
        snprintf(H.dbname, sizeof(H.dbname), "t_%d_%d", (int)getpid(), counter++);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE " H_TEMPLATE_DB, H.dbname);
        admin_exec(sql);
        url_for(H.dbname, H.url, sizeof(H.url));
        H.conn = PQconnectdb(H.url);
        ck_assert_msg(PQstatus(H.conn) == CONNECTION_OK, "connect: %s", PQerrorMessage(H.conn));
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        snprintf(H.dir, sizeof(H.dir), "%s", tmpl);
        snprintf(H.config, sizeof(H.config), "%s/chimerad.json", H.dir);
        snprintf(H.socket, sizeof(H.socket), "%s/ctl.sock", H.dir);
}

/*
 * Fails the test if a log of this test shows a sanitizer report: in the
 * SANITIZE=1 build, chimerad and its workers write them to stderr, which is
 * the test's log file.
 */
static void check_logs_for_sanitizer_reports(void)
{
        static const char *const markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                              "runtime error:"};
        static char text[1 << 20];
        DIR *d = opendir(H.dir);
        struct dirent *e;

        if (d == NULL)
                return;
        while ((e = readdir(d)) != NULL) {
                char path[600];
                size_t n = strlen(e->d_name);
                if (n < 4 || strcmp(e->d_name + n - 4, ".log") != 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", H.dir, e->d_name);
                h_read_file(path, text, sizeof(text));
                for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
                        ck_assert_msg(strstr(text, markers[i]) == NULL, "%s: %s", path,
                                      strstr(text, markers[i]));
        }
        closedir(d);
}

void h_teardown(void)
{
        char sql[256], cmd[400];

        for (int i = 0; i < H.nprocs; i++) {
                if (kill(H.procs[i], 0) == 0)
                        h_signal_and_wait(H.procs[i], SIGKILL, 5000);
        }
        check_logs_for_sanitizer_reports();
        PQfinish(H.conn);
        H.conn = NULL;
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", H.dbname);
        admin_exec(sql);
        if (getenv("CHIMERA_TEST_KEEP") == NULL && H.dir[0] != '\0') {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "harness: could not remove %s\n", H.dir);
        }
}

void h_write_config(int pool_size, const char *extra)
{
        FILE *f = fopen(H.config, "w");

        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "{\n"
                "  \"database\": \"%s\",\n"
                "  \"control_socket\": \"%s\",\n"
                "  \"pool\": {\"size\": %d},\n"
                "  \"poll_interval\": \"200ms\",\n"
                "  \"lease\": \"5s\",\n"
                "  \"retry\": {\"base\": \"100ms\", \"max\": \"1s\"},\n"
                "  \"workflows\": {\n"
                "    \"noop\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                "\"builtin:noop\"}}},\n"
                "    \"sleep\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                "\"builtin:sleep\"}}},\n"
                "    \"fail\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                "\"builtin:fail\"}}},\n"
                "    \"loop\": {\"initial\": \"a\", \"max_transitions\": 3, \"phases\": {\n"
                "      \"a\": {\"agent\": \"builtin:fail\", \"on_failure\": \"b\"},\n"
                "      \"b\": {\"agent\": \"builtin:noop\", \"on_success\": \"a\"}}},\n"
                "    \"flaky\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                "\"builtin:fail\",\n"
                "      \"params\": {\"transient\": true, \"message\": \"try again later\"}}}},\n"
                "    \"twophase\": {\"initial\": \"first\", \"required\": [\"ms\"], \"phases\": {\n"
                "      \"first\": {\"agent\": \"builtin:noop\", \"on_success\": \"second\"},\n"
                "      \"second\": {\"agent\": \"builtin:sleep\"}}}\n"
                "  }%s%s\n"
                "}\n",
                H.url, H.socket, pool_size, extra ? ",\n  " : "", extra ? extra : "");
        fclose(f);
}

pid_t h_start_chimerad(const char *config, const char *logname)
{
        return h_start_chimerad_env(config, logname, NULL);
}

int h_run(char *const argv[], char *out, size_t outsz)
{
        int pipefd[2], status;
        size_t got = 0;
        ssize_t n;
        pid_t pid;

        if (pipe(pipefd) < 0)
                return -1;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                dup2(pipefd[1], 1);
                dup2(pipefd[1], 2);
                close(pipefd[0]);
                close(pipefd[1]);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], out + got, outsz - 1 - got)) > 0 && got + (size_t)n < outsz - 1)
                got += (size_t)n;
        if (n > 0)
                got += (size_t)n;
        out[got] = '\0';
        close(pipefd[0]);
        if (waitpid(pid, &status, 0) < 0)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static PGresult *query(const char *sql)
{
        PGresult *r = PQexec(H.conn, sql);
        ExecStatusType st = PQresultStatus(r);

        ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
                      PQresultErrorMessage(r));
        return r;
}

void h_exec(const char *sql)
{
        PQclear(query(sql));
}

long long h_int(const char *sql)
{
        PGresult *r = query(sql);
        long long v;

        ck_assert_msg(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return v;
}

void h_text(const char *sql, char *buf, size_t size)
{
        PGresult *r = query(sql);

        ck_assert_msg(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
        snprintf(buf, size, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
}

void h_sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

long long h_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

bool h_wait_int(const char *sql, long long want, int timeout_ms)
{
        long long deadline = h_now_ms() + timeout_ms;

        for (;;) {
                if (h_int(sql) == want)
                        return true;
                if (h_now_ms() > deadline)
                        return false;
                h_sleep_ms(20);
        }
}

int h_children(pid_t parent, const char *comm, pid_t *pids, int max)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int n = 0;

        if (d == NULL)
                return -1;
        while ((e = readdir(d)) != NULL) {
                char path[300], buf[512], name[64];
                int pid, ppid;
                FILE *f;

                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
                f = fopen(path, "r");
                if (f == NULL)
                        continue;
                if (fgets(buf, sizeof(buf), f) != NULL &&
                    sscanf(buf, "%d (%63[^)]) %*c %d", &pid, name, &ppid) == 3 && ppid == parent &&
                    strcmp(name, comm) == 0) {
                        if (n < max)
                                pids[n] = pid;
                        n++;
                }
                fclose(f);
        }
        closedir(d);
        return n;
}

int h_wait_exit(pid_t pid, int timeout_ms)
{
        long long deadline = h_now_ms() + timeout_ms;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0 || h_now_ms() > deadline)
                        return -1;
                h_sleep_ms(20);
        }
}

int h_signal_and_wait(pid_t pid, int sig, int timeout_ms)
{
        if (kill(pid, sig) < 0)
                return -1;
        return h_wait_exit(pid, timeout_ms);
}

void h_read_file(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "r");
        size_t n = 0;

        buf[0] = '\0';
        if (f == NULL)
                return;
        n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        fclose(f);
}

const char *h_repo_path(const char *rel)
{
        static char path[4][1024];
        static int next;
        const char *build = getenv("CHIMERA_BUILD_DIR");
        char *p = path[next++ % 4];
        size_t n;

        if (build == NULL || *build == '\0') {
                snprintf(p, sizeof(path[0]), "%s", rel);
                return p;
        }
        /* The parent of the build directory, without trailing slashes. */
        n = strlen(build);
        while (n > 1 && build[n - 1] == '/')
                n--;
        while (n > 0 && build[n - 1] != '/')
                n--;
        while (n > 1 && build[n - 1] == '/')
                n--;
        if (n == 0)
                snprintf(p, sizeof(path[0]), "%s", rel);
        else
                snprintf(p, sizeof(path[0]), "%.*s/%s", (int)n, build, rel);
        return p;
}

bool h_writable_cgroup2(char *buf, size_t size)
{
        char line[4096], mnt[1024];
        FILE *f = fopen("/proc/self/mountinfo", "r");
        bool found = false;

        if (f == NULL)
                return false;
        while (!found && fgets(line, sizeof(line), f) != NULL) {
                const char *sep = strstr(line, " - ");
                if (sep != NULL && strncmp(sep, " - cgroup2 ", 11) == 0 &&
                    sscanf(line, "%*s %*s %*s %*s %1023s", mnt) == 1 && access(mnt, W_OK) == 0) {
                        snprintf(buf, size, "%s", mnt);
                        found = true;
                }
        }
        fclose(f);
        return found;
}

bool h_in_cgroup(const char *dir, pid_t pid)
{
        char path[1300], text[4096], want[32];

        /* One pid a line: look for "\nPID\n" in "\n" + the file. */
        text[0] = '\n';
        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        h_read_file(path, text + 1, sizeof(text) - 1);
        snprintf(want, sizeof(want), "\n%d\n", (int)pid);
        return strstr(text, want) != NULL;
}

const char *h_script(const char *name, const char *body)
{
        static char path[8][400];
        static int next;
        char *p = path[next++ % 8];
        FILE *f;

        snprintf(p, sizeof(path[0]), "%s/%s", H.dir, name);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "#!/bin/sh\n%s\n", body);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(chmod(p, 0755), 0);
        return p;
}

void h_write_config_text(const char *text)
{
        FILE *f = fopen(H.config, "w");

        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(text, f), 0);
        ck_assert_int_eq(fclose(f), 0);
}

int h_free_port(int family)
{
        struct sockaddr_storage ss = {0};
        socklen_t len =
            family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), p = -1;

        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
                sin->sin_family = AF_INET;
                sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_addr = in6addr_loopback;
        }
        if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0 &&
            getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                p = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
        if (fd >= 0)
                close(fd);
        return p;
}

size_t h_read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
        char path[128];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
        f = fopen(path, "r");
        if (f == NULL)
                return 0;
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        return n;
}

static bool env_has(pid_t pid, const char *entry)
{
        static char env[1 << 16];
        size_t n = h_read_proc(pid, "environ", env, sizeof(env));

        for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
                if (strcmp(env + i, entry) == 0)
                        return true;
        }
        return false;
}

static bool cmdline_has(pid_t pid, const char *part)
{
        static char cmd[1 << 14];
        size_t n = h_read_proc(pid, "cmdline", cmd, sizeof(cmd));

        for (size_t i = 0; n > 0 && i < n - 1; i++) {
                if (cmd[i] == '\0')
                        cmd[i] = ' ';
        }
        return n > 0 && strstr(cmd, part) != NULL;
}

/* Counts the processes procs_with_env() matches; *first gets the first one's pid (or 0). */
static int procs_with_env(const char *var_value, const char *cmdline_part, pid_t *first)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        *first = 0;
        while ((e = readdir(d)) != NULL) {
                pid_t pid;

                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                pid = (pid_t)atoi(e->d_name);
                if (env_has(pid, var_value) &&
                    (cmdline_part == NULL || cmdline_has(pid, cmdline_part))) {
                        if (n++ == 0)
                                *first = pid;
                }
        }
        closedir(d);
        return n;
}

int h_count_procs_with_env(const char *var_value, const char *cmdline_part)
{
        pid_t first;

        return procs_with_env(var_value, cmdline_part, &first);
}

pid_t h_find_proc_with_env(const char *var_value, const char *cmdline_part)
{
        pid_t first;

        procs_with_env(var_value, cmdline_part, &first);
        return first;
}

/* Runs sh tests/pg.sh verb on the test server; returns its exit status, output in out. */
static int run_pg_sh(const char *verb, char *out, size_t outsz)
{
        const char *dir = getenv("CHIMERA_TEST_PG_DIR");
        char *argv[] = {"/bin/sh", (char *)h_repo_path("tests/pg.sh"), (char *)verb, (char *)dir,
                        NULL};

        return h_run(argv, out, outsz);
}

void h_pg(const char *verb)
{
        static char out[8192];
        const char *dir = getenv("CHIMERA_TEST_PG_DIR");
        int st;

        ck_assert_msg(dir != NULL && *dir != '\0',
                      "CHIMERA_TEST_PG_DIR is not set: run the integration tests with "
                      "tests/run-integration.sh");
        st = run_pg_sh(verb, out, sizeof(out));
        ck_assert_msg(st == 0, "sh tests/pg.sh %s %s: exit %d: %s", verb, dir, st, out);
}

void h_pg_ensure_running(void)
{
        char out[8192];

        if (getenv("CHIMERA_TEST_PG_DIR") != NULL && run_pg_sh("resume", out, sizeof(out)) != 0)
                fprintf(stderr, "harness: cannot start the test server again: %s\n", out);
}

void h_reconnect(int timeout_ms)
{
        long long deadline = h_now_ms() + timeout_ms;

        for (;;) {
                PQreset(H.conn);
                if (PQstatus(H.conn) == CONNECTION_OK)
                        return;
                ck_assert_msg(h_now_ms() < deadline, "cannot reconnect to %s: %s", H.url,
                              PQerrorMessage(H.conn));
                h_sleep_ms(100);
        }
}

/* Starts chimerad; with cgroup non-NULL, in that cgroup v2 directory. */
static pid_t start_chimerad(const char *config, const char *logname, char *const env[],
                            const char *cgroup)
{
        char log[400], procs[600];
        pid_t pid;

        snprintf(log, sizeof(log), "%s/%s.log", H.dir, logname);
        if (cgroup != NULL)
                snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                if (cgroup != NULL) {
                        FILE *f = fopen(procs, "w");
                        if (f == NULL || fputs("0", f) < 0 || fclose(f) != 0)
                                _exit(126);
                }
                /* putenv keeps the pointers: they stay valid in this child until exec. */
                for (size_t i = 0; env != NULL && env[i] != NULL; i++)
                        putenv(env[i]);
                execl(h_bin("chimerad"), "chimerad", "-c", config, (char *)NULL);
                _exit(127);
        }
        ck_assert_int_lt(H.nprocs, H_MAX_PROCS);
        H.procs[H.nprocs++] = pid;
        return pid;
}

pid_t h_start_chimerad_env(const char *config, const char *logname, char *const env[])
{
        return start_chimerad(config, logname, env, NULL);
}

pid_t h_start_chimerad_in_cgroup(const char *config, const char *logname, const char *cgroup)
{
        return start_chimerad(config, logname, NULL, cgroup);
}
