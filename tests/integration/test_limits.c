/*
 * test_limits.c - hostile agents and agents' resource limits and
 * accounting: an agent that allocates until it dies, spins past its CPU
 * limit, writes without end to stdout, closes stdout early, forks without
 * end or ignores SIGTERM gets a clear error on its task, while the pool
 * goes on working and nothing else is affected; every phase's CPU time,
 * peak RSS and wall time are in its event, summed on the task, printed by
 * chimera-ctl show and counted in /metrics.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define POOL 4

/*
 * A config with agents (a JSON fragment of "name": {...} members) and one
 * single-phase workflow per name in wfs (space-separated, the workflow
 * named as its agent), each phase with timeout; extra adds top-level
 * members (or NULL).
 */
static void limits_config(const char *agents, const char *wfs, const char *timeout,
                          const char *extra)
{
        char names[256], *save = NULL;
        FILE *f = fopen(H.config, "w");
        int first = 1;

        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": %d},\n"
                " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
                " \"retry\": {\"base\": \"100ms\", \"max\": \"200ms\"},\n"
                " \"circuit_breaker\": {\"failures\": 0},\n"
                " \"agents\": {%s},\n \"workflows\": {",
                H.url, H.socket, POOL, agents);
        snprintf(names, sizeof(names), "%s", wfs);
        for (char *n = strtok_r(names, " ", &save); n != NULL; n = strtok_r(NULL, " ", &save)) {
                fprintf(f,
                        "%s\n  \"%s\": {\"initial\": \"run\", \"phases\": {\"run\": {\"agent\": "
                        "\"%s\", \"timeout\": \"%s\"}}}",
                        first ? "" : ",", n, n, timeout);
                first = 0;
        }
        fprintf(f, "}%s%s}\n", extra ? ",\n " : "", extra ? extra : "");
        fclose(f);
}

/* An agent that reads its request and answers {} at once. */
static const char *quick_agent(void)
{
        return h_script("quick", "cat > /dev/null\necho '{}'");
}

static void submit(const char *workflow, int n, int max_attempts)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO chimera.tasks (workflow, max_attempts) "
                 "SELECT '%s', %d FROM generate_series(1, %d)",
                 workflow, max_attempts, n);
        h_exec(sql);
}

static bool wait_all_finished(int timeout_ms)
{
        return h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status IN ('queued', "
                          "'running')",
                          0, timeout_ms);
}

/* The worker pids of sup, sorted, into pids (POOL of them, asserted). */
static void workers_of(pid_t sup, pid_t pids[POOL])
{
        for (int i = 0; i < 500 && h_children(sup, "chimera-worker", pids, POOL) != POOL; i++)
                usleep(20000);
        ck_assert_int_eq(h_children(sup, "chimera-worker", pids, POOL), POOL);
        for (int i = 0; i < POOL; i++)
                for (int j = i + 1; j < POOL; j++)
                        if (pids[j] < pids[i]) {
                                pid_t t = pids[i];
                                pids[i] = pids[j];
                                pids[j] = t;
                        }
}

/* Nothing harmed the pool: the same workers as before, and no restart. */
static void assert_same_workers(pid_t sup, const pid_t before[POOL])
{
        pid_t after[POOL];

        workers_of(sup, after);
        for (int i = 0; i < POOL; i++)
                ck_assert_int_eq(after[i], before[i]);
}

/* last_error of the one task of workflow wf. */
static void error_of(const char *wf, char *buf, size_t size)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT status || ': ' || coalesce(last_error, '') FROM chimera.tasks "
                 "WHERE workflow = '%s'",
                 wf);
        h_text(sql, buf, size);
}

/* detail->'end'->>key of the phase_finished event of workflow wf's one task. */
static void end_of(const char *wf, const char *key, char *buf, size_t size)
{
        char sql[300];

        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(e.detail->'end'->>'%s', '') FROM chimera.task_events e "
                 "JOIN chimera.tasks t ON t.id = e.task_id "
                 "WHERE t.workflow = '%s' AND e.kind = 'phase_finished'",
                 key, wf);
        h_text(sql, buf, size);
}

