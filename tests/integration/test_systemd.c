/* test_systemd.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *systemd_suite(void)
{
        return suite_create("systemd");
}
