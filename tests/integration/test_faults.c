/* test_faults.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *faults_suite(void)
{
        return suite_create("faults");
}