START_TEST(memory_hog_fails_at_its_limit_while_100_tasks_run_beside_it)
{
        char err[1024], cause[64];
        pid_t sup, before[POOL];

        /* Perl (Essential in Debian) allocates 1MB at a time until it is refused. */
        const char *hog = h_script("hog", "exec perl -e 'my @a; while (1) { push @a, \"x\" x "
                                          "1048576; select(undef, undef, undef, 0.01) }'");
        char agents[1200];
        snprintf(agents, sizeof(agents),
                 "\"hog\": {\"argv\": [\"%s\"], \"limits\": {\"memory\": \"64MB\"}},\n"
                 " \"quick\": {\"argv\": [\"%s\"]}",
                 hog, quick_agent());
        limits_config(agents, "hog quick", "60s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        workers_of(sup, before);
        submit("hog", 1, 1);
        submit("quick", 100, 1);
        ck_assert(wait_all_finished(120000));

        error_of("hog", err, sizeof(err));
        ck_assert_msg(strstr(err, "failed: phase run failed: agent hog killed: memory limit "
                                  "(64MB; peak RSS ") == err,
                      "%s", err);
        ck_assert_msg(strstr(err, "Out of memory!") != NULL, "%s", err);
        end_of("hog", "cause", cause, sizeof(cause));
        ck_assert_str_eq(cause, "memory_limit");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'quick' "
                               "AND status = 'succeeded' AND attempts = 1"),
                         100);
        assert_same_workers(sup, before);
}
END_TEST

START_TEST(cpu_spinner_is_killed_at_its_cpu_limit)
{
        static char text[1 << 16];
        char err[1024], sig[32], log[400];
        pid_t sup, before[POOL];
        char agents[1200];

        /* One spins; the other also ignores SIGXCPU and meets the hard limit. */
        snprintf(agents, sizeof(agents),
                 "\"spin\": {\"argv\": [\"%s\"], \"limits\": {\"cpu\": \"1s\"}},\n"
                 " \"stubborn\": {\"argv\": [\"%s\"], \"limits\": {\"cpu\": \"1s\"}}",
                 h_script("spin", "while :; do :; done"),
                 h_script("stubborn", "trap '' XCPU\nwhile :; do :; done"));
        limits_config(agents, "spin stubborn", "60s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        workers_of(sup, before);
        snprintf(log, sizeof(log), "%s/chimerad.log", H.dir);
        submit("spin", 1, 3);
        submit("stubborn", 1, 3);
        ck_assert(wait_all_finished(60000));

        h_read_file(log, text, sizeof(text));
        ck_assert_msg(strstr(text, "agents get rlimits only, no cgroup: ") != NULL ||
                          strstr(text, "agents run in cgroup leaves under ") != NULL,
                      "%s", text);
        error_of("spin", err, sizeof(err));
        ck_assert_msg(strstr(err, "failed: phase run failed: agent spin killed: CPU limit (1s; "
                                  "used ") == err,
                      "%s", err);
        ck_assert_msg(strstr(err, "; signal SIGXCPU)") != NULL, "%s", err);
        end_of("spin", "signal", sig, sizeof(sig));
        ck_assert_str_eq(sig, "SIGXCPU");
        error_of("stubborn", err, sizeof(err));
        ck_assert_msg(strstr(err, "agent stubborn killed: CPU limit (1s; used ") != NULL, "%s",
                      err);
        ck_assert_msg(strstr(err, "; signal SIGKILL)") != NULL, "%s", err);
        /* A limit is not a transient error: one attempt each. */
        ck_assert_int_eq(h_int("SELECT sum(attempts) FROM chimera.tasks"), 2);
        assert_same_workers(sup, before);
}
END_TEST

/* Peak resident set of pid in KB (VmHWM), or -1. */
static long peak_rss_kb(pid_t pid)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "r");
        if (f == NULL)
                return -1;
        while (fgets(line, sizeof(line), f) != NULL)
                if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

