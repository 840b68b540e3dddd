/* suites.h - the Check suites that tests/unit/check_unit.c runs. */
#ifndef CHIMERA_TEST_SUITES_H
#define CHIMERA_TEST_SUITES_H

#include <check.h>

Suite *util_suite(void);
Suite *frame_suite(void);
Suite *config_suite(void);
Suite *workflow_suite(void);
Suite *agent_proto_suite(void);
Suite *control_proto_suite(void);
Suite *http_proto_suite(void);

#endif
