/* suites.h - the integration suites run by check_integration.c. */
#ifndef CHIMERA_TEST_INTEGRATION_SUITES_H
#define CHIMERA_TEST_INTEGRATION_SUITES_H

#include <check.h>

Suite *schema_suite(void);
Suite *pool_suite(void);
Suite *ctl_suite(void);
Suite *show_suite(void);
Suite *chimera_suite(void);
Suite *agents_suite(void);
Suite *faults_suite(void);
Suite *retry_suite(void);
Suite *lifecycle_suite(void);
Suite *commands_suite(void);
Suite *http_suite(void);
Suite *systemd_suite(void);
Suite *partition_suite(void);
Suite *prefetch_suite(void);
Suite *limits_suite(void);
Suite *retention_suite(void);
Suite *security_suite(void);

/* A test case with the per-test database fixture and a generous timeout. */
TCase *h_tcase(const char *name);

#endif
