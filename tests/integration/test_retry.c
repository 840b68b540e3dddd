/* test_retry.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *retry_suite(void)
{
        return suite_create("retry");
}