START_TEST(endless_stdout_is_cut_off_at_the_output_limit)
{
        char agents[1200];
        pid_t sup, before[POOL];

        snprintf(agents, sizeof(agents),
                 "\"flood\": {\"argv\": [\"%s\"]},\n \"quick\": {\"argv\": [\"%s\"]}",
                 h_script("flood", "cat /dev/zero"), quick_agent());
        limits_config(agents, "flood quick", "60s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        workers_of(sup, before);
        submit("flood", 3, 1);
        submit("quick", 10, 1);
        ck_assert(wait_all_finished(60000));

        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'flood' AND "
                               "status = 'failed' AND last_error = 'phase run failed: agent "
                               "flood printed more than 1048576 bytes on stdout'"),
                         3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_finished' AND detail->'end'->>'cause' = 'output_limit'"),
                         3);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'quick' AND "
                               "status = 'succeeded'"),
                         10);
        /* The workers kept no more than the bound (the default 1MB) of it: far
         * below what an unbounded read of /dev/zero would reach (with room for
         * the sanitizer build's own overhead). */
        for (int i = 0; i < POOL; i++) {
                long kb = peak_rss_kb(before[i]);
                ck_assert_msg(kb > 0 && kb < 128 * 1024, "worker %d peaked at %ld KB",
                              (int)before[i], kb);
        }
        assert_same_workers(sup, before);
}
END_TEST

START_TEST(agent_that_closes_stdout_early_fails_clearly_and_at_once)
{
        char err[1024], agents[1200];
        pid_t sup, before[POOL];

        /* It shuts its stdout, then goes on working for a while: no answer is coming. */
        snprintf(
            agents, sizeof(agents), "\"mute\": {\"argv\": [\"%s\"]}",
            h_script("mute", "exec >&-\ncat > /dev/null\nsleep 1\necho 'closed my stdout' >&2"));
        limits_config(agents, "mute", "60s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        workers_of(sup, before);
        submit("mute", 1, 1);
        ck_assert(wait_all_finished(30000));

        error_of("mute", err, sizeof(err));
        ck_assert_str_eq(err, "failed: phase run failed: agent mute exited 0 but printed nothing "
                              "(expected one JSON object on stdout)");
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_finished' AND detail->>'stderr' = E'closed my stdout\\n'"),
                         1);
        /* Ended when it exited, not at the timeout. */
        ck_assert_int_lt(h_int("SELECT (detail->>'duration_ms')::int FROM chimera.task_events "
                               "WHERE kind = 'phase_finished'"),
                         20000);
        assert_same_workers(sup, before);
}
END_TEST

/* Processes whose real uid is uid. */
static int processes_of_uid(unsigned uid)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)) != NULL) {
                char path[300], line[256];
                unsigned real;
                FILE *f;

                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
                f = fopen(path, "r");
                if (f == NULL)
                        continue;
                while (fgets(line, sizeof(line), f) != NULL) {
                        if (sscanf(line, "Uid: %u", &real) == 1) {
                                n += real == uid;
                                break;
                        }
                }
                fclose(f);
        }
        closedir(d);
        return n;
}

/*
 * RLIMIT_NPROC counts every process of a user and binds no root process:
 * as root, the bomb becomes a user of its own (setpriv keeps the limit),
 * as a chimerad running as a service user's agents would be.  Otherwise
 * the limit counts this user's other processes too, and holds all the
 * more.
 */
START_TEST(fork_bomb_is_held_to_the_process_limit)
{
        char err[1024], agents[1600], body[600];
        unsigned uid = 1900000000u + (unsigned)getpid() % 1000000u;
        pid_t sup, before[POOL];

        ck_assert_int_eq(chmod(H.dir, 0755), 0);
        snprintf(body, sizeof(body),
                 "if [ \"$(id -u)\" = 0 ]; then\n"
                 "  exec setpriv --reuid=%u --regid=%u --clear-groups \"$0\" \"$@\"\n"
                 "fi\n"
                 "bomb() { while :; do bomb & done; }\n"
                 "bomb",
                 uid, uid);
        snprintf(agents, sizeof(agents),
                 "\"bomb\": {\"argv\": [\"%s\"], \"limits\": {\"processes\": 20}},\n"
                 " \"quick\": {\"argv\": [\"%s\"]}",
                 h_script("bomb", body), quick_agent());
        limits_config(agents, "bomb quick", "60s", NULL);
        sup = h_start_chimerad(H.config, "chimerad");
        workers_of(sup, before);
        submit("bomb", 1, 1);
        submit("quick", 20, 1);
        ck_assert(wait_all_finished(60000));

        if (geteuid() == 0) {
                char log[400];
                static char text[1 << 16];

                snprintf(log, sizeof(log), "%s/chimerad.log", H.dir);
                h_read_file(log, text, sizeof(text));
                ck_assert_msg(strstr(text, "agents.bomb.limits.processes does not hold") != NULL ||
                                  strstr(text, "pids.max: yes") != NULL,
                              "%s", text);
        }
        error_of("bomb", err, sizeof(err));
        ck_assert_msg(strstr(err, "failed: phase run failed: agent bomb exited with status 2: ") ==
                              err &&
                          strstr(err, "Cannot fork") != NULL,
                      "%s", err);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.tasks WHERE workflow = 'quick' "
                               "AND status = 'succeeded'"),
                         20);
        /* Nothing of it is left. */
        for (int i = 0; i < 250 && processes_of_uid(uid) > 0; i++)
                usleep(20000);
        ck_assert_int_eq(processes_of_uid(uid), 0);
        assert_same_workers(sup, before);
}
END_TEST

