/*
 * check_integration.c - runs the integration suites against the throwaway
 * PostgreSQL of tests/run-integration.sh.  Each test gets its own database
 * (a copy of a migrated template) and temporary directory.
 */
#include <stdlib.h>

#include "harness.h"
#include "suites.h"

TCase *h_tcase(const char *name)
{
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, h_setup, h_teardown);
        tcase_set_timeout(tc, 180);
        return tc;
}

int main(void)
{
        SRunner *sr;
        int failed;

        /* Keep the server's NOTICEs (DROP ... CASCADE and the like) out of the report. */
        setenv("PGOPTIONS", "-c client_min_messages=warning", 1);
        h_prepare_template();
        sr = srunner_create(schema_suite());
        srunner_add_suite(sr, pool_suite());
        srunner_add_suite(sr, prefetch_suite());
        srunner_add_suite(sr, ctl_suite());
        srunner_add_suite(sr, show_suite());
        srunner_add_suite(sr, agents_suite());
        srunner_add_suite(sr, limits_suite());
        srunner_add_suite(sr, security_suite());
        srunner_add_suite(sr, chimera_suite());
        srunner_add_suite(sr, retry_suite());
        srunner_add_suite(sr, lifecycle_suite());
        srunner_add_suite(sr, commands_suite());
        srunner_add_suite(sr, retention_suite());
        srunner_add_suite(sr, http_suite());
        srunner_add_suite(sr, systemd_suite());
        srunner_add_suite(sr, faults_suite());
        srunner_add_suite(sr, partition_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
