/*
 * migrate.c - `chimerad --migrate`: brings the database schema up to date.
 *
 * The advisory lock is transaction-scoped, so a migrating process that dies
 * releases it with its connection; nothing is left half applied because
 * each migration commits with its version row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate.h"

/* An arbitrary key of chimera's own for pg_advisory_xact_lock(). */
#define MIGRATE_LOCK_KEY "7263656869636d61"

int migrate_latest_version(void)
{
        return migrations_count > 0 ? migrations[migrations_count - 1].version : 0;
}

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errsz)
{
        PGresult *res = PQexec(conn, sql);
        ExecStatusType st = PQresultStatus(res);
        int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

        if (!ok)
                snprintf(err, errsz, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return ok ? 0 : -1;
}

static const char PREPARE_SQL[] = "BEGIN;"
                                  "SELECT pg_advisory_xact_lock(x'" MIGRATE_LOCK_KEY "'::bigint);"
                                  "CREATE SCHEMA IF NOT EXISTS chimera;"
                                  "CREATE TABLE IF NOT EXISTS chimera.schema_version ("
                                  "  version integer PRIMARY KEY,"
                                  "  name text NOT NULL,"
                                  "  applied_at timestamptz NOT NULL DEFAULT now());";

static int current_version(PGconn *conn, int *version, char *err, size_t errsz)
{
        PGresult *res =
            PQexec(conn, "SELECT coalesce(max(version), 0) FROM chimera.schema_version");

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                snprintf(err, errsz, "%s", PQresultErrorMessage(res));
                PQclear(res);
                return -1;
        }
        *version = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
}

static int apply_one(PGconn *conn, const struct migration *m, char *err, size_t errsz)
{
        char version[16];
        const char *params[2] = {version, m->name};
        PGresult *res;
        int ok;

        if (exec_ok(conn, m->sql, err, errsz) < 0)
                return -1;
        snprintf(version, sizeof(version), "%d", m->version);
        res =
            PQexecParams(conn, "INSERT INTO chimera.schema_version (version, name) VALUES ($1, $2)",
                         2, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
                snprintf(err, errsz, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return ok ? 0 : -1;
}

int migrate_run(const char *conninfo, char *err, size_t errsz)
{
        PGconn *conn = PQconnectdb(conninfo ? conninfo : "");
        char why[1024];
        int have = 0, applied = 0, rc = -1;

        if (PQstatus(conn) != CONNECTION_OK) {
                snprintf(err, errsz, "cannot connect to the database: %s", PQerrorMessage(conn));
                goto out;
        }
        /* Keep NOTICEs such as "schema already exists, skipping" off the terminal. */
        if (exec_ok(conn, "SET client_min_messages = warning", why, sizeof(why)) < 0 ||
            exec_ok(conn, PREPARE_SQL, why, sizeof(why)) < 0 ||
            current_version(conn, &have, why, sizeof(why)) < 0)
                goto failed;
        for (unsigned i = 0; i < migrations_count; i++) {
                const struct migration *m = &migrations[i];
                if (m->version <= have)
                        continue;
                if (apply_one(conn, m, why, sizeof(why)) < 0) {
                        snprintf(err, errsz, "migration %s failed: %s", m->name, why);
                        goto out;
                }
                printf("applied %s\n", m->name);
                applied++;
        }
        if (exec_ok(conn, "COMMIT", why, sizeof(why)) < 0)
                goto failed;
        if (applied == 0)
                printf("schema is up to date (version %d)\n", have);
        else
                printf("schema is now at version %d\n", migrate_latest_version());
        rc = 0;
        goto out;
failed:
        snprintf(err, errsz, "migration failed: %s", why);
out:
        PQfinish(conn);
        return rc;
}