START_TEST(agent_ignoring_sigterm_is_killed_with_sigkill_at_its_timeout)
{
        char err[1024], agents[600], sig[32], cause[32];

        snprintf(agents, sizeof(agents), "\"deaf\": {\"argv\": [\"%s\"]}",
                 h_script("deaf", "trap '' TERM\nwhile :; do sleep 1; done"));
        limits_config(agents, "deaf", "500ms", NULL);
        h_start_chimerad(H.config, "chimerad");
        submit("deaf", 1, 1);
        ck_assert(wait_all_finished(30000));

        error_of("deaf", err, sizeof(err));
        ck_assert_str_eq(err, "dead: phase run: agent deaf timed out after 500ms and was killed "
                              "(with SIGKILL: it outlived SIGTERM)");
        end_of("deaf", "cause", cause, sizeof(cause));
        ck_assert_str_eq(cause, "timeout");
        end_of("deaf", "signal", sig, sizeof(sig));
        ck_assert_str_eq(sig, "SIGKILL");
}
END_TEST

/* GET path from 127.0.0.1:port into buf (the whole response); false if it cannot connect. */
static bool http_get(int port, const char *path, char *buf, size_t size)
{
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        size_t got = 0;
        ssize_t n;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
                if (fd >= 0)
                        close(fd);
                return false;
        }
        dprintf(fd, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
        while (got < size - 1 && (n = read(fd, buf + got, size - 1 - got)) > 0)
                got += (size_t)n;
        buf[got] = '\0';
        close(fd);
        return true;
}

/* The value of a metric line starting with name (labels included) in text; -1 if absent. */
static double metric(const char *text, const char *name)
{
        size_t len = strlen(name);

        for (const char *p = text; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                if (strncmp(p, name, len) == 0 && p[len] == ' ')
                        return atof(p + len + 1);
        }
        return -1;
}

