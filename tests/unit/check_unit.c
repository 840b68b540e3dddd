/*
 * check_unit.c - runs every unit suite (pure modules, no database) and
 * exits non-zero when any check fails.  Check prints its summary line.
 */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
        SRunner *sr = srunner_create(util_suite());
        int failed;

        srunner_add_suite(sr, frame_suite());
        srunner_add_suite(sr, config_suite());
        srunner_add_suite(sr, workflow_suite());
        srunner_add_suite(sr, agent_proto_suite());
        srunner_add_suite(sr, control_proto_suite());
        srunner_add_suite(sr, http_proto_suite());
        srunner_add_suite(sr, jdump_suite());
        srunner_add_suite(sr, outbox_suite());
        srunner_add_suite(sr, pgarray_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
