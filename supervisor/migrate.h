/*
 * migrate.h - the schema migrations in sql/, embedded in chimerad at build
 * time (scripts/embed-sql.sh), and the code that applies them.
 */
#ifndef CHIMERA_MIGRATE_H
#define CHIMERA_MIGRATE_H

#include <stddef.h>

struct migration {
        int version;
        const char *name;
        const char *sql;
};

/* Generated: every migration in version order. */
extern const struct migration migrations[];
extern const unsigned migrations_count;

/* The highest version this build knows. */
int migrate_latest_version(void);

/*
 * Connects (blocking: this is a one-shot command, not the daemon loop) and
 * applies every migration newer than chimera.schema_version, each in the
 * same transaction as its version row, all under an advisory lock so that
 * two hosts migrating at once take turns and the second finds nothing to
 * do.  Prints what it did on stdout.  Returns 0, or -1 with a reason in err.
 */
int migrate_run(const char *conninfo, char *err, size_t errsz) __attribute__((warn_unused_result));

#endif