START_TEST(usage_is_in_events_summed_on_the_task_shown_and_counted)
{
        char agents[1600], out[16384], extra[128], id[32];
        char *argv[] = {(char *)h_bin("chimera-ctl"), "-c", H.config, "show", id, NULL};
        int port = h_free_port(AF_INET);
        FILE *f;

        /* Phase a burns some CPU; phase b asks for a retry once, then succeeds. */
        snprintf(agents, sizeof(agents),
                 "\"busy\": {\"argv\": [\"%s\"]},\n \"flaky\": {\"argv\": [\"%s\"]}",
                 h_script("busy", "cat > /dev/null\ni=0\nwhile [ $i -lt 200000 ]; do "
                                  "i=$((i+1)); done\necho '{}'"),
                 h_script("flaky", "cat > /dev/null\n"
                                   "if [ ! -e \"$0.retried\" ]; then touch \"$0.retried\"; "
                                   "exit 75; fi\necho '{}'"));
        snprintf(extra, sizeof(extra), "\"http\": {\"listen\": \"127.0.0.1:%d\"}", port);
        f = fopen(H.config, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "{\"database\": \"%s\", \"control_socket\": \"%s\", \"pool\": {\"size\": 2},\n"
                " \"poll_interval\": \"200ms\", \"lease\": \"5s\",\n"
                " \"retry\": {\"base\": \"100ms\", \"max\": \"200ms\"},\n"
                " \"agents\": {%s},\n"
                " \"workflows\": {\"w\": {\"initial\": \"a\", \"phases\": {\n"
                "   \"a\": {\"agent\": \"busy\", \"on_success\": \"b\"},\n"
                "   \"b\": {\"agent\": \"flaky\"}}}},\n %s}\n",
                H.url, H.socket, agents, extra);
        fclose(f);
        h_start_chimerad(H.config, "chimerad");
        h_exec("INSERT INTO chimera.tasks (workflow) VALUES ('w')");
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 60000));

        /* Every phase run has its usage and end in its event. */
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_finished' AND (detail->'usage'->>'wall_ms')::int > 0 "
                               "AND (detail->'usage'->>'max_rss_kb')::int > 0 "
                               "AND detail->'usage' ? 'cpu_user_ms' "
                               "AND detail->'usage' ? 'cpu_sys_ms' "
                               "AND detail->'end'->>'cause' = 'exit'"),
                         3);
        ck_assert_int_gt(h_int("SELECT (detail->'usage'->>'cpu_user_ms')::int + "
                               "(detail->'usage'->>'cpu_sys_ms')::int FROM chimera.task_events "
                               "WHERE kind = 'phase_finished' AND phase = 'a'"),
                         0);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_finished' AND phase = 'b' AND "
                               "(detail->'end'->>'exit')::int = 75"),
                         1);
        /* The task's total covers both attempts. */
        ck_assert_int_eq(h_int("SELECT (state->'usage'->>'phases')::int FROM chimera.tasks"), 3);
        ck_assert_int_eq(h_int("SELECT (t.state->'usage'->>'cpu_user_ms')::int - "
                               "sum((e.detail->'usage'->>'cpu_user_ms')::int) "
                               "FROM chimera.tasks t JOIN chimera.task_events e ON e.task_id = "
                               "t.id AND e.kind = 'phase_finished' GROUP BY t.state"),
                         0);
        ck_assert_int_eq(h_int("SELECT (t.state->'usage'->>'wall_ms')::int - "
                               "sum((e.detail->'usage'->>'wall_ms')::int) "
                               "FROM chimera.tasks t JOIN chimera.task_events e ON e.task_id = "
                               "t.id AND e.kind = 'phase_finished' GROUP BY t.state"),
                         0);
        ck_assert_int_eq(h_int("SELECT (t.state->'usage'->>'max_rss_kb')::int - "
                               "max((e.detail->'usage'->>'max_rss_kb')::int) "
                               "FROM chimera.tasks t JOIN chimera.task_events e ON e.task_id = "
                               "t.id AND e.kind = 'phase_finished' GROUP BY t.state"),
                         0);

        h_text("SELECT id::text FROM chimera.tasks", id, sizeof(id));
        ck_assert_int_eq(h_run(argv, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "\nusage     3 phases, agents ran ") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "success -> b (cpu ") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "peak RSS ") != NULL, "%s", out);

        ck_assert(http_get(port, "/metrics", out, sizeof(out)));
        ck_assert_msg(metric(out, "chimera_agent_runs_total{cause=\"exit\"}") == 3, "%s", out);
        ck_assert_msg(metric(out, "chimera_agent_runs_total{cause=\"memory_limit\"}") == 0, "%s",
                      out);
        ck_assert_msg(metric(out, "chimera_agent_cpu_seconds_total{mode=\"user\"}") +
                              metric(out, "chimera_agent_cpu_seconds_total{mode=\"system\"}") >
                          0,
                      "%s", out);
        ck_assert_msg(metric(out, "chimera_agent_wall_seconds_total") > 0, "%s", out);
}
END_TEST

/* Removes the test's cgroup directory and what chimerad left in it (empty cgroups only). */
static void remove_cgroup(const char *dir)
{
        char cmd[2600];

        /* rmdir, never rm: a cgroup directory goes with rmdir once it is empty. */
        snprintf(cmd, sizeof(cmd),
                 "find '%s' -depth -type d -exec rmdir {} \\; 2>/dev/null; test ! -e '%s'", dir,
                 dir);
        ck_assert_msg(system(cmd) == 0, "cannot remove %s", dir);
}

