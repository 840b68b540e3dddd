/*
 * harness.h - helpers for the integration tests: a fresh database per test
 * (copied from a migrated template), configs in a temporary directory, the
 * real binaries started as child processes, and waits on conditions with
 * generous deadlines (never fixed sleeps).
 *
 * The environment comes from tests/run-integration.sh:
 * CHIMERA_TEST_DATABASE_URL (an admin URL of a throwaway server) and
 * CHIMERA_BUILD_DIR (where chimerad, chimera-worker, chimera-ctl are).
 */
#ifndef CHIMERA_TEST_HARNESS_H
#define CHIMERA_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>
#include <libpq-fe.h>

#define H_TEMPLATE_DB "chimera_template"
#define H_MAX_PROCS   8

struct harness {
        char dbname[64];
        char url[512];
        char dir[256];    /* temporary directory of this test */
        char config[300]; /* dir/chimerad.json */
        char socket[300]; /* dir/ctl.sock */
        PGconn *conn;
        pid_t procs[H_MAX_PROCS]; /* chimerad processes started, for teardown */
        int nprocs;
};

/* The one harness of the running test (Check forks a process per test). */
extern struct harness H;

/* Creates the migrated template database once, before any test runs. */
void h_prepare_template(void);

/* Check fixtures: a fresh database and directory; teardown kills what is left. */
void h_setup(void);
void h_teardown(void);

/* Path of a built program ("chimerad", ...) in a static buffer. */
const char *h_bin(const char *name);

/*
 * Writes H.config: the database and socket of this test, pool.size, fast
 * timers, workflows noop / sleep / fail / twophase, plus extra top-level
 * members (a JSON fragment such as "\"lease\": \"2s\"", or NULL).
 */
void h_write_config(int pool_size, const char *extra);

/* Starts chimerad -c config with stderr to dir/NAME.log; returns its pid. */
pid_t h_start_chimerad(const char *config, const char *logname);

/* Runs argv to completion, capturing stdout+stderr (up to outsz); returns its exit status. */
int h_run(char *const argv[], char *out, size_t outsz);

/* Executes SQL (fails the test on error). */
void h_exec(const char *sql);

/* Runs a query returning one integer. */
long long h_int(const char *sql);

/* Runs a query returning one text value into buf ("" for NULL). */
void h_text(const char *sql, char *buf, size_t size);

/* Polls sql every 20 ms until it returns want, or timeout_ms passes. */
/* A TCP port free now on the loopback address of family (AF_INET or AF_INET6), or -1. */
int h_free_port(int family);

/*
 * Reads /proc/PID/NAME into buf, NUL-terminated (NUL-separated files keep
 * their NULs); returns its length, 0 when the process is gone or not ours.
 */
size_t h_read_proc(pid_t pid, const char *name, char *buf, size_t size);

/* CLOCK_MONOTONIC in milliseconds; a pause between two looks at a condition. */
long long h_now_ms(void);
void h_sleep_ms(int ms);

bool h_wait_int(const char *sql, long long want, int timeout_ms);

/* Waits until the chimerad it started has exactly n ready workers (via ps). */
int h_children(pid_t parent, const char *comm, pid_t *pids, int max);

/* Sends sig to pid and waits up to timeout_ms for it to exit; returns wait status or -1. */
int h_signal_and_wait(pid_t pid, int sig, int timeout_ms);

/* Waits up to timeout_ms for pid to exit by itself; returns wait status or -1. */
int h_wait_exit(pid_t pid, int timeout_ms);

/* Reads a file (a log) into buf. */
void h_read_file(const char *path, char *buf, size_t size);

/*
 * Path of rel ("examples/agents/coder") in the source tree, which is the
 * parent of CHIMERA_BUILD_DIR (the current directory when that is unset),
 * in a static buffer; like h_bin, the last four results stay valid.
 */
const char *h_repo_path(const char *rel);

/* Writes text, a complete config, to H.config. */
void h_write_config_text(const char *text);

/*
 * Writes an executable sh script H.dir/name ("#!/bin/sh" and body) and
 * returns its path, in a static buffer: the last eight results stay valid.
 */
const char *h_script(const char *name, const char *body);

/* Where cgroup v2 is mounted, into buf, if this test may make a cgroup there (root, usually). */
bool h_writable_cgroup2(char *buf, size_t size);

/* True when pid is listed in dir/cgroup.procs. */
bool h_in_cgroup(const char *dir, pid_t pid);

/*
 * Counts the live processes whose environment, as their exec left it, holds
 * the entry var_value ("CHIMERA_TRACE_ID=..."): a way to find every process
 * of one agent run, however it forked.  With cmdline_part, only those whose
 * command line (arguments joined by spaces) contains it count.
 */
int h_count_procs_with_env(const char *var_value, const char *cmdline_part);

/* The pid of one process h_count_procs_with_env() would count, or 0 when there is none. */
pid_t h_find_proc_with_env(const char *var_value, const char *cmdline_part);

/*
 * Runs "sh tests/pg.sh VERB DIR" on the test server (DIR is
 * CHIMERA_TEST_PG_DIR, from tests/run-integration.sh): "pause" stops it
 * with a fast shutdown, "resume" starts it again on the same port and data
 * directory and returns once it accepts connections.  Fails the test if
 * the variable is unset or pg.sh fails.  H.conn dies with a pause: see
 * h_reconnect.
 */
void h_pg(const char *verb);

/*
 * Starts the test server again if it is paused (a test failed between
 * pause and resume), else does nothing.  For Check's unchecked teardown,
 * which runs in the parent process: it reports on stderr, never fails.
 */
void h_pg_ensure_running(void);

/* Reconnects H.conn (PQreset), retrying for up to timeout_ms; fails the test if it cannot. */
void h_reconnect(int timeout_ms);

/*
 * Starts chimerad -c config like h_start_chimerad, with env added to its
 * environment: "NAME=value" strings, NULL-terminated (borrowed; NULL is
 * an empty list).  Returns its pid; teardown kills it if still running.
 */
pid_t h_start_chimerad_env(const char *config, const char *logname, char *const env[]);

/*
 * Starts chimerad -c config like h_start_chimerad, in the cgroup v2
 * directory cgroup (which the test made and removes): as if it had been
 * delegated to chimerad.
 */
pid_t h_start_chimerad_in_cgroup(const char *config, const char *logname, const char *cgroup);

#endif