/*
 * With a delegated cgroup (here: one the test makes and starts chimerad
 * in), chimerad builds its sub-tree, each worker runs in its own leaf and
 * its agents in another, and the end of a run empties the agent leaf: a
 * process that left the agent's process group (setsid) dies too, which
 * killing the group alone would miss.
 */
START_TEST(delegated_cgroup_holds_agents_and_ends_what_escaped_their_group)
{
        char mount[1024], dir[1200], leaf[1300], log[2048], agents[800], trace[64], env[128];
        static char text[1 << 16];
        pid_t sup, workers[POOL];

        if (!h_writable_cgroup2(mount, sizeof(mount))) {
                fprintf(stderr, "test_limits: no writable cgroup v2 mount; skipping the "
                                "delegated cgroup test\n");
                return;
        }
        snprintf(dir, sizeof(dir), "%s/chimera-test-%d", mount, (int)getpid());
        ck_assert_msg(mkdir(dir, 0755) == 0, "mkdir %s", dir);
        snprintf(agents, sizeof(agents), "\"escape\": {\"argv\": [\"%s\"]}",
                 h_script("escape", "cat > /dev/null\nsetsid sleep 876501 < /dev/null > /dev/null "
                                    "2>&1 &\necho '{}'"));
        limits_config(agents, "escape", "60s", NULL);
        sup = h_start_chimerad_in_cgroup(H.config, "chimerad", dir);
        workers_of(sup, workers);
        snprintf(log, sizeof(log), "%s/chimerad.log", H.dir);
        h_read_file(log, text, sizeof(text));
        ck_assert_msg(strstr(text, "agents run in cgroup leaves under ") != NULL, "%s", text);
        snprintf(leaf, sizeof(leaf), "%s/supervisor", dir);
        ck_assert(h_in_cgroup(leaf, sup));
        for (int i = 0; i < POOL; i++) {
                bool found = false;
                for (int slot = 0; slot < POOL && !found; slot++) {
                        snprintf(leaf, sizeof(leaf), "%s/worker-%d/worker", dir, slot);
                        found = h_in_cgroup(leaf, workers[i]);
                }
                ck_assert_msg(found, "worker %d is in no worker leaf", (int)workers[i]);
        }

        submit("escape", 1, 1);
        ck_assert(
            h_wait_int("SELECT count(*) FROM chimera.tasks WHERE status = 'succeeded'", 1, 30000));
        h_text("SELECT trace_id::text FROM chimera.tasks", trace, sizeof(trace));
        snprintf(env, sizeof(env), "CHIMERA_TRACE_ID=%s", trace);
        for (int i = 0; i < 250 && h_count_procs_with_env(env, "sleep 876501") > 0; i++)
                usleep(20000);
        ck_assert_int_eq(h_count_procs_with_env(env, "sleep 876501"), 0);
        ck_assert_int_eq(h_int("SELECT count(*) FROM chimera.task_events WHERE kind = "
                               "'phase_finished' AND detail->'usage' ? 'cpu_user_ms'"),
                         1);

        /* At exit chimerad takes its worker sub-trees down. */
        ck_assert_int_eq(h_signal_and_wait(sup, SIGTERM, 30000), 0);
        snprintf(leaf, sizeof(leaf), "%s/worker-0", dir);
        ck_assert_int_ne(access(leaf, F_OK), 0);
        remove_cgroup(dir);
}
END_TEST

Suite *limits_suite(void)
{
        Suite *s = suite_create("limits");
        TCase *tc = h_tcase("limits");

        tcase_add_test(tc, memory_hog_fails_at_its_limit_while_100_tasks_run_beside_it);
        tcase_add_test(tc, cpu_spinner_is_killed_at_its_cpu_limit);
        tcase_add_test(tc, endless_stdout_is_cut_off_at_the_output_limit);
        tcase_add_test(tc, agent_that_closes_stdout_early_fails_clearly_and_at_once);
        tcase_add_test(tc, fork_bomb_is_held_to_the_process_limit);
        tcase_add_test(tc, agent_ignoring_sigterm_is_killed_with_sigkill_at_its_timeout);
        tcase_add_test(tc, usage_is_in_events_summed_on_the_task_shown_and_counted);
        tcase_add_test(tc, delegated_cgroup_holds_agents_and_ends_what_escaped_their_group);
        suite_add_tcase(s, tc);
        return s;
}
